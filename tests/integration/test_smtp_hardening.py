"""Issue 14 (hardening), SMTP side: the submission listeners' default sender check
(reject_sender_login_mismatch, widened by smtpd_sender_login_maps), tested with smtplib against
the default listener definitions. The HELO, BDAT and POP3 error-limit cases are scripted
conversations (tests/scripts/smtp/helo_not_utf8.txt, bdat_error_limit.txt,
tests/scripts/pop3/auth_failure_limit.txt)."""
import os
import shutil
import smtplib
import ssl
import tempfile
import unittest

import conversation as conv
import pbtest

BOB, ALICE, CAROL = "bob@example.com", "alice@example.com", "carol@example.com"


def default_listener(name, port):
    """The default value of listen_NAME with its port replaced by 127.0.0.1:port."""
    r = pbtest.run("config", "-d", f"listen_{name}")
    assert r.returncode == 0, r.stderr
    value = r.stdout.split("=", 1)[1].split()
    assert value[2].isdigit(), value
    value[2] = f"127.0.0.1:{port}"
    return " ".join(value)


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SubmissionSenderOwnership(unittest.TestCase):
    """bob authenticated on submission and MAIL FROM:<alice@example.com> got 250 and was
    delivered. Now the default listeners refuse it at RCPT with Postfix's 553 5.7.1."""

    @classmethod
    def setUpClass(cls):
        cls.sub_port = pbtest.free_port()
        cls.host = conv.MailHost([("listen_submissions", default_listener("submissions", cls.sub_port))])
        cls.addClassCleanup(cls.host.close)

    def submit(self, user, sender, rcpt=CAROL, port=None):
        with smtplib.SMTP_SSL("127.0.0.1", port or self.sub_port, context=no_verify(), timeout=30) as s:
            s.login(user, conv.PASSWORD)
            code, text = s.mail(sender)
            self.assertEqual(code, 250, text)
            return s.rcpt(rcpt)

    def test_default_submission_refuses_another_users_address(self):
        code, text = self.submit(BOB, ALICE)
        self.assertEqual((code, text.decode()),
                         (553, "5.7.1 <alice@example.com>: Sender address rejected: not owned by user bob@example.com"))
        self.assertRegex(self.host.log(), r"reject: RCPT from \S+: 553 5\.7\.1 <alice@example\.com>: Sender address "
                                          r"rejected: not owned by user bob@example\.com")

    def test_default_submission_refuses_catch_all_unknown_and_remote_senders(self):
        for user, sender in ((CAROL, "boss@catchall.example"), (BOB, "nobody@example.com"), (BOB, "bob@ext.example")):
            with self.subTest(sender=sender):
                code, text = self.submit(user, sender)
                self.assertEqual(code, 553, text)

    def test_default_submission_allows_own_addresses_aliases_and_null_sender(self):
        for sender in (BOB, "bob+lists@example.com", "sales@example.com", ""):
            with self.subTest(sender=sender):
                mark = f"owned-{sender or 'null'}-{os.getpid()}"
                with smtplib.SMTP_SSL("127.0.0.1", self.sub_port, context=no_verify(), timeout=30) as s:
                    s.login(BOB, conv.PASSWORD)
                    self.assertEqual(s.sendmail(sender, [CAROL], f"Subject: {mark}\r\n\r\nbody\r\n"), {})
                self.assertTrue(self.host.find(CAROL, mark), f"{mark} not delivered")

    def test_mx_keeps_its_default(self):
        # Mail from outside claims local senders all the time (mailing lists, forwarders): the
        # MX listener has no sender check unless the admin adds one.
        with smtplib.SMTP("127.0.0.1", self.host.ports["mx"], timeout=30) as s:
            s.ehlo("client.example")
            self.assertEqual(s.mail(ALICE)[0], 250)
            self.assertEqual(s.rcpt(BOB)[0], 250)


class SenderLoginMaps(unittest.TestCase):
    """smtpd_sender_login_maps (a Postfix table, "sender  login1, login2") widens the owners."""

    @classmethod
    def setUpClass(cls):
        cls.sub_port = pbtest.free_port()
        cls.tmp = tempfile.mkdtemp(prefix="pillarbox-logins-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        table = os.path.join(cls.tmp, "sender_logins")
        with open(table, "w") as f:
            f.write("# sender            owners\n"
                    "alice@example.com   alice@example.com, bob@example.com\n"
                    "@catchall.example   carol@example.com\n")
        cls.host = conv.MailHost([("listen_submissions", default_listener("submissions", cls.sub_port)),
                                  ("smtpd_sender_login_maps", f"hash:{table}")])
        cls.addClassCleanup(cls.host.close)

    def test_a_table_line_lets_bob_send_as_alice(self):
        mark = f"as-alice-{os.getpid()}"
        with smtplib.SMTP_SSL("127.0.0.1", self.sub_port, context=no_verify(), timeout=30) as s:
            s.login(BOB, conv.PASSWORD)
            self.assertEqual(s.sendmail(ALICE, [CAROL], f"Subject: {mark}\r\n\r\nbody\r\n"), {})
        self.assertTrue(self.host.find(CAROL, mark))

    def test_domain_keys_and_what_the_table_does_not_list(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.sub_port, context=no_verify(), timeout=30) as s:
            s.login(CAROL, conv.PASSWORD)
            s.mail("boss@catchall.example")
            self.assertEqual(s.rcpt(BOB)[0], 250)
            s.rset()
            s.mail(ALICE)  # the table names alice and bob, not carol
            self.assertEqual(s.rcpt(BOB)[0], 553)
            s.rset()
            s.mail(CAROL)  # the default owners still count
            self.assertEqual(s.rcpt(BOB)[0], 250)


if __name__ == "__main__":
    unittest.main()
