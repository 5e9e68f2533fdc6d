"""The DNS-based SMTP restrictions end to end: c-ares on the server's loop asking a DNS server
that the test runs on 127.0.0.1 (dns_servers), for reject_rbl_client and
reject_unknown_sender_domain."""
import smtplib
import unittest

from fakedns import FakeDns
from pbtest import ServerTest, free_port, run

FAST = "auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nsmtpd_error_sleep_time = 0\n"


class DnsRestrictions(ServerTest):
    def setUp(self):
        super().setUp()
        self.dns = FakeDns({
            ("1.0.0.127.bl.test", "A"): ["127.0.0.2"],
            ("1.0.0.127.bl.test", "TXT"): ["listed for testing"],
            ("good.example", "MX"): [(10, "mx.good.example")],
            ("mx.good.example", "A"): ["192.0.2.25"],
            ("nomx.example", "TXT"): ["v=spf1 -all"],  # exists, but no MX, A or AAAA
        })
        self.addCleanup(self.dns.close)
        self.port = free_port()

    def start_mx(self, restrictions):
        server = self.start(FAST + f"listen_t = smtp none 127.0.0.1:{self.port}\n"
                            f"dns_servers = 127.0.0.1:{self.dns.port}\n"
                            "mynetworks = 192.0.2.0/24\n" + restrictions)
        conf = self.path("pillarbox.conf")
        self.assertEqual(run("-c", conf, "domain", "add", "example.com").returncode, 0)
        self.assertEqual(run("-c", conf, "user", "add", "bob@example.com", stdin="pw\n").returncode, 0)
        return server

    def rcpt(self, sender, rcpt="bob@example.com"):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.ehlo("client.example")
            code, _ = s.mail(sender)
            self.assertEqual(code, 250)
            return s.rcpt(rcpt)

    def test_reject_rbl_client(self):
        server = self.start_mx("smtpd_client_restrictions = reject_rbl_client bl.test\n")
        code, text = self.rcpt("alice@good.example")
        self.assertEqual(code, 554, text)
        self.assertIn(b"5.7.1", text)
        self.assertIn(b"blocked using bl.test", text)
        self.assertIn(("1.0.0.127.bl.test", "A"), self.dns.queries)
        server.wait_log(r"reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 .*blocked using bl\.test")

    def test_not_listed_passes(self):
        self.start_mx("smtpd_client_restrictions = reject_rbl_client other.test\n")
        code, text = self.rcpt("alice@good.example")
        self.assertEqual(code, 250, text)

    def test_reject_unknown_sender_domain(self):
        self.start_mx("smtpd_sender_restrictions = reject_unknown_sender_domain\n")
        self.assertEqual(self.rcpt("alice@good.example")[0], 250)
        code, text = self.rcpt("alice@nomx.example")
        self.assertEqual(code, 450, text)  # Postfix's unknown_address_reject_code
        self.assertIn(b"4.1.8", text)
        code, text = self.rcpt("alice@nxdomain.example")
        self.assertIn(code, (450, 550), text)
        self.assertIn(b"Sender address rejected", text)


if __name__ == "__main__":
    unittest.main()
