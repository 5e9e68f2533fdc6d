"""IMAP against the built binary with real clients: Python's imaplib (plain with LOGIN and
AUTHENTICATE, STARTTLS, IMAP4_SSL), curl's imap://, mail delivered over SMTP and read over IMAP,
IDLE woken by a delivery, and kill -9 right after the tagged OK of APPEND, STORE, EXPUNGE and
MOVE."""
import imaplib
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

import conversation as conv

PW = conv.PASSWORD
CLIENT_CONFIG = [("auth_allow_cleartext_loopback", "yes")]
CURL = shutil.which("curl")


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def message(mark, body="hello"):
    return (f"From: Sender <sender@ext.example>\r\nTo: bob@example.com\r\nSubject: imap {mark}\r\n"
            f"Message-ID: <{mark}@ext.example>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body} {mark}\r\n").encode()


class ImapScripts(unittest.TestCase):
    def test_conversation_scripts(self):
        conv.run_scripts(self, conv.load_scripts(directory=conv.IMAP_SCRIPT_DIR))


class ImapHost(unittest.TestCase):
    """One server for the class; each test uses its own account's mailboxes."""

    @classmethod
    def setUpClass(cls):
        cls.host = conv.MailHost(CLIENT_CONFIG)

    @classmethod
    def tearDownClass(cls):
        cls.host.close()

    def account(self, local):
        """A fresh account for one test (the class shares one server)."""
        address = f"{local}@example.com"
        self.host.cli("user", "add", address, stdin=PW + "\n")
        return address

    def deliver(self, to, *marks):
        with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], timeout=30) as s:
            for m in marks:
                s.sendmail("sender@ext.example", [to], message(m))

    def login(self, user="bob@example.com", port_name="imap"):
        m = imaplib.IMAP4("127.0.0.1", self.host.ports[port_name], timeout=30)
        typ, _ = m.login(user, PW)
        self.assertEqual(typ, "OK")
        return m


