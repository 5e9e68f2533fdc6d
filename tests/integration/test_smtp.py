"""The SMTP server the way real clients use it: the scripted conversations of tests/scripts/smtp
(every command, extension and reply code; see conversation.py), then swaks (plain, STARTTLS,
implicit TLS, AUTH PLAIN/LOGIN/CRAM-MD5 good and bad, PIPELINING), SCRAM-SHA-256 and BDAT from a
raw socket, a client that sends one byte per segment, and Python's smtplib (STARTTLS + login +
send_message, SMTP_SSL, one message to local and remote recipients, SMTPUTF8, megabyte messages
through DATA and BDAT). Every local delivery is checked on disk: in the account's Maildir new/
with Return-Path, Delivered-To and Received first and then exactly the bytes sent, and in the
account's index. Aliases with two targets, plus-addressing and the catch-all; submission rules
(STARTTLS first, AUTH before any RCPT, Message-ID and Date added for authenticated senders only,
as whole lines even past header_size_limit); remote recipients land in DATA/queue/messages with
the right envelope; kill -9 right after the 250 loses nothing, SIGTERM lets a transaction in
DATA finish, and `pillarbox index check` agrees with the Maildir afterwards."""
import base64
import email.message
import email.policy
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import unittest
import uuid

import conversation as conv
import scram
import storecheck as sc

SWAKS = shutil.which("swaks")
BOB, ALICE, CAROL = "bob@example.com", "alice@example.com", "carol@example.com"
PW = conv.PASSWORD
# Real clients come from outside: 127.0.0.1 is not trusted here (no relaying without AUTH, no
# Message-ID/Date added for unauthenticated senders).
CLIENT_CONFIG = [("mynetworks", "192.0.2.0/24"), ("auth_allow_cleartext_loopback", "yes"),
                 ("auth_mechanisms", "plain login cram-md5 scram-sha-256")]
DELIVERED = re.compile(rb"\AReturn-Path: <([^\r\n]*)>\r\nDelivered-To: ([^\r\n]*)\r\n"
                       rb"(Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)")


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def marker():
    return "mk-" + uuid.uuid4().hex[:16]


def message(mark, subject="test", extra_headers="", body=None, msg_id=True, date=True):
    """A CRLF message holding mark in its Subject and body."""
    head = f"From: Sender <sender@ext.example>\r\nTo: bob@example.com\r\nSubject: {subject} {mark}\r\n"
    if date:
        head += "Date: Mon, 02 Jan 2023 03:04:05 +0000\r\n"
    if msg_id:
        head += f"Message-ID: <{mark}@ext.example>\r\n"
    head += extra_headers
    if body is None:
        body = f"Hello {mark}.\r\n.a line with a leading dot\r\n..two dots\r\n\r\nlast line\r\n"
    return (head + "\r\n" + body).encode()


class SmtpScripts(unittest.TestCase):
    def test_conversation_scripts(self):
        conv.run_scripts(self, conv.load_scripts())


class DeliveryChecks:
    """Assertions on what a MailHost stored."""

    host: conv.MailHost

    def delivered(self, account, mark, count=1, wait=0):
        """The messages of account holding mark (exactly count of them)."""
        deadline = time.time() + wait
        while True:
            found = self.host.find(account, mark)
            if len(found) >= count or time.time() >= deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(found), count, f"{account}: {len(found)} messages with {mark}, expected {count}")
        return found

    def assert_delivery(self, data, account, sender, sent, received_for=None, added=b""):
        """data = Return-Path, Delivered-To, Received, then exactly sent (with `added` header
        lines inserted at the start of its header section, right after Received:)."""
        m = DELIVERED.match(data)
        self.assertIsNotNone(m, f"stored message does not start with Return-Path, Delivered-To, Received:\n{data[:600]!r}")
        self.assertEqual(m.group(1).decode(), sender)
        self.assertEqual(m.group(2).decode(), account)
        received = m.group(3).decode()
        self.assertIn("by mail.pillarbox.test (Pillarbox) with ", received)
        self.assertRegex(received, r"\[127\.0\.0\.1\]")
        if received_for:
            self.assertIn(f"for <{received_for}>", received)
        rest = data[m.end():]
        if added:
            self.assertEqual(rest[:len(added)], added)
            self.assertEqual(rest[len(added):], sent)
        else:
            self.assertEqual(rest, sent, "the stored message is not byte-identical to what was sent")
        return received

    def assert_indexed(self, account, mark):
        """Every INBOX file holding mark has an index row pointing at it."""
        root = sc.account_root(self.host.data, account)
        rows = sc.messages(root).get("INBOX", {})
        files = {f for _, f, _, _ in rows.values()}
        for sub in ("new", "cur"):
            for name, data in self.host.maildir(account, sub).items():
                if mark.encode() in data:
                    self.assertIn(f"{sub}/{name}", files, f"{account}: {sub}/{name} is not in the index")


