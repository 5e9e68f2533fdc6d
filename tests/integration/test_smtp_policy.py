"""Access tables as an admin edits them: check_client_access and check_sender_access files are
read at the first connection and read again after SIGHUP."""
import signal
import smtplib
import unittest

from pbtest import ServerTest, free_port, run

FAST = "auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nsmtpd_error_sleep_time = 0\n"


class AccessTables(ServerTest):
    def test_edited_table_takes_effect_after_sighup(self):
        port = free_port()
        clients = self.write("clients.cidr", "192.0.2.0/24 REJECT\n")
        senders = self.write("senders", "spammer.example REJECT no thanks\n")
        server = self.start(FAST + f"listen_t = smtp none 127.0.0.1:{port}\nmynetworks = 192.0.2.0/24\n"
                            f"smtpd_client_restrictions = check_client_access cidr:{clients}\n"
                            f"smtpd_sender_restrictions = check_sender_access hash:{senders}\n")
        conf = self.path("pillarbox.conf")
        run("-c", conf, "domain", "add", "example.com")
        run("-c", conf, "user", "add", "bob@example.com", stdin="pw\n")

        def rcpt(sender):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.ehlo("client.example")
                s.mail(sender)
                return s.rcpt("bob@example.com")

        code, text = rcpt("a@good.example")
        self.assertEqual(code, 250, text)
        code, text = rcpt("x@spammer.example")
        self.assertEqual(code, 554, text)
        self.assertIn(b"no thanks", text)
        # The admin blocks loopback and SIGHUPs: new connections see the edited table.
        self.write("clients.cidr", "127.0.0.0/8 550 go away\n")
        server.signal(signal.SIGHUP)
        server.wait_log(r"reload -- configuration .* in force")
        code, text = rcpt("a@good.example")
        self.assertEqual(code, 550, text)
        self.assertIn(b"go away", text)


class AccountQuota(ServerTest):
    def test_quota_set_with_the_cli_applies_to_the_next_delivery(self):
        port = free_port()
        self.start(FAST + f"listen_t = smtp none 127.0.0.1:{port}\n")
        conf = self.path("pillarbox.conf")
        run("-c", conf, "domain", "add", "example.com")
        self.assertEqual(run("-c", conf, "user", "add", "bob@example.com", "--quota", "3000", stdin="pw\n").returncode, 0)
        body = "Subject: q\r\n\r\n" + "x" * 2000 + "\r\n"

        def send():
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                try:
                    s.sendmail("a@remote.example", ["bob@example.com"], body)
                    return 250, b""
                except smtplib.SMTPDataError as e:
                    return e.smtp_code, e.smtp_error
                except smtplib.SMTPRecipientsRefused as e:  # the quota check at RCPT
                    return e.recipients["bob@example.com"]

        self.assertEqual(send()[0], 250)
        code, text = send()  # the second one doesn't fit in 3000 bytes
        self.assertEqual(code, 552, text)
        self.assertIn(b"5.2.2", text)
        # The admin lifts the account's limit (back to mailbox_size_limit, unlimited): at once.
        self.assertEqual(run("-c", conf, "user", "set", "bob@example.com", "--quota", "default").returncode, 0)
        self.assertEqual(send()[0], 250)


if __name__ == "__main__":
    unittest.main()
