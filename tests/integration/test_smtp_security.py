"""SMTP security against the built binary, from an untrusted client (mynetworks = 192.0.2.0/24,
so 127.0.0.1 is the Internet): the open-relay battery (remote recipient, percent hack, bang path,
source route, quoted local part, address literal, forged and null senders, after a failed AUTH,
commands pipelined after AUTH, a cleartext login carried over STARTTLS, submission without AUTH)
with nothing reaching DATA/queue/messages; SMTP smuggling with the five bare line-ending variants
of the end-of-data marker under smtpd_forbid_bare_newline = normalize (exactly one message) and
reject (none); STARTTLS command injection; an over-long command line (one 500, bounded memory,
other clients unaffected); an oversize message (DATA and BDAT); too many recipients; the error
and junk-command limits (421 and disconnect); header injection through the EHLO name and the
envelope; clients that vanish mid-DATA/BDAT (nothing left in tmp/); smtpd_timeout and
client_connection_limit; a slow DATA client that must not hold up another client's delivery; and
a log that never shows a password or a message body."""
import base64
import os
import re
import socket
import ssl
import threading
import time
import unittest
import uuid

import conversation as conv

BOB, ALICE, CAROL = "bob@example.com", "alice@example.com", "carol@example.com"
PW = conv.PASSWORD
UNTRUSTED = [("mynetworks", "192.0.2.0/24"), ("auth_allow_cleartext_loopback", "yes")]


def marker():
    return "mk-" + uuid.uuid4().hex[:16]


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Smtp(conv.Client):
    """conv.Client plus the small steps every test here needs."""

    def __init__(self, port, implicit_tls=False, timeout=10):
        super().__init__(port, implicit_tls, timeout)
        self.greeting = self.line()
        assert self.greeting and self.greeting.startswith("220 "), self.greeting

    def cmd(self, line):
        """Sends one command line, returns the last line of its reply."""
        self.send(line.encode() + b"\r\n")
        lines = self.reply()
        return lines[-1] if lines else None

    def ehlo(self):
        self.send(b"EHLO client.example\r\n")
        lines = self.reply()
        assert lines and lines[-1].startswith("250 "), lines
        return lines

    def expect(self, line, pattern):
        assert line is not None and re.match(pattern, line), f"expected /{pattern}/, got {line!r}"
        return line

    def rest_is_eof(self, timeout=5):
        """True when the server closes without sending anything more."""
        self.sock.settimeout(timeout)
        return self.line() is None


class HostTest(unittest.TestCase):
    """A MailHost per class, with CONFIG."""

    CONFIG = UNTRUSTED

    @classmethod
    def setUpClass(cls):
        cls.host = conv.MailHost(cls.CONFIG)

    @classmethod
    def tearDownClass(cls):
        log = cls.host.close()
        for bad in conv.SANITY:
            if bad in log:
                raise AssertionError(f"server log has {bad!r}")

    def client(self, listener="mx"):
        c = Smtp(self.host.ports[listener], implicit_tls=listener == "submissions")
        self.addCleanup(c.close)
        return c

    def count(self, account, mark):
        return len(self.host.find(account, mark))

    def wait_count(self, account, mark, n, timeout=5):
        deadline = time.time() + timeout
        while self.count(account, mark) < n and time.time() < deadline:
            time.sleep(0.05)
        return self.count(account, mark)


LOCAL_ROUTING = r"(550 5\.1\.1|554 5\.7\.1) "