def scram_sha256(c, user, password, initial_response=True):
    """AUTH SCRAM-SHA-256 (RFC 5802, 7677) on a conv.Client; returns the final reply line, or
    what went wrong."""
    return scram.login(c, user, password, initial_response, prefix="334 ")


def swaks(*args, timeout=30):
    # --timeout 3: a server that never answers fails the test quickly.
    return subprocess.run([SWAKS, "--helo", "client.example", "--timeout", "3", *args],
                          capture_output=True, text=True, timeout=timeout)


class SmtpClients(DeliveryChecks, unittest.TestCase):
    """One server for the class; each test finds its own messages by a unique marker."""

    @classmethod
    def setUpClass(cls):
        cls.host = conv.MailHost(CLIENT_CONFIG)

    @classmethod
    def tearDownClass(cls):
        log = cls.host.close()
        for bad in conv.SANITY:
            if bad in log:
                raise AssertionError(f"server log has {bad!r}")

    def port(self, name):
        return self.host.ports[name]

    def write_message(self, data):
        path = os.path.join(self.host.dir, f"msg-{uuid.uuid4().hex[:8]}.eml")
        with open(path, "wb") as f:
            # swaks ends the data with CRLF "." CRLF itself: a final newline would add an empty line.
            f.write(data.replace(b"\r\n", b"\n").removesuffix(b"\n"))
        return "@" + path

    def test_swaks_plain(self):
        self.skip_without_swaks()
        mark = marker()
        sent = message(mark)
        r = swaks("-s", f"127.0.0.1:{self.port('mx')}", "-f", "sender@ext.example", "-t", BOB,
                  "--data", self.write_message(sent))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"<-  250 2\.0\.0 Ok: queued as [0-9A-F]+")
        data = self.delivered(BOB, mark)[0]
        received = self.assert_delivery(data, BOB, "sender@ext.example", sent, received_for=BOB)
        self.assertIn("with ESMTP id", received)
        self.assert_indexed(BOB, mark)

    def test_swaks_starttls(self):
        self.skip_without_swaks()
        mark = marker()
        sent = message(mark)
        r = swaks("-s", f"127.0.0.1:{self.port('mx')}", "-tls", "-f", "sender@ext.example", "-t", ALICE,
                  "--data", self.write_message(sent))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("TLS started", r.stdout)
        received = self.assert_delivery(self.delivered(ALICE, mark)[0], ALICE, "sender@ext.example", sent)
        self.assertIn("with ESMTPS id", received)
        self.assertRegex(received, r"\(using TLSv1\.[23] with cipher \S+\)")
        self.assert_indexed(ALICE, mark)

    def test_swaks_implicit_tls_with_auth(self):
        self.skip_without_swaks()
        mark = marker()
        sent = message(mark)
        r = swaks("-s", f"127.0.0.1:{self.port('submissions')}", "-tlsc", "--auth", "PLAIN", "--auth-user", BOB,
                  "--auth-password", PW, "-f", BOB, "-t", ALICE, "--data", self.write_message(sent))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        received = self.assert_delivery(self.delivered(ALICE, mark)[0], ALICE, BOB, sent)
        self.assertIn("with ESMTPSA id", received)

    def test_swaks_implicit_tls_without_auth_is_refused(self):
        self.skip_without_swaks()
        mark = marker()
        r = swaks("-s", f"127.0.0.1:{self.port('submissions')}", "-tlsc", "-f", BOB, "-t", ALICE,
                  "--data", self.write_message(message(mark)))
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"<~?\*+ 554 5\.7\.1 ")
        self.assertEqual(self.host.find(ALICE, mark), [])

    def test_swaks_auth_mechanisms(self):
        """AUTH PLAIN, LOGIN and CRAM-MD5 as swaks does them (no initial response for LOGIN and
        CRAM-MD5), on the submission port after STARTTLS and on the MX port in the clear from
        loopback (auth_allow_cleartext_loopback = yes), then a message to a local user and a
        relayed one to a remote domain."""
        self.skip_without_swaks()
        for mech, listener in (("PLAIN", "submission"), ("PLAIN", "mx"), ("LOGIN", "submission"),
                               ("CRAM-MD5", "submission"), ("CRAM-MD5", "mx")):
            tls = ["-tls"] if listener == "submission" else []
            with self.subTest(mech=mech, listener=listener):
                mark = marker()
                sent = message(mark)
                before = len(self.host.queued())
                r = swaks("-s", f"127.0.0.1:{self.port(listener)}", *tls, "--auth", mech, "--auth-user", BOB,
                          "--auth-password", PW, "-f", BOB, "-t", f"{CAROL},friend@ext.example",
                          "--data", self.write_message(sent))
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertRegex(r.stdout, r"<[-~]  235 2\.7\.0 ")
                self.assert_delivery(self.delivered(CAROL, mark)[0], CAROL, BOB, sent)
                queued = self.host.queued()
                self.assertEqual(len(queued), before + 1)
                self.assertIn(mark.encode(), queued[-1][1])

    def test_swaks_auth_bad_password(self):
        self.skip_without_swaks()
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                mark = marker()
                r = swaks("-s", f"127.0.0.1:{self.port('submission')}", "-tls", "--auth", mech, "--auth-user", BOB,
                          "--auth-password", "not-the-password", "-f", BOB, "-t", "friend@ext.example",
                          "--data", self.write_message(message(mark)))
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stdout, r"<~?\*+ 535 5\.7\.8 ")
                self.assertNotIn("235 ", r.stdout)
        self.assertNotIn(PW, self.host.log())

    def test_swaks_pipeline(self):
        self.skip_without_swaks()
        mark = marker()
        sent = message(mark)
        r = swaks("-s", f"127.0.0.1:{self.port('mx')}", "--pipeline", "-f", "sender@ext.example",
                  "-t", f"{BOB},{ALICE},nobody@example.com", "--data", self.write_message(sent))
        # swaks gives up when a recipient is refused unless told otherwise; the point here is
        # that the pipelined group was answered in order.
        self.assertRegex(r.stdout, r"(?s)MAIL FROM:<sender@ext\.example>\s+ -> RCPT TO:<bob@example\.com>")
        self.assertRegex(r.stdout, r"(?s)<-  250 2\.1\.0 Ok.*<-  250 2\.1\.5 Ok.*<-  250 2\.1\.5 Ok.*<\*+ 550 5\.1\.1 ")
        mark = marker()
        sent = message(mark)
        r = swaks("-s", f"127.0.0.1:{self.port('mx')}", "--pipeline", "-f", "sender@ext.example",
                  "-t", f"{BOB},{ALICE}", "--data", self.write_message(sent))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for a in (BOB, ALICE):
            self.assert_delivery(self.delivered(a, mark)[0], a, "sender@ext.example", sent)

    def data_segments_in(self, c):
        """Segments with data this client socket has received (struct tcp_info's
        tcpi_data_segs_in, Linux 4.6+): each reply write of the server is one on loopback."""
        info = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        if len(info) < 156:
            self.skipTest("tcp_info without tcpi_data_segs_in")
        return int.from_bytes(info[152:156], "little")

    def test_pipelined_group_answered_in_one_segment(self):
        """RFC 2920 section 3.2: the replies to MAIL and RCPT wait for the rest of the group and
        go out with DATA's 354 in one write; and they are never held while the client waits:
        a group cut off in the middle of a line gets its replies at once."""
        mark = marker()
        sent = message(mark, body=f"grouped replies {mark}\r\n")
        c = conv.Client(self.port("mx"))
        try:
            self.assertTrue(c.line().startswith("220 "))
            c.send(b"EHLO client.example\r\n")
            self.assertIn("250 CHUNKING", c.reply())
            before = self.data_segments_in(c)
            c.send(f"MAIL FROM:<sender@ext.example>\r\nRCPT TO:<{BOB}>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
            replies = [c.reply() for _ in range(4)]
            self.assertEqual([r[0][:3] for r in replies], ["250", "250", "250", "354"])
            self.assertEqual(self.data_segments_in(c) - before, 1, "the four replies came in more than one write")
            c.send(sent + b".\r\n")
            self.assertTrue(c.reply()[0].startswith("250 2.0.0 Ok: queued as"))
            # A group whose last line is still incomplete: the client may be waiting for the
            # replies so far (rule 4: flush whenever the input buffer is emptied).
            c.send(b"RSET\r\nMAIL FROM:<sender@ext.example>\r\nRCPT TO:<bob@exa")
            self.assertEqual(c.reply()[0][:3], "250")
            self.assertEqual(c.reply()[0][:3], "250")
            c.send(b"mple.com>\r\n")
            self.assertEqual(c.reply()[0][:3], "250")
            c.send(b"QUIT\r\n")
            self.assertEqual(c.reply()[0][:3], "221")
        finally:
            c.close()
        for a in (BOB, ALICE):
            self.assert_delivery(self.delivered(a, mark)[0], a, "sender@ext.example", sent)

    def test_bdat_chunks_are_stored_verbatim(self):
        """BDAT content is not dot-stuffed: a "." line inside a chunk is data (RFC 3030)."""
        mark = marker()
        sent = message(mark, body=f"chunk test {mark}\r\n.\r\n..\r\n.x\r\nend\r\n")
        chunks = [sent[:17], sent[17:60], sent[60:]]
        c = conv.Client(self.port("mx"))
        try:
            self.assertTrue(c.line().startswith("220 "))
            c.send(b"EHLO client.example\r\n")
            self.assertIn("250 CHUNKING", c.reply())
            c.send(b"MAIL FROM:<sender@ext.example> BODY=8BITMIME\r\n")
            self.assertTrue(c.line().startswith("250 "))
            c.send(b"RCPT TO:<bob@example.com>\r\n")
            self.assertTrue(c.line().startswith("250 "))
            total = 0
            for i, chunk in enumerate(chunks):
                last = i == len(chunks) - 1
                c.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
                total += len(chunk)
                line = c.line()
                if last:
                    self.assertRegex(line, r"^250 2\.0\.0 Ok: queued as [0-9A-F]+$")
                else:
                    self.assertRegex(line, rf"^250 2\.0\.0 .*\b{total}\b")
            c.send(b"QUIT\r\n")
            self.assertTrue(c.line().startswith("221 "))
        finally:
            c.close()
        self.assert_delivery(self.delivered(BOB, mark)[0], BOB, "sender@ext.example", sent)
        self.assert_indexed(BOB, mark)

    def test_scram_sha256(self):
        """SCRAM-SHA-256 with and without an initial response, after STARTTLS on submission; a
        wrong password fails with 535."""
        for initial in (True, False):
            with self.subTest(initial_response=initial):
                c = conv.Client(self.port("submission"), timeout=3)
                self.addCleanup(c.close)
                c.line()
                c.send(b"EHLO client.example\r\n")
                c.reply()
                c.send(b"STARTTLS\r\n")
                self.assertTrue(c.line().startswith("220 "))
                c.start_tls()
                c.send(b"EHLO client.example\r\n")
                self.assertTrue(any("SCRAM-SHA-256" in l for l in c.reply()))
                self.assertRegex(scram_sha256(c, "nobody@example.com", PW, initial) or "", r"^535 5\.7\.8 ")
                self.assertRegex(scram_sha256(c, BOB, "wrong", initial) or "", r"^535 5\.7\.8 ")
                self.assertRegex(scram_sha256(c, BOB, PW, initial) or "", r"^235 2\.7\.0 ")
                c.send(b"MAIL FROM:<bob@example.com>\r\n")
                self.assertTrue(c.line().startswith("250 "))
                c.send(b"RCPT TO:<friend@ext.example>\r\n")
                self.assertTrue(c.line().startswith("250 "), "authenticated by SCRAM: relaying allowed")

    def test_large_message(self):
        """Megabytes through DATA and BDAT (past the session's delivery buffer, so reading
        pauses and resumes) to a local account and the queue at once: stored byte-identical."""
        for how in ("DATA", "BDAT"):
            with self.subTest(how=how):
                mark = marker()
                lines = "".join(f"{mark} line {i:07d} " + "abcdefghij" * 6 + "\r\n" for i in range(40000))
                sent = message(mark, body=lines)
                before = len(self.host.queued())
                with smtplib.SMTP("127.0.0.1", self.port("submission"), local_hostname="client.example", timeout=30) as s:
                    s.starttls(context=no_verify())
                    s.login(BOB, PW)
                    if how == "DATA":
                        self.assertEqual(s.sendmail(BOB, [ALICE, "friend@ext.example"], sent), {})
                    else:
                        self.assertEqual(s.mail(BOB)[0], 250)
                        self.assertEqual(s.rcpt(ALICE)[0], 250)
                        self.assertEqual(s.rcpt("friend@ext.example")[0], 250)
                        step = 1 << 20
                        for off in range(0, len(sent), step):
                            chunk = sent[off:off + step]
                            last = off + step >= len(sent)
                            s.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
                            code, text = s.getreply()
                            self.assertEqual(code, 250, text)
                self.assert_delivery(self.delivered(ALICE, mark)[0], ALICE, BOB, sent)
                queued = self.host.queued()
                self.assertEqual(len(queued), before + 1)
                eml = queued[-1][1]
                received = re.match(rb"\AReceived: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", eml)
                self.assertEqual(eml[received.end():], sent)

    def test_smtplib_starttls_login_send_message(self):
        mark = marker()
        msg = email.message.EmailMessage(policy=email.policy.SMTP)
        msg["From"] = BOB
        msg["To"] = ALICE
        msg["Subject"] = f"smtplib {mark}"
        msg["Date"] = "Tue, 03 Jan 2023 04:05:06 +0000"
        msg["Message-ID"] = f"<{mark}@example.com>"
        msg.set_content(f"Grüße {mark}\n.leading dot\n", cte="8bit")
        sent = msg.as_bytes()
        with smtplib.SMTP("127.0.0.1", self.port("submission"), local_hostname="client.example", timeout=10) as s:
            s.starttls(context=no_verify())
            s.login(BOB, PW)
            refused = s.send_message(msg)
            self.assertEqual(refused, {})
        data = self.delivered(ALICE, mark)[0]
        received = self.assert_delivery(data, ALICE, BOB, sent)
        self.assertIn("with ESMTPSA id", received)
        self.assertIn(f"Grüße {mark}".encode(), data)
        self.assert_indexed(ALICE, mark)

    def test_smtplib_ssl(self):
        mark = marker()
        sent = message(mark)
        with smtplib.SMTP_SSL("127.0.0.1", self.port("submissions"), local_hostname="client.example",
                              context=no_verify(), timeout=10) as s:
            s.login(BOB, PW)
            self.assertEqual(s.sendmail(BOB, [BOB], sent), {})
        self.assert_delivery(self.delivered(BOB, mark)[0], BOB, BOB, sent)
        self.assert_indexed(BOB, mark)

    def test_local_and_remote_recipients(self):
        """An authenticated user sends one message to local accounts, an alias and two remote
        addresses: one copy per local account, one queued message for the remote ones."""
        before = {env["id"] for env, _ in self.host.queued()}
        mark = marker()
        sent = message(mark)
        rcpts = [ALICE, "friend@ext.example", "sales@example.com", "Other@Remote.Example"]
        with smtplib.SMTP("127.0.0.1", self.port("submission"), local_hostname="client.example", timeout=10) as s:
            s.starttls(context=no_verify())
            s.login(BOB, PW)
            self.assertEqual(s.sendmail(BOB, rcpts, sent, mail_options=["RET=HDRS", "ENVID=QQ314159"],
                                        rcpt_options=["NOTIFY=FAILURE,DELAY"]), {})
        # alice is named directly and through sales@: still one copy.
        self.assert_delivery(self.delivered(ALICE, mark)[0], ALICE, BOB, sent)
        self.assert_delivery(self.delivered(BOB, mark)[0], BOB, BOB, sent)
        new = [(env, eml) for env, eml in self.host.queued() if env["id"] not in before]
        self.assertEqual(len(new), 1, new)
        env, eml = new[0]
        self.assertEqual(env["sender"], BOB)
        self.assertEqual([r["address"] for r in env["recipients"]], ["friend@ext.example", "Other@remote.example"])
        for r in env["recipients"]:
            self.assertEqual(sorted(r["notify"]), ["delay", "failure"])
        self.assertEqual(env["ret"], "HDRS")
        self.assertEqual(env["envid"], "QQ314159")
        self.assertEqual(env["sasl_user"], BOB)
        self.assertEqual(env["client_ip"], "127.0.0.1")
        self.assertEqual(env["helo"], "client.example")
        self.assertIsNotNone(eml, "messages/<ID>.eml is missing")
        self.assertEqual(env["size"], len(eml))
        self.assertTrue(eml.startswith(b"Received: "), eml[:200])
        received = re.match(rb"\AReceived: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", eml)
        self.assertEqual(eml[received.end():], sent)
        self.assertNotIn(b"Return-Path:", eml)
        self.assertNotIn(b"Delivered-To:", eml)

    def test_alias_with_two_targets(self):
        mark = marker()
        sent = message(mark)
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@ext.example", ["sales@example.com"], sent), {})
        for a in (BOB, ALICE):
            self.assert_delivery(self.delivered(a, mark)[0], a, "sender@ext.example", sent, received_for="sales@example.com")
            self.assert_indexed(a, mark)
        self.assertEqual(self.host.find(CAROL, mark), [])

    def test_plus_addressing(self):
        mark = marker()
        sent = message(mark)
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@ext.example", ["bob+lists@example.com"], sent), {})
        self.assert_delivery(self.delivered(BOB, mark)[0], BOB, "sender@ext.example", sent)
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("sender@ext.example", ["nobody+lists@example.com"], sent)
            code, text = cm.exception.recipients["nobody+lists@example.com"]
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith(b"5.1.1 "), text)

    def test_catch_all(self):
        mark = marker()
        sent = message(mark)
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@ext.example", ["anything@catchall.example", "else@CatchAll.example"], sent), {})
        # both addresses reach carol: one copy.
        self.assert_delivery(self.delivered(CAROL, mark)[0], CAROL, "sender@ext.example", sent)
        self.assertEqual(self.host.find(BOB, mark), [])

    def test_submission_rules(self):
        mark = marker()
        sent = message(mark)
        before = len(self.host.queued())
        with smtplib.SMTP("127.0.0.1", self.port("submission"), local_hostname="client.example", timeout=10) as s:
            s.ehlo()
            code, text = s.mail(BOB)
            self.assertEqual(code, 530)
            self.assertTrue(text.startswith(b"5.7.0 "), text)
            s.starttls(context=no_verify())
            s.ehlo()
            self.assertEqual(s.mail(BOB)[0], 250)
            code, text = s.rcpt("friend@ext.example")
            self.assertEqual(code, 554)
            self.assertTrue(text.startswith(b"5.7.1 "), text)
            code, text = s.rcpt(ALICE)
            self.assertEqual(code, 554, "an unauthenticated client on submission may not send to local users either")
            s.rset()
            s.login(BOB, PW)
            self.assertEqual(s.sendmail(BOB, ["friend@ext.example"], sent), {})
        self.assertEqual(len(self.host.queued()), before + 1)
        self.assertIn(mark.encode(), self.host.queued()[-1][1])

    def test_missing_message_id_and_date(self):
        """Submission (authenticated) adds Message-ID and Date when missing; the MX port does not
        touch mail from an untrusted, unauthenticated client."""
        mark = marker()
        sent = message(mark, msg_id=False, date=False)
        with smtplib.SMTP("127.0.0.1", self.port("submission"), local_hostname="client.example", timeout=10) as s:
            s.starttls(context=no_verify())
            s.login(BOB, PW)
            self.assertEqual(s.sendmail(BOB, [ALICE], sent), {})
        data = self.delivered(ALICE, mark)[0]
        m = re.search(rb"\r\nMessage-ID: (<[^\r\n]+@mail\.pillarbox\.test>)\r\nDate: ([^\r\n]+)\r\n", data)
        self.assertIsNotNone(m, data[:800])
        self.assertRegex(m.group(2).decode(), r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$")
        self.assert_delivery(data, ALICE, BOB, sent, added=m.group(0)[2:])

        mark = marker()
        sent = message(mark, msg_id=False, date=False)
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@ext.example", [ALICE], sent), {})
        data = self.delivered(ALICE, mark)[0]
        self.assert_delivery(data, ALICE, "sender@ext.example", sent)
        self.assertNotRegex(data, rb"(?im)^(Message-ID|Date):")

    def test_header_section_over_header_size_limit(self):
        """A header section longer than header_size_limit (100 KiB) from an authenticated
        sender: whatever the server adds (Message-ID, Date) goes in as whole lines, and every
        line sent is stored unchanged."""
        mark = marker()
        filler = "".join(f"X-Filler-{i:03d}: " + "f" * 990 + "\r\n" for i in range(150))
        sent = message(mark, msg_id=False, date=False, extra_headers=filler)
        with smtplib.SMTP("127.0.0.1", self.port("submission"), local_hostname="client.example", timeout=10) as s:
            s.starttls(context=no_verify())
            s.login(BOB, PW)
            self.assertEqual(s.sendmail(BOB, [ALICE], sent), {})
        data = self.delivered(ALICE, mark)[0]
        rest = data[DELIVERED.match(data).end():]
        added = list(re.finditer(rb"(?:Message-ID: <[^>\r\n]*@mail\.pillarbox\.test>\r\n)?(?:Date: [^\r\n]*\r\n)?", rest))
        added = [m for m in added if m.group(0)]
        for m in added:
            self.assertTrue(m.start() == 0 or rest[m.start() - 2:m.start()] == b"\r\n",
                            f"added header glued to a line: {rest[max(0, m.start() - 40):m.end()]!r}")
        for m in reversed(added):
            rest = rest[:m.start()] + rest[m.end():]
        self.assertEqual(rest, sent, "header lines changed")

    def test_smtputf8(self):
        """RFC 6531: a UTF-8 sender with SMTPUTF8 is kept as is in Return-Path; the Received
        header says UTF8SMTP."""
        mark = marker()
        sender = "jörg@bücher.example"
        sent = message(mark, extra_headers="X-Note: Grüße\r\n")
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail(sender, [BOB], sent, mail_options=["SMTPUTF8", "BODY=8BITMIME"]), {})
        data = self.delivered(BOB, mark)[0]
        self.assertTrue(data.startswith(f"Return-Path: <{sender}>\r\n".encode()), data[:100])
        received = self.assert_delivery(data, BOB, sender, sent)
        self.assertIn("with UTF8SMTP id", received)

    def test_null_sender(self):
        """A bounce (MAIL FROM:<>) is delivered with Return-Path: <>."""
        mark = marker()
        sent = message(mark, subject="Undelivered Mail Returned to Sender")
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("", [BOB], sent), {})
        self.assert_delivery(self.delivered(BOB, mark)[0], BOB, "", sent)

    def test_one_byte_at_a_time(self):
        """Every command and the whole DATA split into one-byte segments (the end marker, dot
        stuffing and CRLFs straddle reads)."""
        mark = marker()
        sent = message(mark)
        stuffed = re.sub(rb"(?m)^\.", b"..", sent)
        c = conv.Client(self.port("mx"))
        self.addCleanup(c.close)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def dribble(data):
            for i in range(len(data)):
                c.send(data[i:i + 1])

        self.assertTrue(c.line().startswith("220 "))
        dribble(b"EHLO client.example\r\n")
        self.assertTrue(c.reply()[-1].startswith("250 "))
        for cmd, code in ((b"MAIL FROM:<sender@ext.example>\r\n", "250"), (b"RCPT TO:<bob@example.com>\r\n", "250"),
                          (b"DATA\r\n", "354")):
            dribble(cmd)
            self.assertTrue(c.line().startswith(code))
        dribble(stuffed + b".\r\n")
        self.assertRegex(c.line(), r"^250 2\.0\.0 ")
        self.assert_delivery(self.delivered(BOB, mark)[0], BOB, "sender@ext.example", sent)

    def test_relay_refused_on_mx_without_auth(self):
        before = len(self.host.queued())
        with smtplib.SMTP("127.0.0.1", self.port("mx"), local_hostname="client.example", timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("sender@ext.example", ["victim@ext.example"], message(marker()))
            code, text = cm.exception.recipients["victim@ext.example"]
            self.assertEqual(code, 554)
            self.assertIn(b"Relay access denied", text)
        self.assertEqual(len(self.host.queued()), before)

    def skip_without_swaks(self):
        if not SWAKS:
            self.skipTest("swaks is not installed (apt-get install swaks)")


class SmtpDurability(DeliveryChecks, unittest.TestCase):
    """A server of its own per test: kill -9 and `pillarbox index check` need it stopped."""

    def setUp(self):
        self.host = conv.MailHost(CLIENT_CONFIG)
        self.addCleanup(self.host.close)

    def index_check(self, account):
        r = self.host.cli("index", "check", account, check=False)
        self.assertEqual(r.returncode, 0, f"index check {account}: {r.stdout}{r.stderr}")
        self.assertIn("index matches the Maildir", r.stdout + r.stderr)

    def test_kill9_right_after_250(self):
        """Principle 1: the 250 after DATA/BDAT means the message is on disk and indexed."""
        sent = {}  # marker: (accounts, message) for every 250 received
        acked = threading.Event()

        def client(i):
            # Four clients deliver at once; the kill comes when one of them has had three 250s,
            # with the others in the middle of a transaction.
            accounts = [BOB, ALICE] if i % 2 else [BOB]
            try:
                with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], local_hostname="client.example", timeout=10) as s:
                    for k in range(3):
                        mark = marker()
                        data = message(mark, body=f"{mark}\r\n" + "line\r\n" * (200 * k + 1))
                        s.sendmail("sender@ext.example", accounts, data)
                        sent[mark] = (accounts, data)
            except (smtplib.SMTPException, OSError):
                pass  # cut off by the kill
            finally:
                acked.set()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        acked.wait(20)
        snapshot = dict(sent)  # everything acknowledged before the kill
        self.host.kill9()
        for t in threads:
            t.join(20)
        self.assertGreaterEqual(len(snapshot), 3)
        for mark, (accounts, data) in snapshot.items():
            for a in accounts:
                self.assert_delivery(self.delivered(a, mark)[0], a, "sender@ext.example", data)
                self.assert_indexed(a, mark)
        # Messages in flight at the kill may sit in new/ unindexed until the account is opened
        # again (recovery): `index check` must agree once the restarted server has opened both.
        self.host.start()
        for a in (BOB, ALICE):
            mark = marker()
            with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], local_hostname="client.example", timeout=10) as s:
                s.sendmail("sender@ext.example", [a], message(mark))
            self.delivered(a, mark)
        self.assertEqual(self.host.stop(), 0)
        for a in (BOB, ALICE):
            self.index_check(a)
        for mark, (accounts, data) in snapshot.items():
            for a in accounts:
                self.delivered(a, mark)

    def test_sigterm_lets_a_transaction_finish(self):
        """SIGTERM while a client is in DATA: the message may still finish (within
        shutdown_timeout) and is then delivered; the client gets 250, then 421."""
        mark = marker()
        c = conv.Client(self.host.ports["mx"])
        self.addCleanup(c.close)
        c.line()
        for cmd, code in ((b"EHLO client.example", "250 "), (b"MAIL FROM:<sender@ext.example>", "250 "),
                          (b"RCPT TO:<bob@example.com>", "250 "), (b"DATA", "354 ")):
            c.send(cmd + b"\r\n")
            self.assertTrue(c.reply()[-1].startswith(code))
        sent = message(mark)
        stuffed = re.sub(rb"(?m)^\.", b"..", sent)
        c.send(stuffed[:50])
        self.host.server.signal(signal.SIGTERM)
        self.host.server.wait_log(r"terminating on signal SIGTERM")
        time.sleep(0.2)
        c.send(stuffed[50:] + b".\r\n")
        self.assertRegex(c.line() or "", r"^250 2\.0\.0 ")
        self.assertRegex(c.line() or "", r"^421 4\.3\.2 ")
        self.assertEqual(self.host.server.proc.wait(20), 0)
        self.assert_delivery(self.delivered(BOB, mark)[0], BOB, "sender@ext.example", sent)
        self.index_check(BOB)

    def test_index_check_after_deliveries(self):
        marks = []
        with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], local_hostname="client.example", timeout=10) as s:
            for rcpts in ([BOB], ["sales@example.com"], ["bob+x@example.com", ALICE], ["x@catchall.example"]):
                mark = marker()
                marks.append((mark, rcpts))
                s.sendmail("sender@ext.example", rcpts, message(mark))
        c = conv.Client(self.host.ports["mx"])
        try:
            c.line()
            c.send(b"EHLO client.example\r\n")
            c.reply()
            c.send(b"MAIL FROM:<sender@ext.example>\r\nRCPT TO:<alice@example.com>\r\n")
            self.assertEqual([c.line()[:3], c.line()[:3]], ["250", "250"])
            body = message("bdat-" + marker())
            c.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
            self.assertTrue(c.line().startswith("250 2.0.0"))
        finally:
            c.close()
        self.assertEqual(self.host.stop(), 0)
        for a in (BOB, ALICE, CAROL):
            self.index_check(a)
        root = sc.account_root(self.host.data, BOB)
        self.assertEqual(len(sc.messages(root)["INBOX"]), 3)


if __name__ == "__main__":
    unittest.main()
