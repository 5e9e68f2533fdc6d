"""HOLD, Postfix's hold queue, the way an admin uses it: a header_checks or access-table HOLD keeps
the message out of every mailbox; `pillarbox queue list` shows it held (!), `queue show` prints
it, `queue release` hands it back to the running server, which routes it again (local recipients
to their Maildir, others to the outbound queue); `queue delete` drops it."""
import glob
import os
import re
import smtplib
import socket
import time
import unittest

from pbtest import ServerTest, free_port, run

FAST = "auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nsmtpd_error_sleep_time = 0\n"


class HoldQueue(ServerTest):
    def setup_server(self, extra):
        self.port = free_port()
        self.server = self.start(FAST + f"listen_t = smtp none 127.0.0.1:{self.port}\n" + extra)
        self.conf = self.path("pillarbox.conf")
        run("-c", self.conf, "domain", "add", "example.com")
        run("-c", self.conf, "user", "add", "bob@example.com", stdin="pw\n")
        self.new_dir = self.path("data/mail/example.com/bob/new")

    def send(self, sender, rcpts, subject, body="the body\r\n"):
        msg = f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n\r\n{body}"
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            refused = s.sendmail(sender, rcpts, msg)
            self.assertEqual(refused, {})

    def mailbox(self):
        out = []
        for f in sorted(glob.glob(os.path.join(self.new_dir, "*"))):
            with open(f, "rb") as fh:
                out.append(fh.read())
        return out

    def cli(self, *args, expect=0):
        p = run("-c", self.conf, "queue", *args)
        self.assertEqual(p.returncode, expect, p.stdout + p.stderr)
        return p.stdout + p.stderr

    def held_id(self, count=1):
        self.server.wait_log(r"status=held \(hold queue id [0-9A-F]{16}\)", count=count)
        return re.findall(r"status=held \(hold queue id ([0-9A-F]{16})\)", self.server.log())[-1]

    def test_header_checks_hold_keeps_it_out_until_released(self):
        hc = self.write("header_checks.pcre", "/^Subject: .*review me/ HOLD held for review\n")
        self.setup_server(f"header_checks = pcre:{hc}\n")
        self.send("alice@remote.example", ["bob@example.com"], "please review me")
        qid = self.held_id()
        self.send("alice@remote.example", ["bob@example.com"], "an ordinary one")
        self.server.wait_log(r"to=<bob@example.com>, relay=local.*status=sent")
        # Only the ordinary message reached the mailbox.
        box = self.mailbox()
        self.assertEqual(len(box), 1)
        self.assertIn(b"an ordinary one", box[0])
        self.assertIn("hold: header Subject: please review me", self.server.log())

        listing = self.cli("list")
        self.assertIn(qid + "!", listing)
        self.assertIn("alice@remote.example", listing)
        self.assertIn("bob@example.com", listing)
        shown = self.cli("show", qid)
        self.assertIn("Subject: please review me", shown)
        self.assertIn("recipient: bob@example.com", shown)
        # Nothing happens to a held message by itself: it stays held.
        time.sleep(0.5)
        self.assertEqual(len(self.mailbox()), 1)

        self.assertIn("Released from hold: 1 message", self.cli("release", qid))
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: to=<bob@example.com>, relay=local, .*dsn=2.0.0, status=sent")
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: removed")
        box = self.mailbox()
        self.assertEqual(len(box), 2)
        released = [m for m in box if b"please review me" in m]
        self.assertEqual(len(released), 1)
        self.assertTrue(released[0].startswith(b"Return-Path: <alice@remote.example>\r\nDelivered-To: bob@example.com\r\nReceived: "),
                        released[0][:200])
        self.assertIn("Mail queue is empty", self.cli("list"))
        # Releasing it again is an error, not a second delivery.
        self.assertIn("no message", self.cli("release", qid, expect=1))

    def test_access_table_hold_with_local_and_remote_recipients(self):
        senders = self.write("senders", "suspect.example HOLD check this sender\n")
        # Loopback is in the default mynetworks, so the remote recipient may be relayed.
        self.setup_server(f"smtpd_sender_restrictions = check_sender_access hash:{senders}\n")
        self.send("x@suspect.example", ["bob@example.com", "carol@remote.example"], "two recipients")
        qid = self.held_id()
        self.assertEqual(self.mailbox(), [])
        self.assertEqual(os.listdir(self.path("data/queue/messages")) if os.path.isdir(self.path("data/queue/messages")) else [], [])
        listing = self.cli("list")
        self.assertIn(qid + "!", listing)
        self.assertIn("carol@remote.example", listing)

        self.cli("release", "ALL")
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: to=<bob@example.com>, relay=local.*status=sent")
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: to=<carol@remote.example>, relay=none, status=queued \(outbound queue id ([0-9A-F]{{16}})\)")
        out_id = re.search(rf"pickup\[\d+\]: {qid}: to=<carol@remote.example>.*outbound queue id ([0-9A-F]{{16}})", self.server.log()).group(1)
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: removed")
        self.assertEqual(len(self.mailbox()), 1)
        listing = self.cli("list")
        self.assertNotIn(qid, listing)
        self.assertIn(out_id + " ", listing)  # in the outbound queue, not held
        self.assertIn("carol@remote.example", listing)
        self.assertNotIn("bob@example.com", listing)

    def test_recipient_gone_while_held_sends_the_rest_back_to_hold(self):
        """Released after one of its two recipients was deleted: the other gets it, and the
        message goes back to the hold queue for the one that can't (no bounce messages yet), so
        nothing is dropped and nobody gets it twice."""
        senders = self.write("senders", "suspect.example HOLD\n")
        self.setup_server(f"smtpd_sender_restrictions = check_sender_access hash:{senders}\n")
        run("-c", self.conf, "user", "add", "alice@example.com", stdin="pw\n")
        self.send("x@suspect.example", ["bob@example.com", "alice@example.com"], "for two")
        qid = self.held_id()
        self.assertEqual(run("-c", self.conf, "user", "del", "alice@example.com").returncode, 0)
        self.cli("release", qid)
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: to=<bob@example.com>, relay=local.*status=sent")
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: to=<alice@example.com>, relay=none, dsn=5.1.1, status=bounced")
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: warning: back in the hold queue with 1 recipient")
        self.assertEqual(len(self.mailbox()), 1)
        listing = self.cli("list")
        self.assertIn(qid + "!", listing)
        self.assertIn("alice@example.com", listing)
        self.assertNotIn("bob@example.com", listing)
        # The admin brings alice back and releases it again: she gets it, bob not a second time.
        run("-c", self.conf, "user", "add", "alice@example.com", stdin="pw\n")
        self.cli("release", qid)
        self.server.wait_log(rf"pickup\[\d+\]: {qid}: removed")
        self.assertEqual(len(self.mailbox()), 1)
        self.assertEqual(len(glob.glob(self.path("data/mail/example.com/alice/new/*"))), 1)
        self.assertIn("Mail queue is empty", self.cli("list"))

    def test_deleted_held_message_is_never_delivered(self):
        senders = self.write("senders", "suspect.example HOLD\n")
        self.setup_server(f"smtpd_sender_restrictions = check_sender_access hash:{senders}\n")
        self.send("x@suspect.example", ["bob@example.com"], "unwanted")
        qid = self.held_id()
        self.assertIn("Deleted: 1 message", self.cli("delete", qid))
        self.assertIn("Mail queue is empty", self.cli("list"))
        self.assertIn("no such message", self.cli("show", qid, expect=1))
        self.assertEqual(self.mailbox(), [])

    def test_header_checks_hold_through_bdat(self):
        """BDAT (CHUNKING) with the Subject in the second chunk: held all the same."""
        hc = self.write("header_checks.pcre", "/^Subject: chunked hold/ HOLD\n")
        self.setup_server(f"header_checks = pcre:{hc}\n")
        chunks = [b"From: a@remote.example\r\nTo: bob@example.com\r\n", b"Subject: chunked hold\r\n\r\nbody\r\n"]
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as c:
            f = c.makefile("rb")

            def reply():
                lines = []
                while True:
                    line = f.readline().decode()
                    lines.append(line)
                    if line[3:4] != "-":
                        return "".join(lines)

            reply()
            c.sendall(b"EHLO client.example\r\n")
            self.assertIn("CHUNKING", reply())
            c.sendall(b"MAIL FROM:<a@remote.example>\r\n")
            self.assertTrue(reply().startswith("250"))
            c.sendall(b"RCPT TO:<bob@example.com>\r\n")
            self.assertTrue(reply().startswith("250"))
            for i, chunk in enumerate(chunks):
                last = " LAST" if i == len(chunks) - 1 else ""
                c.sendall(f"BDAT {len(chunk)}{last}\r\n".encode() + chunk)
                self.assertTrue(reply().startswith("250"))
            c.sendall(b"QUIT\r\n")
            reply()
        qid = self.held_id()
        self.assertEqual(self.mailbox(), [])
        self.assertIn("Subject: chunked hold", self.cli("show", qid))

    def test_release_while_the_server_is_down_is_delivered_at_start(self):
        hc = self.write("header_checks.pcre", "/^Subject: hold/ HOLD\n")
        self.setup_server(f"header_checks = pcre:{hc}\n")
        self.send("alice@remote.example", ["bob@example.com"], "hold this")
        qid = self.held_id()
        self.server.stop()
        self.cli("release", qid)
        server = self.start(FAST + f"listen_t = smtp none 127.0.0.1:{self.port}\nheader_checks = pcre:{hc}\n")
        server.wait_log(rf"pickup\[\d+\]: {qid}: to=<bob@example.com>, relay=local.*status=sent")
        self.assertEqual(len(self.mailbox()), 1)


if __name__ == "__main__":
    unittest.main()