class OpenRelay(HostTest):
    """No way to make an untrusted, unauthenticated client's mail leave the server."""

    TRICKS = [
        ("remote recipient", "<victim@ext.example>", r"554 5\.7\.1 .*Relay access denied"),
        ("remote recipient, upper case", "<VICTIM@EXT.EXAMPLE>", r"554 5\.7\.1 .*Relay access denied"),
        # Routing in the local part of a local domain: no such user (550 5.1.1), or refused like
        # Postfix's reject_unauth_destination does for sender-specified routing (554 5.7.1).
        ("percent hack", "<victim%ext.example@example.com>", LOCAL_ROUTING),
        ("percent hack via myhostname", "<victim%ext.example@mail.pillarbox.test>", LOCAL_ROUTING),
        ("bang path", "<ext.example!victim@example.com>", LOCAL_ROUTING),
        # A catch-all domain takes any local part: delivering it to the catch-all is fine too.
        ("percent hack at a catch-all", "<victim%ext.example@catchall.example>", r"(250 2\.1\.5|550 5\.1\.1|554 5\.7\.1) "),
        ("bang path at a catch-all", "<ext.example!victim@catchall.example>", r"(250 2\.1\.5|550 5\.1\.1|554 5\.7\.1) "),
        ("source route", "<@example.com:victim@ext.example>", r"5\d\d 5\.\d\.\d+ "),
        ("source route, two hops", "<@example.com,@mail.pillarbox.test:victim@ext.example>", r"5\d\d 5\.\d\.\d+ "),
        ("quoted local part", '<"victim@ext.example"@example.com>', r"5\d\d 5\.\d\.\d+ "),
        ("quoted percent hack", '<"victim%ext.example"@example.com>', r"5\d\d 5\.\d\.\d+ "),
        ("address literal", "<victim@[192.0.2.1]>", r"5\d\d 5\.\d\.\d+ "),
        ("trailing dot", "<victim@ext.example.>", r"5\d\d 5\.\d\.\d+ "),
        ("local domain as a subdomain", "<victim@example.com.ext.example>", r"554 5\.7\.1 "),
        ("two at signs", "<victim@ext.example@example.com>", r"5\d\d 5\.\d\.\d+ "),
    ]

    def attempt(self, c, sender, rcpt):
        """MAIL, the RCPT under test (its reply returned), then DATA with a message in case the
        server accepted it."""
        mark = marker()
        c.expect(c.cmd(f"MAIL FROM:{sender}"), r"250 ")
        reply = c.cmd(f"RCPT TO:{rcpt}")
        data = c.cmd("DATA")
        if data and data.startswith("354"):
            c.send(f"Subject: relay test {mark}\r\n\r\n{mark}\r\n.\r\n".encode())
            c.line()
        c.expect(c.cmd("RSET"), r"250 ")
        return reply

    def test_relay_tricks(self):
        for name, rcpt, want in self.TRICKS:
            with self.subTest(trick=name, rcpt=rcpt):
                c = self.client()  # one each: every refusal counts towards smtpd_hard_error_limit
                c.ehlo()
                reply = self.attempt(c, "<someone@ext.example>", rcpt)
                self.assertRegex(reply or "", want)
        self.assertEqual(self.host.queued(), [])

    def test_forged_local_and_null_senders(self):
        for sender in ("<bob@example.com>", "<>", "<postmaster@mail.pillarbox.test>"):
            with self.subTest(sender=sender):
                c = self.client()
                c.ehlo()
                self.assertRegex(self.attempt(c, sender, "<victim@ext.example>") or "", r"554 5\.7\.1 ")
        self.assertEqual(self.host.queued(), [])

    def test_after_failed_auth(self):
        c = self.client()
        c.ehlo()
        c.expect(c.cmd("AUTH PLAIN " + plain(BOB, "wrong password")), r"535 5\.7\.8 ")
        self.assertRegex(self.attempt(c, "<bob@example.com>", "<victim@ext.example>") or "", r"554 5\.7\.1 ")
        # an authzid naming another user is not a way in either
        c.expect(c.cmd("AUTH PLAIN " + base64.b64encode(f"{ALICE}\0{BOB}\0{PW}".encode()).decode()), r"535 5\.7\.8 ")
        self.assertRegex(self.attempt(c, "<alice@example.com>", "<victim@ext.example>") or "", r"554 5\.7\.1 ")
        self.assertEqual(self.host.queued(), [])

    def test_starttls_forgets_authentication(self):
        """RFC 3207 4.2: after STARTTLS the server discards what it learned from the client
        before, the SASL login included; a login made in the clear must not carry over into TLS
        (or STARTTLS after AUTH is refused)."""
        c = self.client()
        c.ehlo()
        c.expect(c.cmd("AUTH PLAIN " + plain(BOB, PW)), r"235 ")
        reply = c.cmd("STARTTLS")
        if not reply.startswith("220"):
            self.assertRegex(reply, r"^5\d\d ")
            return
        c.start_tls()
        c.ehlo()
        c.expect(c.cmd("MAIL FROM:<bob@example.com>"), r"250 ")
        self.assertRegex(c.cmd("RCPT TO:<victim@ext.example>") or "", r"^554 5\.7\.1 ",
                         "the login from before STARTTLS still lets the client relay")
        self.assertEqual(self.host.queued(), [])

    def test_commands_pipelined_after_auth(self):
        """AUTH must be the last command of a group (RFC 4954 4): commands sent along with a
        failing AUTH must never run as an authenticated session."""
        c = self.client()
        c.ehlo()
        c.send((f"AUTH PLAIN {plain(BOB, 'wrong password')}\r\nMAIL FROM:<bob@example.com>\r\n"
                "RCPT TO:<victim@ext.example>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n").encode())
        replies = []
        while True:
            l = c.line()
            if l is None:
                break
            replies.append(l)
        self.assertFalse(any(l.startswith("235") or l.startswith("354") for l in replies), replies)
        self.assertEqual(self.host.queued(), [])

    def test_submission_without_auth(self):
        for listener in ("submission", "submissions"):
            with self.subTest(listener=listener):
                c = self.client(listener)
                if listener == "submission":
                    c.ehlo()
                    c.expect(c.cmd("STARTTLS"), r"220 ")
                    c.start_tls()
                c.ehlo()
                self.assertRegex(self.attempt(c, "<bob@example.com>", "<victim@ext.example>") or "", r"554 5\.7\.1 ")
        self.assertEqual(self.host.queued(), [])