class Basics(ImapHost):
    def test_read_mail_delivered_over_smtp(self):
        who = self.account("reader")
        self.deliver(who, "a1", "a2")
        m = self.login(who)
        typ, data = m.select("INBOX")
        self.assertEqual((typ, data), ("OK", [b"2"]))
        typ, data = m.fetch("1:2", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(typ, "OK")
        subjects = [d[1] for d in data if isinstance(d, tuple)]
        self.assertEqual(subjects, [b"Subject: imap a1\r\n\r\n", b"Subject: imap a2\r\n\r\n"])
        typ, data = m.fetch("2", "(BODY[])")
        self.assertIn(b"hello a2\r\n", data[0][1])
        self.assertTrue(data[0][1].startswith(b"Return-Path: <sender@ext.example>\r\n"))
        typ, data = m.fetch("2", "(FLAGS)")
        self.assertIn(b"\\Seen", data[0])
        typ, data = m.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
        self.assertIn(b'"imap a1"', data[0])
        self.assertIn(b'("text" "plain" ("charset" "utf-8")', data[0])
        typ, data = m.search(None, "UNSEEN")
        self.assertEqual(data, [b"1"])
        typ, data = m.uid("SEARCH", None, "SUBJECT", "a2")
        self.assertEqual(typ, "OK")
        self.assertEqual(len(data[0].split()), 1)
        typ, data = m.search(None, "BODY", '"HELLO A1"')
        self.assertEqual(data, [b"1"])
        m.close()
        m.logout()

    def test_store_copy_move_expunge_and_folders(self):
        who = self.account("folders")
        self.deliver(who, "b1", "b2", "b3")
        m = self.login(who)
        self.assertEqual(m.create("Archive/2026")[0], "OK")
        self.assertEqual(m.create("Archive/2026")[0], "NO")
        typ, data = m.list()
        names = [re.search(rb'"/" (.*)$', l).group(1) for l in data]
        self.assertIn(b"Archive/2026", names)
        self.assertIn(b"INBOX", names)
        m.select("INBOX")
        typ, data = m.store("1", "+FLAGS", "(\\Flagged $Work)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"\\Flagged", data[0])
        self.assertIn(b"$Work", data[0])
        typ, data = m.copy("1", "Archive/2026")
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0].decode(), r"^\[COPYUID \d+ \d+ 1\]")
        typ, data = m._simple_command("MOVE", "2", "Archive/2026")
        self.assertEqual(typ, "OK")
        typ, data = m.status("Archive/2026", "(MESSAGES UIDNEXT)")
        self.assertRegex(data[0].decode(), r"\(MESSAGES 2 UIDNEXT 3\)")
        m.store("1", "+FLAGS.SILENT", "(\\Deleted)")
        typ, data = m.expunge()
        # imaplib keeps untagged EXPUNGEs until asked: MOVE's (of message 2), then EXPUNGE's.
        self.assertEqual(data, [b"2", b"1"])
        typ, data = m.select("INBOX")
        left = int(data[0])
        self.assertGreaterEqual(left, 1)
        self.assertEqual(m.rename("Archive/2026", "Old")[0], "OK")
        self.assertEqual(m.subscribe("Old")[0], "OK")
        typ, data = m.lsub()
        self.assertIn(b'() "/" Old', data)
        self.assertEqual(m.unsubscribe("Old")[0], "OK")
        self.assertEqual(m.delete("Old")[0], "OK")
        self.assertEqual(m.delete("INBOX")[0], "NO")
        typ, data = m.namespace()
        self.assertEqual(data, [b'(("" "/")) NIL NIL'])
        # No limits configured: INBOX has no quota root (RFC 9208 4.3).
        typ, data = m.getquotaroot("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0], [b"INBOX"])
        self.assertEqual(m._simple_command("UNSELECT")[0], "OK")
        m.logout()

    def test_append_then_fetch_the_same_bytes(self):
        m = self.login(self.account("appender"))
        text = message("ap1", body="appended " + "x" * 5000)
        typ, data = m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(1764840000), text)
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0].decode(), r"^\[APPENDUID \d+ \d+\] Append completed\.")
        uid = data[0].decode().split()[2].rstrip("]")
        m.select("INBOX")
        typ, data = m.uid("FETCH", uid, "(FLAGS INTERNALDATE BODY.PEEK[])")
        self.assertEqual(data[0][1], text)
        self.assertIn(b"\\Seen", data[0][0])
        self.assertEqual(m.append("Nope", None, None, text)[0], "NO")
        m.logout()

    def test_utf8_accept_folder_names_both_ways(self):
        """imaplib's enable('UTF8=ACCEPT') switches it to UTF-8 names; a folder created under one
        encoding is the same folder under the other."""
        address = self.account("utf8er")
        m = self.login(address)
        self.assertEqual(m.create('"&AMQ-pfel"')[0], "OK")  # modified UTF-7 before ENABLE
        typ, data = m.enable("UTF8=ACCEPT")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.create('"Café"')[0], "OK")
        typ, data = m.list()
        names = [line.decode("utf-8") for line in data]
        self.assertIn('(\\HasNoChildren) "/" "Äpfel"', names)
        self.assertIn('(\\HasNoChildren) "/" "Café"', names)
        self.assertEqual(m.select('"Café"')[0], "OK")
        m.logout()
        m = self.login(address)  # a client without UTF8=ACCEPT sees modified UTF-7
        typ, data = m.list()
        self.assertIn(b'(\\HasNoChildren) "/" Caf&AOk-', data)
        m.logout()

    def test_authenticate_plain_and_bad_password(self):
        m = imaplib.IMAP4("127.0.0.1", self.host.ports["imap"], timeout=30)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("bob@example.com", "wrong")
        typ, _ = m.authenticate("PLAIN", lambda _: f"\0bob@example.com\0{PW}".encode())
        self.assertEqual(typ, "OK")
        m.logout()

    def test_starttls_and_imaps(self):
        # Without auth_allow_cleartext_loopback a plain connection must go through STARTTLS.
        host = conv.MailHost()
        self.addCleanup(host.close)
        m = imaplib.IMAP4("127.0.0.1", host.ports["imap"], timeout=30)
        self.assertIn("LOGINDISABLED", m.capabilities)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("bob@example.com", PW)
        m.starttls(no_verify())
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertEqual(m.login("bob@example.com", PW)[0], "OK")
        m.logout()
        s = imaplib.IMAP4_SSL("127.0.0.1", host.ports["imaps"], ssl_context=no_verify(), timeout=30)
        self.assertEqual(s.login("bob@example.com", PW)[0], "OK")
        self.assertEqual(s.select("INBOX")[0], "OK")
        s.logout()

    def test_idle_wakes_on_delivery(self):
        who = self.account("idler")
        m = self.login(who)
        typ, data = m.select("INBOX")
        before = int(data[0])
        tag = m._new_tag().decode()
        m.send(f"{tag} IDLE\r\n".encode())
        self.assertTrue(m.readline().startswith(b"+ "))
        start = time.monotonic()
        self.deliver(who, "idle1")
        m.sock.settimeout(10)
        line = m.readline()
        took = time.monotonic() - start
        self.assertEqual(line, f"* {before + 1} EXISTS\r\n".encode())
        m.send(b"DONE\r\n")
        while True:
            line = m.readline()
            if line.startswith(tag.encode()):
                break
        self.assertIn(b"OK", line)
        print(f"\n[imap] IDLE told a delivery after {took * 1000:.0f} ms (SMTP transaction included)")
        m.logout()

    @unittest.skipUnless(CURL, "curl not installed")
    def test_curl_lists_fetches_and_appends(self):
        url = f"imap://127.0.0.1:{self.host.ports['imap']}"
        auth = ["--user", f"{self.account('curler')}:{PW}"]
        r = subprocess.run([CURL, "-s", *auth, f"{url}/"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("INBOX", r.stdout)
        mail = self.host.dir + "/curl.eml"
        with open(mail, "wb") as f:
            f.write(message("curl1"))
        r = subprocess.run([CURL, "-s", *auth, "-T", mail, f"{url}/INBOX"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([CURL, "-s", *auth, f"{url}/INBOX;UID=1"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"Subject: imap", r.stdout)


class Qresync(ImapHost):
    def test_reselect_with_qresync_gets_vanished_and_changed_flags(self):
        who = self.account("resync")
        self.deliver(who, "q1", "q2", "q3", "q4")
        c = RawClient(self.host.ports["imap"])
        self.assertIn("OK", c.command(f"LOGIN {who} {PW}"))
        self.assertIn("OK", c.command("ENABLE QRESYNC"))
        c.sock.sendall(b"s1 SELECT INBOX\r\n")
        lines = []
        while True:
            l = c.line()
            lines.append(l)
            if l.startswith("s1 "):
                break
        text = "\n".join(lines)
        uidvalidity = int(re.search(r"\[UIDVALIDITY (\d+)\]", text).group(1))
        modseq = int(re.search(r"\[HIGHESTMODSEQ (\d+)\]", text).group(1))
        self.assertIn("OK", c.command("UID STORE 2 +FLAGS.SILENT (\\Deleted)"))
        self.assertIn("OK", c.command("UID EXPUNGE 2"))
        self.assertIn("OK", c.command("UID STORE 3 +FLAGS.SILENT (\\Flagged)"))
        self.assertIn("OK", c.command("UNSELECT"))
        c.sock.sendall(f"s2 SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:4))\r\n".encode())
        lines = []
        while True:
            l = c.line()
            lines.append(l)
            if l.startswith("s2 "):
                break
        self.assertIn("* VANISHED (EARLIER) 2", lines)
        self.assertTrue(any(re.match(r"^\* 2 FETCH \(UID 3 FLAGS \(\\Flagged[^)]*\) MODSEQ \(\d+\)\)$", l) for l in lines), lines)
        self.assertFalse(any("UID 1 " in l for l in lines), lines)
        self.assertTrue(lines[-1].startswith("s2 OK"))


class Durability(unittest.TestCase):
    """kill -9 right after a tagged OK: what it acknowledged is there after the restart."""

    def setUp(self):
        self.host = conv.MailHost(CLIENT_CONFIG)
        self.addCleanup(self.host.close)

    def login(self):
        m = imaplib.IMAP4("127.0.0.1", self.host.ports["imap"], timeout=30)
        m.login("bob@example.com", PW)
        return m

    def restart(self):
        self.host.kill9()
        self.host.start()
        m = self.login()
        m.select("INBOX")
        return m

    def test_append_store_move_expunge_survive_kill9(self):
        m = self.login()
        m.create("Keep")
        for i in range(3):
            self.assertEqual(m.append("INBOX", None, None, message(f"d{i}"))[0], "OK")
        m = self.restart()
        self.assertEqual(m.search(None, "ALL")[1], [b"1 2 3"])
        self.assertEqual(m.store("1", "+FLAGS", "(\\Flagged)")[0], "OK")
        m = self.restart()
        self.assertIn(b"\\Flagged", m.fetch("1", "(FLAGS)")[1][0])
        self.assertEqual(m._simple_command("MOVE", "2", "Keep")[0], "OK")
        m = self.restart()
        self.assertEqual(m.search(None, "ALL")[1], [b"1 2"])
        self.assertEqual(m.status("Keep", "(MESSAGES)")[1][0].split(b"(")[1], b"MESSAGES 1)")
        m.store("1", "+FLAGS.SILENT", "(\\Deleted)")
        self.assertEqual(m.expunge()[0], "OK")
        m = self.restart()
        self.assertEqual(m.search(None, "ALL")[1], [b"1"])
        self.assertIn(b"d2", m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1])
        m.logout()


if __name__ == "__main__":
    unittest.main()


class RawClient:
    """A small IMAP client that keeps the sequence-number-to-UID map from the untagged responses
    it is sent, as a client must (RFC 9051 7.4.1 EXPUNGE, 7.3.1 EXISTS)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.n = 0
        self.uids = []        # uids[seq - 1]; None for a message whose UID isn't known yet
        self.errors = []
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed")
            self.buf += data
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode()

    def command(self, text):
        self.n += 1
        tag = f"c{self.n}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        while True:
            l = self.line()
            if l.startswith(tag + " "):
                return l
            self.untagged(l)

    def untagged(self, l):
        m = re.match(r"^\* (\d+) (EXISTS|EXPUNGE|FETCH)(.*)$", l)
        if not m:
            return
        n, kind = int(m.group(1)), m.group(2)
        if kind == "EXISTS":
            if n < len(self.uids):
                self.errors.append(f"EXISTS {n} below {len(self.uids)} known messages")
            self.uids += [None] * (n - len(self.uids))
        elif kind == "EXPUNGE":
            if not 1 <= n <= len(self.uids):
                self.errors.append(f"EXPUNGE {n} of {len(self.uids)}")
            else:
                del self.uids[n - 1]
        else:
            u = re.search(r"UID (\d+)", m.group(3))
            if not u:
                return
            if not 1 <= n <= len(self.uids):
                self.errors.append(f"FETCH {n} of {len(self.uids)}")
                return
            uid = int(u.group(1))
            if self.uids[n - 1] not in (None, uid):
                self.errors.append(f"message {n} was UID {self.uids[n - 1]}, now {uid}")
            self.uids[n - 1] = uid


class Concurrency(unittest.TestCase):
    def test_three_sessions_see_deliveries_and_another_sessions_expunges_consistently(self):
        host = conv.MailHost(CLIENT_CONFIG)
        self.addCleanup(host.close)
        with smtplib.SMTP("127.0.0.1", host.ports["mx"], timeout=30) as s:
            for i in range(10):
                s.sendmail("sender@ext.example", ["bob@example.com"], message(f"c{i}"))
        readers = [RawClient(host.ports["imap"]) for _ in range(3)]
        expunger = RawClient(host.ports["imap"])
        for c in readers + [expunger]:
            self.assertIn("OK", c.command(f"LOGIN bob@example.com {PW}"))
            self.assertIn("OK", c.command("SELECT INBOX"))
            self.assertIn("OK", c.command("FETCH 1:* (UID)"))
        import threading
        stop = threading.Event()

        def deliver():
            with smtplib.SMTP("127.0.0.1", host.ports["mx"], timeout=30) as s:
                i = 100
                while not stop.is_set():
                    s.sendmail("sender@ext.example", ["bob@example.com"], message(f"c{i}"))
                    i += 1
        t = threading.Thread(target=deliver)
        t.start()
        try:
            for rnd in range(40):
                # The expunger removes its lowest message now and then.
                if rnd % 3 == 0:
                    self.assertIn("OK", expunger.command("STORE 1 +FLAGS.SILENT (\\Deleted)"))
                    self.assertIn("OK", expunger.command("EXPUNGE"))
                for c in readers:
                    # FETCH and NOOP in turn: expunges are held back during FETCH, told on NOOP.
                    tagged = c.command("FETCH 1:* (UID)" if rnd % 2 else "NOOP")
                    self.assertRegex(tagged, r"^c\d+ (OK|NO \[EXPUNGEISSUED\])")
        finally:
            stop.set()
            t.join()
        for c in readers + [expunger]:
            c.command("NOOP")
            c.command("FETCH 1:* (UID)")
        truth = expunger.uids
        for c in readers:
            self.assertEqual(c.errors, [])
            self.assertEqual(c.uids, truth)
        self.assertEqual(truth, sorted(truth))
        self.assertTrue(all(u is not None for u in truth))
        print(f"\n[imap] 3 readers, 1 expunger, SMTP delivering: {len(truth)} messages at the end, views agree")


MBSYNC = shutil.which("mbsync")


@unittest.skipUnless(MBSYNC, "mbsync (isync) not installed")
class Mbsync(unittest.TestCase):
    """Debian's mbsync syncs a local Maildir with the account both ways: new mail down, local
    mail up (APPEND, UIDPLUS), flags and deletions in both directions; a second run changes
    nothing."""

    def setUp(self):
        self.host = conv.MailHost(CLIENT_CONFIG)
        self.addCleanup(self.host.close)
        self.local = os.path.join(self.host.dir, "local")
        os.makedirs(self.local)
        cert = os.path.join(self.host.data, "tls", f"{conv.pbtest.HOSTNAME}.crt")
        self.rc = os.path.join(self.host.dir, "mbsyncrc")
        with open(self.rc, "w") as f:
            f.write(f"IMAPAccount pb\nHost 127.0.0.1\nPort {self.host.ports['imaps']}\nUser bob@example.com\n"
                    f"Pass {PW}\nSSLType IMAPS\nCertificateFile {cert}\n\n"
                    f"IMAPStore pb-remote\nAccount pb\n\n"
                    f"MaildirStore pb-local\nPath {self.local}/\nInbox {self.local}/INBOX\nSubFolders Verbatim\n\n"
                    f"Channel pb\nFar :pb-remote:\nNear :pb-local:\nPatterns *\nCreate Both\nExpunge Both\n"
                    f"SyncState *\nSync All\n")

    def mbsync(self):
        r = subprocess.run([MBSYNC, "-c", self.rc, "-a"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout + r.stderr

    def local_files(self, folder="INBOX"):
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.local, folder, sub)
            if os.path.isdir(d):
                for n in os.listdir(d):
                    out[n] = open(os.path.join(d, n), "rb").read()
        return out

    def test_two_way_sync_twice(self):
        with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], timeout=30) as s:
            for i in range(3):
                s.sendmail("sender@ext.example", ["bob@example.com"], message(f"mb{i}"))
        self.mbsync()
        down = self.local_files()
        self.assertEqual(len(down), 3)
        self.assertTrue(any(b"imap mb1" in v for v in down.values()))
        self.assertTrue(os.path.isdir(os.path.join(self.local, "Sent")))
        # Up: a message written locally, and a local flag change (the Maildir S flag).
        new_dir = os.path.join(self.local, "INBOX", "new")
        with open(os.path.join(new_dir, "1700000000.local1.host"), "wb") as f:
            f.write(message("local1"))
        name = sorted(down)[0]
        src = os.path.join(self.local, "INBOX", "cur" if os.path.exists(os.path.join(self.local, "INBOX", "cur", name)) else "new", name)
        base = name.split(":2,")[0]
        os.rename(src, os.path.join(self.local, "INBOX", "cur", base + ":2,FS"))
        self.mbsync()
        m = imaplib.IMAP4("127.0.0.1", self.host.ports["imap"], timeout=30)
        m.login("bob@example.com", PW)
        m.select("INBOX")
        self.assertEqual(len(m.search(None, "ALL")[1][0].split()), 4)
        self.assertEqual(len(m.search(None, "FLAGGED SEEN")[1][0].split()), 1)
        self.assertEqual(len(m.search(None, "SUBJECT", "local1")[1][0].split()), 1)
        # Down: a deletion on the server.
        m.store("1", "+FLAGS.SILENT", "(\\Deleted)")
        m.expunge()
        m.logout()
        self.mbsync()
        self.assertEqual(len(self.local_files()), 3)
        # A second run has nothing to do.
        before = self.local_files()
        out = self.mbsync()
        self.assertEqual(self.local_files(), before, out)
