"""The POP3 server the way real clients use it: the scripted conversations of tests/scripts/pop3
(every command and state transition; see conversation.py), then Python's poplib (plain, STLS and
POP3_SSL), curl pop3:// and pop3s://, and fetchmail (keep and no-keep, into an MDA). Every
message a client downloads is compared byte for byte with the file in the Maildir, which holds
exactly what SMTP delivered (trace headers first, then the bytes sent). Also: kill -9 between
DELE and QUIT loses nothing, kill -9 right after +OK to QUIT keeps the deletions; a second
session on the same account gets [IN-USE]; UIDLs survive a restart and an index rebuild; a
client that stops reading in the middle of a large RETR does not make the server buffer it."""
import os
import poplib
import re
import shutil
import socket
import ssl
import stat
import subprocess
import time
import unittest
import uuid

import conversation as conv
import pbtest
import scram

PW = conv.PASSWORD
CLIENT_CONFIG = [("auth_allow_cleartext_loopback", "yes")]
CURL = shutil.which("curl")
FETCHMAIL = shutil.which("fetchmail")


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def body_lines(n, mark):
    lines = [f"line {i} of {mark}" for i in range(n)]
    lines[1] = "."
    lines[2] = ".leading dot"
    lines[3] = "..two leading dots"
    lines[4] = "8bit: gr\u00fc\u00dfe, \u65e5\u672c"
    return "\r\n".join(lines) + "\r\n"


def message(mark, lines=20):
    head = (f"From: Sender <sender@ext.example>\r\nTo: someone@example.com\r\nSubject: pop3 {mark}\r\n"
            f"Message-ID: <{mark}@ext.example>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
    return (head + "\r\n" + body_lines(lines, mark)).encode()


class Pop3Scripts(unittest.TestCase):
    def test_conversation_scripts(self):
        conv.run_scripts(self, conv.load_scripts(directory=conv.POP3_SCRIPT_DIR))


class Pop3Host(unittest.TestCase):
    """A MailHost with POP3 listeners; each test gets its own account with messages."""

    @classmethod
    def setUpClass(cls):
        cls.host = conv.MailHost(CLIENT_CONFIG)

    @classmethod
    def tearDownClass(cls):
        log = cls.host.close()
        for bad in conv.SANITY:
            assert bad not in log, f"{bad} in the server log"
        assert PW not in log, "a password reached the log"

    def account(self, count, lines=20, sizes=None):
        """A fresh account with count messages sent over SMTP; returns (address, [sent bytes])."""
        addr = f"p{uuid.uuid4().hex[:10]}@example.com"
        self.host.cli("user", "add", addr, stdin=PW + "\n")
        sent = []
        import smtplib
        with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], timeout=30) as s:
            for i in range(count):
                mark = f"{addr.split('@')[0]}-{i}"
                n = sizes[i] if sizes else lines
                data = message(mark, n)
                s.sendmail("sender@ext.example", [addr], data)
                sent.append(data)
        return addr, sent

    def stored(self, addr):
        """{subject mark: file bytes} of the account's INBOX, new/ and cur/."""
        out = {}
        for sub in ("new", "cur"):
            for data in self.host.maildir(addr, sub).values():
                m = re.search(rb"Subject: pop3 (\S+)", data)
                out[m.group(1).decode()] = data
        return out

    def check_download(self, addr, sent, downloaded, stored=None):
        """Each downloaded message is the stored file (as it is now, or as given), which ends
        with what was sent."""
        stored = stored if stored is not None else self.stored(addr)
        self.assertEqual(len(downloaded), len(sent))
        for data in downloaded:
            mark = re.search(rb"Subject: pop3 (\S+)", data).group(1).decode()
            self.assertEqual(data, stored[mark], f"message {mark} differs from its Maildir file")
            self.assertTrue(data.startswith(b"Return-Path: <sender@ext.example>\r\nDelivered-To: "))
            self.assertIn(data[-len(sent[int(mark.rsplit('-', 1)[1])]):], sent)

    def pop(self, ssl_mode="plain"):
        if ssl_mode == "ssl":
            return poplib.POP3_SSL("127.0.0.1", self.host.ports["pop3s"], context=no_verify(), timeout=30)
        p = poplib.POP3("127.0.0.1", self.host.ports["pop3"], timeout=30)
        if ssl_mode == "stls":
            p.stls(context=no_verify())
        return p