SMUGGLE_ENDINGS = [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r.\r"]


class Smuggling(HostTest):
    """SMTP smuggling (CVE-2023-51764 class): only CRLF "." CRLF ends DATA."""

    MODE = "normalize"
    CONFIG = UNTRUSTED + [("smtpd_forbid_bare_newline", MODE)]

    def smuggle(self, ending, pipelined_quit=False):
        """One DATA whose body holds `ending`, then a complete second transaction; returns
        (the replies after the body, the marker)."""
        mark = marker()
        c = self.client()
        c.ehlo()
        c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
        c.expect(c.cmd("DATA"), r"354 ")
        body = (f"Subject: outer {mark}\r\n\r\nouter body {mark}".encode() + ending +
                f"MAIL FROM:<evil@ext.example>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n"
                f"Subject: smuggled {mark}\r\n\r\nsmuggled body {mark}\r\n.\r\n".encode())
        c.send(body)
        replies = [c.line()]
        # Whatever a vulnerable server answers to the smuggled commands arrives before QUIT's 221.
        c.send(b"QUIT\r\n")
        while True:
            l = c.line()
            if l is None:
                break
            replies.append(l)
        return replies, mark

    def check_one(self, ending, replies, mark):
        self.assertRegex(replies[0] or "", r"^250 2\.0\.0 Ok: queued as ")
        self.assertEqual(len(replies), 2, f"the smuggled commands got replies: {replies}")
        self.assertRegex(replies[1], r"^221 ")
        self.assertEqual(self.wait_count(BOB, mark, 1), 1)
        time.sleep(0.1)
        found = self.host.find(BOB, mark)
        self.assertEqual(len(found), 1, f"{ending!r}: {len(found)} messages delivered, expected exactly one")
        data = found[0]
        self.assertIn(f"Subject: outer {mark}".encode(), data)
        # the smuggled transaction is text of the one message, with line endings made CRLF
        self.assertIn(b"MAIL FROM:<evil@ext.example>\r\n", data)
        self.assertNotRegex(data, rb"\r(?!\n)|(?<!\r)\n", "bare CR or LF stored")

    def test_bare_line_endings(self):
        for ending in SMUGGLE_ENDINGS:
            with self.subTest(ending=ending):
                replies, mark = self.smuggle(ending)
                self.check_one(ending, replies, mark)


class SmugglingReject(Smuggling):
    MODE = "reject"
    CONFIG = UNTRUSTED + [("smtpd_forbid_bare_newline", MODE)]

    def test_bare_line_endings(self):
        for ending in SMUGGLE_ENDINGS:
            with self.subTest(ending=ending):
                replies, mark = self.smuggle(ending)
                self.assertRegex(replies[0] or "", r"^550 5\.5\.2 ")
                self.assertEqual(len(replies), 2, f"the smuggled commands got replies: {replies}")
                self.assertRegex(replies[1], r"^221 ")
                time.sleep(0.2)
                self.assertEqual(self.count(BOB, mark), 0)

    def test_clean_message_still_accepted(self):
        mark = marker()
        c = self.client()
        c.ehlo()
        c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
        c.expect(c.cmd("DATA"), r"354 ")
        c.send(f"Subject: clean {mark}\r\n\r\nclean\r\n.\r\n".encode())
        c.expect(c.line(), r"250 2\.0\.0 ")
        self.assertEqual(self.wait_count(BOB, mark, 1), 1)


class Limits(HostTest):
    CONFIG = UNTRUSTED + [("message_size_limit", "10000"), ("smtpd_recipient_limit", "3"),
                          ("smtpd_hard_error_limit", "20"), ("smtpd_soft_error_limit", "10"),
                          ("smtpd_junk_command_limit", "5")]

    def test_starttls_injection(self):
        """Plaintext pipelined after STARTTLS is never answered inside TLS (CVE-2011-0411)."""
        for injected in ("RSET\r\n", "RSET\r\nVRFY injected\r\n", "MAIL FROM:<evil@ext.example>\r\n"):
            with self.subTest(injected=injected):
                c = self.client()
                c.ehlo()
                c.send(("STARTTLS\r\n" + injected).encode())
                c.expect(c.line(), r"220 ")
                c.buf = b""  # what the client sent after STARTTLS is not ours to read back
                c.start_tls()
                c.send(b"NOOP\r\n")
                c.expect(c.line(), r"250 2\.0\.0 ")
                c.send(b"HELP\r\n")
                first = c.line()
                self.assertRegex(first or "", r"^214", "an injected command was answered inside TLS")
                # and the injected MAIL did not start a transaction
                c.send(b"EHLO client.example\r\n")
                c.reply()
                c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"503 5\.5\.1 ")
                c.sock.settimeout(0.3)
                try:
                    extra = c.sock.recv(100)
                except (socket.timeout, TimeoutError, ssl.SSLError):
                    extra = b""
                self.assertEqual(extra, b"")

    def test_overlong_command_line(self):
        """100 KB without a newline: one 500 5.5.0; meanwhile another client delivers; then
        the first connection either goes on or is closed cleanly."""
        c = self.client()
        c.ehlo()
        c.send(b"MAIL FROM:<" + b"a" * 100_000)
        c.expect(c.line(), r"500 5\.5\.0 ")
        mark = marker()
        other = self.client()
        other.ehlo()
        other.expect(other.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        other.expect(other.cmd(f"RCPT TO:<{ALICE}>"), r"250 ")
        other.expect(other.cmd("DATA"), r"354 ")
        other.send(f"Subject: meanwhile {mark}\r\n\r\nhi\r\n.\r\n".encode())
        other.expect(other.line(), r"250 2\.0\.0 ")
        self.assertEqual(self.wait_count(ALICE, mark, 1), 1)
        c.send(b"a" * 100_000 + b">\r\nNOOP\r\n")
        l = c.line()
        if l is not None:
            self.assertRegex(l, r"^(250|421) ")
            if l.startswith("250"):
                c.expect(c.cmd("RSET"), r"250 ")

    def test_long_line_memory_is_bounded(self):
        """Megabytes without a newline are not buffered."""
        pid = self.host.server.proc.pid

        def rss():
            with open(f"/proc/{pid}/status") as f:
                return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024

        c = self.client()
        c.ehlo()
        c.sock.settimeout(3)
        before = rss()
        chunk = b"x" * 65536
        try:
            for _ in range(16 * 16):  # 16 MiB
                c.sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, TimeoutError):
            pass  # closing the connection, or no longer reading from it, are fine answers too
        time.sleep(0.2)
        with open(f"/proc/{pid}/maps") as f:
            asan = "asan" in f.read() or "ASAN_OPTIONS" in os.environ
        if not asan:  # AddressSanitizer's quarantine keeps freed read buffers: no bound to check
            self.assertLess(rss() - before, 8 * 1024 * 1024, "a line without newline is being buffered")
        other = self.client()
        other.ehlo()

    def test_oversize_message(self):
        mark = marker()
        c = self.client()
        c.ehlo()
        c.expect(c.cmd("MAIL FROM:<someone@ext.example> SIZE=5000"), r"250 ")
        c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
        c.expect(c.cmd("DATA"), r"354 ")
        line = ("y" * 76 + "\r\n").encode()
        c.send(f"Subject: big {mark}\r\n\r\n".encode() + line * (50_000 // len(line)) + b".\r\n")
        c.expect(c.line(), r"552 5\.3\.4 ")
        # the session goes on: a small message after the refused one is delivered
        c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
        c.expect(c.cmd("DATA"), r"354 ")
        c.send(f"Subject: small {mark}\r\n\r\nsmall\r\n.\r\n".encode())
        c.expect(c.line(), r"250 2\.0\.0 ")
        self.assertEqual(self.wait_count(BOB, mark, 1), 1)
        time.sleep(0.1)
        self.assertEqual([d for d in self.host.find(BOB, mark) if b"Subject: big" in d], [])

        # BDAT: the same limit
        mark = marker()
        c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
        chunk = f"Subject: big bdat {mark}\r\n\r\n".encode() + line * 100
        c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
        first = c.line()
        if first.startswith("250"):
            c.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
            first = c.line()
        c.expect(first, r"552 5\.3\.4 ")
        c.expect(c.cmd("RSET"), r"250 ")
        time.sleep(0.2)
        self.assertEqual(self.count(BOB, mark), 0)
        self.assertEqual(self.host.queued(), [])

    def test_client_gone_mid_data(self):
        """A client that disconnects in the middle of DATA or BDAT leaves nothing behind: no
        message, no file in tmp/, and the server goes on."""
        for how in ("DATA", "BDAT"):
            with self.subTest(how=how):
                mark = marker()
                c = self.client()
                c.ehlo()
                c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
                c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
                head = f"Subject: cut off {mark}\r\n\r\n".encode()
                if how == "DATA":
                    c.expect(c.cmd("DATA"), r"354 ")
                    c.send(head + b"z" * 5000)
                else:
                    c.send(b"BDAT 9000 LAST\r\n" + head + b"z" * 5000)
                time.sleep(0.2)
                c.close()
                time.sleep(0.3)
                self.assertEqual(self.count(BOB, mark), 0)
                tmp = [os.path.join(r, n) for r, _, names in os.walk(self.host.data) for n in names
                       if os.path.basename(r) == "tmp"]
                self.assertEqual(tmp, [], "files left in tmp/ folders")
        other = self.client()
        other.ehlo()
        other.expect(other.cmd("NOOP"), r"250 ")

    def test_too_many_recipients(self):
        mark = marker()
        c = self.client()
        c.ehlo()
        c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        for rcpt in (BOB, ALICE, CAROL):
            c.expect(c.cmd(f"RCPT TO:<{rcpt}>"), r"250 ")
        for rcpt in ("bob+4@example.com", "alice+5@example.com"):
            c.expect(c.cmd(f"RCPT TO:<{rcpt}>"), r"452 4\.5\.3 ")
        c.expect(c.cmd("DATA"), r"354 ")
        c.send(f"Subject: three {mark}\r\n\r\nx\r\n.\r\n".encode())
        c.expect(c.line(), r"250 2\.0\.0 ")
        for a in (BOB, ALICE, CAROL):
            self.assertEqual(self.wait_count(a, mark, 1), 1)
        time.sleep(0.1)
        self.assertEqual(self.count(BOB, mark), 1)

    def test_error_limit_disconnects(self):
        """30 unknown commands: errors, then 421 and disconnect at smtpd_hard_error_limit (20)."""
        c = self.client()
        c.ehlo()
        c.send(b"".join(f"JUNK{i}\r\n".encode() for i in range(30)))
        replies = []
        while True:
            l = c.line()
            if l is None:
                break
            replies.append(l)
        self.assertTrue(replies, "no reply at all")
        self.assertRegex(replies[-1], r"^421 4\.7\.0 ")
        errors = [r for r in replies[:-1] if r.startswith("502 ")]
        self.assertEqual(len(errors), len(replies) - 1, replies)
        self.assertEqual(len(errors), 20)

    def test_junk_commands_count_as_errors(self):
        """Postfix's smtpd_junk_command_limit: past it (5 here) each NOOP/RSET/VRFY counts as an
        error, so a client that only sends NOOPs is disconnected at the hard error limit (20)."""
        c = self.client()
        c.ehlo()
        replies = []
        for i in range(40):
            try:
                c.send(b"NOOP\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            l = c.line()
            if l is None:
                break
            replies.append(l)
            if l.startswith("421"):
                break
        self.assertTrue(any(r.startswith("421 ") for r in replies),
                        f"40 NOOPs with smtpd_junk_command_limit = 5, smtpd_hard_error_limit = 20: "
                        f"{len(replies)} replies, no 421 (last {replies[-1:]})")
        self.assertLessEqual(len(replies), 5 + 20 + 1)

    def test_ehlo_name_cannot_inject_headers(self):
        """A bare CR in the EHLO name must not reach the stored Received: header as a line break
        (MUAs read a bare CR as a line end: a forged header)."""
        mark = marker()
        c = self.client()
        c.send(b"EHLO evil.example\rX-Injected: " + mark.encode() + b"\r\n")
        ehlo = c.reply()
        if ehlo and ehlo[-1].startswith("250"):
            c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
            c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
            c.expect(c.cmd("DATA"), r"354 ")
            c.send(f"Subject: injection {mark}\r\n\r\nbody\r\n.\r\n".encode())
            c.expect(c.line(), r"250 2\.0\.0 ")
            self.assertEqual(self.wait_count(BOB, mark, 1), 1)
            data = self.host.find(BOB, mark)[0]
            head = data.split(b"\r\n\r\n", 1)[0]
            self.assertNotIn(b"\r", head.replace(b"\r\n", b""), f"bare CR in the stored header section: {head!r}")
            self.assertNotRegex(head, rb"(?m)[\r\n]X-Injected:", "the EHLO name injected a header")
        else:
            self.assertRegex(ehlo[-1] if ehlo else "", r"^501 ")

    def test_envelope_addresses_cannot_inject_headers(self):
        """Return-Path, Delivered-To and Received's "for <...>" come from the envelope: control
        characters in a quoted local part (the catch-all takes any local part) are refused."""
        c = self.client()
        c.ehlo()
        c.expect(c.cmd('MAIL FROM:<"a\rX-Injected: 1"@ext.example>'), r"501 5\.1\.7 ")
        c.expect(c.cmd('MAIL FROM:<"a\\\rX-Injected: 1"@ext.example>'), r"501 5\.1\.7 ")
        c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        c.expect(c.cmd('RCPT TO:<"x\rX-Injected: 1"@catchall.example>'), r"501 5\.1\.3 ")
        c.expect(c.cmd('RCPT TO:<"x\\\rX-Injected: 1"@catchall.example>'), r"501 5\.1\.3 ")
        c.expect(c.cmd('RCPT TO:<"x\\\x00y"@catchall.example>'), r"501 5\.1\.3 ")

    def test_slow_client_does_not_block_others(self):
        slow_mark, fast_mark = marker(), marker()
        slow = self.client()
        slow.ehlo()
        slow.expect(slow.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
        slow.expect(slow.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
        slow.expect(slow.cmd("DATA"), r"354 ")
        stop = threading.Event()

        def dribble():
            slow.send(f"Subject: slow {slow_mark}\r\n\r\n".encode())
            for i in range(40):
                if stop.is_set():
                    break
                slow.send(f"slow line {i}\r\n".encode())
                time.sleep(0.05)

        t = threading.Thread(target=dribble)
        t.start()
        try:
            time.sleep(0.2)
            started = time.time()
            fast = self.client()
            fast.ehlo()
            fast.expect(fast.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
            fast.expect(fast.cmd(f"RCPT TO:<{ALICE}>"), r"250 ")
            fast.expect(fast.cmd("DATA"), r"354 ")
            fast.send(f"Subject: fast {fast_mark}\r\n\r\nfast\r\n.\r\n".encode())
            fast.expect(fast.line(), r"250 2\.0\.0 ")
            elapsed = time.time() - started
            self.assertTrue(t.is_alive(), "the slow client finished first: the test proves nothing")
            self.assertLess(elapsed, 1.5)
            self.assertEqual(self.wait_count(ALICE, fast_mark, 1), 1)
        finally:
            stop.set()
            t.join()
        slow.send(b".\r\n")
        slow.expect(slow.line(), r"250 2\.0\.0 ")
        self.assertEqual(self.wait_count(BOB, slow_mark, 1), 1)


class Connections(HostTest):
    """smtpd_timeout and client_connection_limit (127.0.0.1 is outside mynetworks here, so
    client_connection_limit_exceptions does not cover it)."""

    CONFIG = UNTRUSTED + [("smtpd_timeout", "1s"), ("client_connection_limit", "3")]

    def test_idle_timeout(self):
        for stage in ("command", "DATA"):
            with self.subTest(stage=stage):
                mark = marker()
                c = self.client()
                c.sock.settimeout(5)
                c.ehlo()
                if stage == "DATA":
                    c.expect(c.cmd("MAIL FROM:<someone@ext.example>"), r"250 ")
                    c.expect(c.cmd(f"RCPT TO:<{BOB}>"), r"250 ")
                    c.expect(c.cmd("DATA"), r"354 ")
                    c.send(f"Subject: stalled {mark}\r\n\r\nhalf a mess".encode())
                started = time.time()
                c.expect(c.line(), r"421 4\.4\.2 ")
                self.assertTrue(c.rest_is_eof())
                self.assertLess(time.time() - started, 3)
                self.assertEqual(self.count(BOB, mark), 0)

    def test_client_connection_limit(self):
        first = [self.client() for _ in range(3)]
        s = conv.Client(self.host.ports["mx"])
        self.addCleanup(s.close)
        l = s.line()
        self.assertRegex(l or "", r"^421 4\.7\.0 .*too many connections")
        self.assertIsNone(s.line())
        first[0].cmd("QUIT")
        first[0].close()
        time.sleep(0.2)
        again = self.client()  # a greeting again once one has gone
        again.expect(again.cmd("NOOP"), r"250 ")
        for c in first[1:] + [again]:
            c.close()
        time.sleep(0.3)  # the server sees these go before the next test connects


class LogPrivacy(HostTest):
    """No password (plain or base64) and no message body in the log, whatever the outcome."""

    SECRET = "Secret-Body-Line-"
    CONFIG = UNTRUSTED + [("smtpd_forbid_bare_newline", "reject")]

    def test_no_passwords_or_bodies_in_log(self):
        body_mark = self.SECRET + uuid.uuid4().hex
        c = self.client()
        c.ehlo()
        c.expect(c.cmd("AUTH PLAIN " + plain(BOB, "wrong-" + PW)), r"535 ")
        c.expect(c.cmd("AUTH LOGIN " + base64.b64encode(BOB.encode()).decode()), r"334 ")
        c.expect(c.cmd(base64.b64encode(("wrong2-" + PW).encode()).decode()), r"535 ")
        c.expect(c.cmd("AUTH PLAIN " + plain(BOB, PW)), r"235 ")
        c.expect(c.cmd("MAIL FROM:<bob@example.com>"), r"250 ")
        c.expect(c.cmd(f"RCPT TO:<{ALICE}>"), r"250 ")
        c.expect(c.cmd("RCPT TO:<friend@ext.example>"), r"250 ")
        c.expect(c.cmd("DATA"), r"354 ")
        c.send(f"Subject: private\r\n\r\n{body_mark}\r\n.\r\n".encode())
        c.expect(c.line(), r"250 2\.0\.0 ")
        # a refused message too (a bare LF under smtpd_forbid_bare_newline = reject)
        c.expect(c.cmd("MAIL FROM:<bob@example.com>"), r"250 ")
        c.expect(c.cmd(f"RCPT TO:<{ALICE}>"), r"250 ")
        c.expect(c.cmd("DATA"), r"354 ")
        c.send(f"Subject: private\r\n\r\n{body_mark}\nbare\r\n.\r\n".encode())
        c.expect(c.line(), r"550 5\.5\.2 ")
        c.cmd("QUIT")
        self.assertEqual(self.wait_count(ALICE, body_mark, 1), 1)
        time.sleep(0.2)
        log = self.host.log()
        for secret in (PW, plain(BOB, PW), plain(BOB, "wrong-" + PW), base64.b64encode(PW.encode()).decode(),
                       base64.b64encode(("wrong2-" + PW).encode()).decode(), body_mark):
            self.assertNotIn(secret, log)
        self.assertRegex(log, r"SASL (PLAIN|LOGIN) authentication failed")


if __name__ == "__main__":
    unittest.main()
