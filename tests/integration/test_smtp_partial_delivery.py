"""A message that reached some of its recipients is accepted (250), never reported as failed:
the recipients it missed get a durable queue copy before the 250 (a local retry in incoming/
for a temporary failure, the hold queue with the reason for a full mailbox), so the client's
retry can't duplicate it for the others. And the quota is checked at RCPT (with SIZE= when
given), as Dovecot's LMTP does, so most over-quota mail is refused before DATA."""
import glob
import os
import re
import shutil
import smtplib
import time
import unittest

from pbtest import ServerTest, free_port, run

FAST = "auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nsmtpd_error_sleep_time = 0\n"


class PartialDelivery(ServerTest):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.server = self.start(FAST + f"listen_t = smtp none 127.0.0.1:{self.port}\n")
        self.conf = self.path("pillarbox.conf")
        self.cli("domain", "add", "example.com")

    def cli(self, *args, stdin=None):
        r = run("-c", self.conf, *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def mailbox(self, user):
        return sorted(glob.glob(self.path(f"data/mail/example.com/{user}/new/*")))

    def message(self, subject, size=0):
        body = "x" * max(size, 10)
        lines = "\r\n".join(body[i:i + 76] for i in range(0, len(body), 76))
        return f"From: a@remote.example\r\nSubject: {subject}\r\n\r\n{lines}\r\n"

    def send_raw(self, rcpts, msg, size=None):
        """One transaction without smtplib's automatic SIZE=: {rcpt: code}, and the DATA reply."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.ehlo("client.example")
            code, text = s.mail("a@remote.example", [f"SIZE={size}"] if size is not None else [])
            self.assertEqual(code, 250, text)
            answers = {r: s.rcpt(r) for r in rcpts}
            if not any(code == 250 for code, _ in answers.values()):
                return answers, None
            return answers, s.data(msg)

    def wait_until(self, pred, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return pred()

    def test_message_quota_scenario_from_the_issue(self):
        """u3 may hold one message; three messages to u3 and u4: each is accepted, u4 has all
        three (before: 250, 552, 552 while u4 received all three)."""
        self.cli("user", "add", "u3@example.com", "--message-quota", "1", stdin="pw\n")
        self.cli("user", "add", "u4@example.com", stdin="pw\n")
        for n in range(3):
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
                refused = s.sendmail("a@remote.example", ["u3@example.com", "u4@example.com"], self.message(f"m{n}"))
            if n == 0:
                self.assertEqual(refused, {})
            else:
                # Refused at RCPT for u3 alone, the way Dovecot's LMTP answers a full mailbox.
                self.assertEqual(list(refused), ["u3@example.com"])
                code, text = refused["u3@example.com"]
                self.assertEqual(code, 552, text)
                self.assertIn(b"5.2.2 <u3@example.com> Mailbox is full", text)
        self.assertEqual(len(self.mailbox("u4")), 3)
        self.assertEqual(len(self.mailbox("u3")), 1)
        self.server.wait_log(r"reject: RCPT from .*552 5\.2\.2 <u3@example\.com>: Mailbox is full", count=2)

    def test_over_quota_copy_is_held_with_the_reason_and_the_message_accepted(self):
        """The RCPT check can't know a message without SIZE= won't fit: delivery finds u3 full,
        u4 gets it, the client gets 250, and u3's copy waits in the hold queue with the reason."""
        self.cli("user", "add", "u3@example.com", "--quota", "3000", stdin="pw\n")
        self.cli("user", "add", "u4@example.com", stdin="pw\n")
        rcpts = ["u3@example.com", "u4@example.com"]
        answers, (code, text) = self.send_raw(rcpts, self.message("first", 2000))
        self.assertEqual(code, 250, text)
        for n in range(2):
            answers, (code, text) = self.send_raw(rcpts, self.message(f"big {n}", 2000))
            self.assertEqual([a[0] for a in answers.values()], [250, 250])
            self.assertEqual(code, 250, text)  # before: 552 5.2.2 although u4 had it
        self.assertEqual(len(self.mailbox("u4")), 3)
        self.assertEqual(len(self.mailbox("u3")), 1)
        listing = self.cli("queue", "list")
        held = re.findall(r"^([0-9A-F]{16})!", listing, re.M)
        self.assertEqual(len(held), 2, listing)
        self.assertIn("(5.2.2 mailbox full: u3@example.com: over quota", listing)
        self.assertEqual(listing.count("u4@example.com"), 0, listing)  # u4 has it: not in the copy
        shown = self.cli("queue", "show", held[0])
        self.assertIn("recipient: u3@example.com", shown)
        self.assertIn("reason: 5.2.2 mailbox full", shown)
        self.assertIn("Subject: big 0", shown)
        self.assertNotIn("Delivered-To:", shown)  # the store's own header lines are not copied
        self.server.wait_log(r"to=<u3@example\.com>, relay=local, delay=[0-9.]+, dsn=5\.2\.2, status=bounced "
                             r"\(over quota: .*; held in the hold queue as [0-9A-F]{16}\)", count=2)

    def test_temporary_failure_is_retried_locally_and_nobody_gets_it_twice(self):
        """u4's Maildir tmp/ is a file (root ignores modes, not this): u4's copy fails
        temporarily, u3 gets it, the client gets 250 (before: 451, and the retry duplicated it for
        u3); u4's copy waits in incoming/ and the pickup service delivers it once tmp/ is back."""
        self.cli("user", "add", "u3@example.com", stdin="pw\n")
        self.cli("user", "add", "u4@example.com", stdin="pw\n")
        rcpts = ["u3@example.com", "u4@example.com"]
        answers, (code, text) = self.send_raw(rcpts, self.message("first"))
        self.assertEqual(code, 250, text)
        tmp = self.path("data/mail/example.com/u4/tmp")
        shutil.rmtree(tmp)
        with open(tmp, "w") as f:
            f.write("not a directory\n")
        answers, (code, text) = self.send_raw(rcpts, self.message("second"))
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.mailbox("u3")), 2)
        self.assertEqual(len(self.mailbox("u4")), 1)
        self.server.wait_log(r"to=<u4@example\.com>, relay=local, delay=[0-9.]+, dsn=4\.3\.0, status=deferred "
                             r"\(.*; queued for a local retry as [0-9A-F]{16}\)")
        # The pickup service tries it at once and keeps it (still failing).
        self.server.wait_log(r"kept in incoming/ with 1 recipient")
        listing = self.cli("queue", "list")
        self.assertRegex(listing, r"[0-9A-F]{16}>")
        self.assertIn("4.3.0 local delivery failed, to be retried: u4@example.com", listing)
        self.assertNotIn("u3@example.com", listing)
        # Repaired: the next pickup scan delivers it (a file written in incoming/ wakes the scan
        # instead of waiting for the periodic one).
        os.remove(tmp)
        os.mkdir(tmp, 0o700)
        with open(self.path("data/queue/incoming/wake"), "w") as f:
            f.write("")
        self.assertTrue(self.wait_until(lambda: len(self.mailbox("u4")) == 2), self.server.log())
        self.assertTrue(self.wait_until(lambda: "Mail queue is empty" in self.cli("queue", "list")), self.cli("queue", "list"))
        time.sleep(0.5)  # nothing more arrives
        self.assertEqual(len(self.mailbox("u3")), 2)
        self.assertEqual(len(self.mailbox("u4")), 2)
        subjects = []
        for f in self.mailbox("u4"):
            with open(f, "rb") as fh:
                subjects += re.findall(rb"^Subject: (\w+)", fh.read(), re.M)
        self.assertEqual(sorted(subjects), [b"first", b"second"])

    def test_quota_is_checked_at_rcpt_with_and_without_size(self):
        self.cli("user", "add", "u3@example.com", "--quota", "5000", stdin="pw\n")
        self.cli("user", "add", "u4@example.com", stdin="pw\n")
        self.cli("alias", "add", "team@example.com", "u3@example.com", "u4@example.com")
        self.cli("alias", "add", "solo@example.com", "u3@example.com")
        answers, (code, text) = self.send_raw(["u3@example.com"], self.message("first", 3000))
        self.assertEqual(code, 250, text)
        # About 3100 bytes used of 5000: SIZE=3000 can't fit, so it is refused at RCPT...
        answers, _ = self.send_raw(["u3@example.com", "u4@example.com"], self.message("no"), size=3000)
        self.assertEqual(answers["u3@example.com"][0], 552, answers)
        self.assertIn(b"5.2.2 <u3@example.com> Mailbox is full", answers["u3@example.com"][1])
        self.assertEqual(answers["u4@example.com"][0], 250)
        # ... an alias whose every account is full too; one with an account that has room is not.
        answers, _ = self.send_raw(["solo@example.com", "team@example.com"], self.message("no"), size=3000)
        self.assertEqual(answers["solo@example.com"][0], 552, answers)
        self.assertEqual(answers["team@example.com"][0], 250, answers)
        # A small SIZE= fits, and so may a message of unknown size.
        answers, (code, text) = self.send_raw(["u3@example.com"], self.message("small", 100), size=200)
        self.assertEqual(answers["u3@example.com"][0], 250, answers)
        self.assertEqual(code, 250, text)
        # Full to the byte limit: refused at RCPT even without SIZE=.
        self.cli("user", "set", "u3@example.com", "--quota", "3000")
        answers, (code, text) = self.send_raw(["u3@example.com", "u4@example.com"], self.message("fill", 100))
        self.assertEqual(code, 250, text)  # u3 over quota now (held), u4 has it
        answers, _ = self.send_raw(["u3@example.com", "u4@example.com"], self.message("no"))
        self.assertEqual(answers["u3@example.com"][0], 552, answers)
        # The admin raises the limit: it applies at the next RCPT.
        self.cli("user", "set", "u3@example.com", "--quota", "default")
        answers, (code, text) = self.send_raw(["u3@example.com"], self.message("yes"), size=3000)
        self.assertEqual(answers["u3@example.com"][0], 250, answers)
        self.assertEqual(code, 250, text)


if __name__ == "__main__":
    unittest.main()