class Poplib(Pop3Host):
    def download(self, p):
        out = []
        count, _ = p.stat()
        listing = {int(l.split()[0]): int(l.split()[1]) for l in p.list()[1]}
        for i in range(1, count + 1):
            resp, lines, octets = p.retr(i)
            data = b"\r\n".join(lines) + b"\r\n"
            # RFC 1939: LIST's size is the exact size of the message as RETR sends it.
            self.assertEqual(listing[i], len(data), f"LIST size of message {i}")
            self.assertTrue(resp.startswith(f"+OK {len(data)} octets".encode()))
            out.append(data)
        return out

    def test_plain_stls_and_pop3s_download_byte_identical(self):
        for mode in ("plain", "stls", "ssl"):
            with self.subTest(mode=mode):
                addr, sent = self.account(4)
                p = self.pop(mode)
                p.user(addr)
                self.assertTrue(p.pass_(PW).startswith(b"+OK Logged in"))
                self.check_download(addr, sent, self.download(p))
                p.quit()

    def test_large_message_with_long_and_dotted_lines(self):
        addr, sent = self.account(2, sizes=[60000, 5])
        p = self.pop("ssl")
        p.user(addr)
        p.pass_(PW)
        self.check_download(addr, sent, self.download(p))
        p.quit()

    def test_keep_then_delete(self):
        # "Leave on server": retrieved but not deleted, the messages are there next time (and
        # marked \Seen); then deleted, they are gone from the Maildir and the index.
        addr, sent = self.account(3)
        p = self.pop()
        p.user(addr)
        p.pass_(PW)
        first = self.download(p)
        uidls = p.uidl()[1]
        p.quit()
        p = self.pop()
        p.user(addr)
        p.pass_(PW)
        self.assertEqual(p.uidl()[1], uidls)
        self.assertEqual(self.download(p), first)
        for name in self.host.maildir(addr, "cur"):
            self.assertTrue(name.endswith(":2,S"), name)
        self.assertEqual(self.host.maildir(addr, "new"), {})
        for i in (1, 3):
            p.dele(i)
        self.assertTrue(p.quit().startswith(b"+OK Logging out, messages deleted"))
        left = self.stored(addr)
        self.assertEqual(len(left), 1)
        p = self.pop()
        p.user(addr)
        p.pass_(PW)
        self.assertEqual(p.stat()[0], 1)
        self.assertEqual(p.uidl()[1][0].split()[1], uidls[1].split()[1])
        p.quit()

    def test_second_session_gets_in_use(self):
        addr, _ = self.account(1)
        first = self.pop()
        first.user(addr)
        first.pass_(PW)
        second = self.pop()
        second.user(addr)
        with self.assertRaises(poplib.error_proto) as e:
            second.pass_(PW)
        self.assertIn(b"[IN-USE]", e.exception.args[0])
        first.quit()
        second.user(addr)
        self.assertTrue(second.pass_(PW).startswith(b"+OK"))
        second.quit()

    def test_scram_sha256_with_and_without_initial_response(self):
        # SCRAM is not a plaintext mechanism: offered before TLS too. RFC 5034 challenges are "+ ".
        addr, sent = self.account(1)
        for initial in (True, False):
            with self.subTest(initial_response=initial):
                c = conv.Client(self.host.ports["pop3"])
                self.assertTrue(c.line().startswith("+OK"))
                self.assertEqual(scram.login(c, addr, PW, initial, prefix="+ "), "+OK Logged in, 1 messages "
                                 f"({len(self.stored(addr)[next(iter(self.stored(addr)))])} octets).")
                c.send(b"QUIT\r\n")
                self.assertTrue(c.line().startswith("+OK"))
                c.close()
        c = conv.Client(self.host.ports["pop3"])
        c.line()
        self.assertTrue(scram.login(c, addr, "wrong-password", True, prefix="+ ").startswith("-ERR [AUTH]"))
        c.close()

    def test_bad_password_is_auth_error_and_not_logged(self):
        addr, _ = self.account(0)
        p = self.pop()
        p.user(addr)
        with self.assertRaises(poplib.error_proto) as e:
            p.pass_("not-the-password-xyz")
        self.assertTrue(e.exception.args[0].startswith(b"-ERR [AUTH]"))
        p.quit()
        self.assertNotIn("not-the-password-xyz", self.host.log())
        self.assertRegex(self.host.log(), r"authentication failed")

    def test_pipelined_session(self):
        addr, sent = self.account(3)
        s = socket.create_connection(("127.0.0.1", self.host.ports["pop3"]), timeout=30)
        s.sendall(f"USER {addr}\r\nPASS {PW}\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nDELE 2\r\nQUIT\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertEqual(data.count(b"\r\n.\r\n"), 3)
        self.assertTrue(data.endswith(b"+OK Logging out, messages deleted.\r\n"))
        self.assertEqual(len(self.stored(addr)), 2)


@unittest.skipUnless(CURL, "curl is not installed")
class Curl(Pop3Host):
    def curl(self, url, *args):
        r = subprocess.run([CURL, "-sS", "--max-time", "30", "-u", f"{self._addr}:{PW}", *args, url],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r.stdout

    def test_pop3_and_pop3s(self):
        for scheme, port, extra in (("pop3", self.host.ports["pop3"], []),
                                    ("pop3", self.host.ports["pop3"], ["--ssl-reqd", "-k"]),
                                    ("pop3s", self.host.ports["pop3s"], ["-k"])):
            with self.subTest(scheme=scheme, extra=extra):
                self._addr, sent = self.account(3)
                listing = self.curl(f"{scheme}://127.0.0.1:{port}/", *extra)
                self.assertEqual(len(listing.strip().split(b"\r\n")), 3, listing)
                got = [self.curl(f"{scheme}://127.0.0.1:{port}/{i}", *extra) for i in (1, 2, 3)]
                self.check_download(self._addr, sent, got)
                # DELE through curl's custom request, then the listing shrinks.
                self.curl(f"{scheme}://127.0.0.1:{port}/2", "-X", "DELE", "-I", *extra)
                self.assertEqual(len(self.curl(f"{scheme}://127.0.0.1:{port}/", *extra).strip().split(b"\r\n")), 2)

    def test_sasl_logins(self):
        # curl's own SASL client (RFC 5034 AUTH) with each mechanism it shares with us.
        self._addr, sent = self.account(1)
        for mech in ("PLAIN", "LOGIN"):
            with self.subTest(mech=mech):
                got = self.curl(f"pop3s://127.0.0.1:{self.host.ports['pop3s']}/1", "-k", "--login-options", f"AUTH={mech}")
                self.check_download(self._addr, sent, [got])
        self.assertRegex(self.host.log(), rf"Login: user=<{re.escape(self._addr)}>, method=LOGIN")


@unittest.skipUnless(FETCHMAIL, "fetchmail is not installed")
class Fetchmail(Pop3Host):
    def fetch(self, addr, keep, port_name="pop3", ssl_line='sslproto ""'):
        run_dir = os.path.join(self.host.dir, "fm-" + uuid.uuid4().hex[:8])
        out = os.path.join(run_dir, "out")
        os.makedirs(out)
        mda = os.path.join(run_dir, "mda.sh")
        with open(mda, "w") as f:
            f.write(f"#!/bin/sh\nexec cat > \"$(mktemp -p {out} msg.XXXXXX)\"\n")
        os.chmod(mda, 0o755)
        rc = os.path.join(run_dir, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(f"set no bouncemail\n"
                    f"poll 127.0.0.1 protocol POP3 port {self.host.ports[port_name]} auth password\n"
                    f"  user \"{addr}\" there with password \"{PW}\" is root here\n"
                    f"  {'keep' if keep else 'no keep'} no stripcr {ssl_line}\n"
                    f"  mda \"{mda}\"\n")
        os.chmod(rc, stat.S_IRUSR | stat.S_IWUSR)
        env = dict(os.environ, HOME=run_dir, FETCHMAILHOME=run_dir)
        r = subprocess.run([FETCHMAIL, "-f", rc, "--nosyslog", "--invisible", "-a", "-N"], capture_output=True,
                           env=env, timeout=120)
        # 0: mail fetched, 1: no mail.
        self.assertIn(r.returncode, (0, 1), r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))
        got = []
        for n in sorted(os.listdir(out)):
            with open(os.path.join(out, n), "rb") as f:
                got.append(f.read())
        return got

    def test_keep_mode(self):
        addr, sent = self.account(3)
        got = self.fetch(addr, keep=True)
        self.check_download(addr, sent, got)
        self.assertEqual(len(self.stored(addr)), 3)
        # Again: fetchmail -a fetches everything, still there.
        self.check_download(addr, sent, self.fetch(addr, keep=True))

    def test_no_keep_mode_over_pop3s(self):
        addr, sent = self.account(3, sizes=[10, 3000, 40])
        before = self.stored(addr)
        got = self.fetch(addr, keep=False, port_name="pop3s", ssl_line="ssl no sslcertck")
        self.check_download(addr, sent, got, before)
        self.assertEqual(self.stored(addr), {})
        self.assertEqual(self.fetch(addr, keep=False, port_name="pop3s", ssl_line="ssl no sslcertck"), [])


class Durability(unittest.TestCase):
    """kill -9 around QUIT, UIDLs across restarts and index rebuilds, a stalled reader."""

    def setUp(self):
        self.host = conv.MailHost(CLIENT_CONFIG)
        self.addCleanup(self.host.close)
        import smtplib
        with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], timeout=30) as s:
            for i in range(4):
                s.sendmail("sender@ext.example", ["bob@example.com"], message(f"dur-{i}"))

    def login(self):
        p = poplib.POP3("127.0.0.1", self.host.ports["pop3"], timeout=30)
        p.user("bob@example.com")
        p.pass_(PW)
        return p

    def files(self):
        return sorted(list(self.host.maildir("bob@example.com", "new")) + list(self.host.maildir("bob@example.com", "cur")))

    def test_kill9_between_dele_and_quit_loses_nothing(self):
        before = self.files()
        p = self.login()
        for i in range(1, 5):
            p.dele(i)
        self.host.kill9()
        p.sock.close()
        self.assertEqual(self.files(), before)
        self.host.start()
        p = self.login()
        self.assertEqual(p.stat()[0], 4)
        p.quit()

    def test_kill9_after_quit_ok_keeps_deletions(self):
        p = self.login()
        p.dele(1)
        p.dele(3)
        resp = p.quit()
        self.assertTrue(resp.startswith(b"+OK Logging out, messages deleted"))
        self.host.kill9()
        self.assertEqual(len(self.files()), 2)
        self.host.start()
        p = self.login()
        self.assertEqual(p.stat()[0], 2)
        p.quit()
        r = self.host.cli("index", "check", "bob@example.com", check=False)
        self.host.stop()
        r = self.host.cli("index", "check", "bob@example.com", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_sigterm_says_goodbye_and_keeps_the_mail(self):
        import signal
        p = self.login()
        p.dele(1)
        self.host.server.signal(signal.SIGTERM)
        self.assertTrue(p.file.readline().startswith(b"-ERR [SYS/TEMP] Server shutting down"))
        self.assertEqual(self.host.server.proc.wait(30), 0)
        self.host.start()
        p = self.login()
        self.assertEqual(p.stat()[0], 4)
        p.quit()

    def test_uidls_survive_restart_and_index_rebuild(self):
        p = self.login()
        p.dele(2)
        p.quit()
        p = self.login()
        before = p.uidl()[1]
        p.quit()
        self.assertEqual(len(before), 3)
        self.host.stop()
        r = self.host.cli("index", "rebuild", "bob@example.com")
        self.host.start()
        p = self.login()
        self.assertEqual(p.uidl()[1], before)
        p.quit()

    def test_changes_by_other_maildir_programs_during_a_session(self):
        # Another program (mutt, an IMAP server) renames one file (marks it read) and deletes
        # another while the POP3 session is open: RETR follows the rename and refuses the
        # deleted one with [SYS/PERM]; numbering does not shift.
        p = self.login()
        new = os.path.join(self.host.data, "mail", "example.com", "bob", "new")
        cur = os.path.join(self.host.data, "mail", "example.com", "bob", "cur")
        # In UID order (the U= field); base names don't sort by time (M<usecs> is not padded).
        names = sorted(os.listdir(new), key=lambda n: int(re.search(r",U=(\d+)", n).group(1)))
        os.rename(os.path.join(new, names[0]), os.path.join(cur, names[0].split(":")[0] + ":2,S"))
        os.unlink(os.path.join(new, names[1]))
        self.assertIn(b"Subject: pop3 dur-0", b"\r\n".join(p.retr(1)[1]))
        with self.assertRaises(poplib.error_proto) as e:
            p.retr(2)
        self.assertIn(b"[SYS/PERM]", e.exception.args[0])
        self.assertIn(b"Subject: pop3 dur-2", b"\r\n".join(p.retr(3)[1]))
        p.quit()

    def test_stalled_reader_of_a_large_message_costs_bounded_memory(self):
        import smtplib
        big = message("big", lines=400000)  # about 8 MB
        with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], timeout=60) as s:
            s.sendmail("sender@ext.example", ["bob@example.com"], big)
        pid = self.host.server.proc.pid

        def rss():
            with open(f"/proc/{pid}/status") as f:
                return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024

        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", self.host.ports["pop3"]))
        s.recv(100)
        s.sendall(f"USER bob@example.com\r\nPASS {PW}\r\n".encode())
        got = b""
        while got.count(b"\r\n") < 2:
            got += s.recv(100)
        base = rss()
        s.sendall(b"RETR 5\r\n")
        time.sleep(1.5)  # the server fills the socket and its output buffer, then waits
        grown = rss() - base
        with open(f"/proc/{pid}/maps") as f:
            sanitized = "libasan" in f.read()
        # ASan keeps freed memory in quarantine (fresh pages for every allocation), so RSS only
        # tells the truth about buffering in a normal build.
        if not sanitized:
            self.assertLess(grown, 4 * 1024 * 1024, f"the server grew by {grown} bytes for a client that reads nothing")
        # The client reads now: the whole message arrives intact.
        data = b""
        s.settimeout(60)
        while not data.endswith(b"\r\n.\r\n"):
            chunk = s.recv(1 << 20)
            self.assertTrue(chunk, "connection closed during RETR")
            data += chunk
        s.close()
        head, rest = data.split(b"\r\n", 1)
        self.assertTrue(head.startswith(b"+OK"))
        unstuffed = re.sub(rb"(?m)^\.", b"", rest[:-3])
        self.assertTrue(unstuffed.endswith(big))


class TimeoutDuringRetr(unittest.TestCase):
    def test_a_reader_that_stalls_mid_retr_is_cut_off_without_an_error_line_in_the_message(self):
        host = conv.MailHost(CLIENT_CONFIG + [("pop3_idle_timeout", "1s")])
        self.addCleanup(host.close)
        import smtplib
        with smtplib.SMTP("127.0.0.1", host.ports["mx"], timeout=60) as s:
            s.sendmail("sender@ext.example", ["bob@example.com"], message("stall", lines=300000))
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", host.ports["pop3"]))
        s.sendall(f"USER bob@example.com\r\nPASS {PW}\r\nRETR 1\r\n".encode())
        time.sleep(3)  # reads nothing: no progress for longer than the idle timeout
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertIn(b"+OK Logged in", data)
        self.assertFalse(data.endswith(b"\r\n.\r\n"), "the whole message went out; the test did not stall the server")
        self.assertNotIn(b"Disconnected for inactivity", data)
        self.assertRegex(host.log(), r"timeout after 1s from unknown\[127\.0\.0\.1\]")


if __name__ == "__main__":
    unittest.main()
