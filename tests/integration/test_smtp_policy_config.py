"""Restriction lists that can't be enforced must stop the server, never open it.

Found while closing issue 14: a typo in smtpd_relay_restrictions ('reject_unauth_destinatoin')
passed `pillarbox check` and `serve` started; the first SMTP client got 421, and every later one
was served from the cached policy with an empty relay list, so 127.0.0.2 relayed to any domain.
Lists without a relay guard (`permit`) were an open relay from the start, and
smtpd_delay_reject = no or smtpd_data_restrictions were accepted and silently not applied. Now
check, serve and reload refuse them, and a table that breaks after start makes every session
answer 421."""
import os
import signal
import smtplib
import subprocess

import pbtest

TYPO = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destinatoin"


class RefusedAtStart(pbtest.TempDirTest):
    def config(self, *lines):
        self.port = pbtest.free_port()
        text = pbtest.base_config(self.path("data")) + f"listen_mx = smtp none 127.0.0.1:{self.port}\n"
        return self.write("pillarbox.conf", text + "".join(l + "\n" for l in lines))

    def assert_refused(self, conf, message):
        r = pbtest.run("-c", conf, "check")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"error: listen_mx: {message}", r.stderr)
        try:
            r = pbtest.run("-c", conf, "serve", timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("serve started with restriction lists it can't enforce")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"listen_mx: {message}", r.stderr)
        self.assertIn("has errors; not starting", r.stderr)

    def test_a_typo_in_the_relay_list(self):
        self.assert_refused(self.config(f"smtpd_relay_restrictions = {TYPO}"),
                            "smtpd_relay_restrictions: unknown or unsupported restriction 'reject_unauth_destinatoin'")

    def test_lists_without_a_relay_guard(self):
        self.assert_refused(self.config("smtpd_relay_restrictions = permit", "smtpd_recipient_restrictions = permit"),
                            "smtpd_relay_restrictions or smtpd_recipient_restrictions must contain at least one of")

    def test_a_listener_override_without_a_relay_guard(self):
        conf = self.config()
        with open(conf, "a") as f:
            f.write(f"listen_alt = smtp none 127.0.0.1:{pbtest.free_port()} smtpd_relay_restrictions=permit\n")
        r = pbtest.run("-c", conf, "check")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("error: listen_alt: smtpd_relay_restrictions or smtpd_recipient_restrictions must contain", r.stderr)
        self.assertNotIn("listen_mx:", r.stderr)

    def test_settings_not_enforced_yet(self):
        self.assert_refused(self.config("smtpd_delay_reject = no"), "smtpd_delay_reject: 'no' is not supported yet")
        self.assert_refused(self.config("smtpd_data_restrictions = reject"),
                            "smtpd_data_restrictions: not enforced yet; leave it empty")
        self.assert_refused(self.config("smtpd_end_of_data_restrictions = reject"),
                            "smtpd_end_of_data_restrictions: not enforced yet; leave it empty")


class BrokenWhileRunning(pbtest.ServerTest):
    def setUp(self):
        super().setUp()
        self.port = pbtest.free_port()
        self.table = self.write("client_access", "192.0.2.1 REJECT\n")
        self.server = self.start(f"listen_mx = smtp none 127.0.0.1:{self.port}\n"
                                 f"smtpd_relay_restrictions = permit_mynetworks, check_client_access texthash:{self.table}, "
                                 "reject_unauth_destination\n")
        self.conf = self.path("pillarbox.conf")

    def greeting(self):
        s = smtplib.SMTP(source_address=("127.0.0.2", 0), timeout=30)
        try:
            code, text = s.connect("127.0.0.1", self.port)
            if code == 220:
                s.ehlo("relay-test.example")
                s.mail("spammer@elsewhere.example")
                return code, s.rcpt("victim@remote.example")[0]
            return code, None
        finally:
            s.close()

    def test_a_table_gone_before_the_first_session_refuses_every_session(self):
        # The policy is built at the first connection; the table is unreadable by then. The
        # second session used to get the cached policy, with an empty relay list: an open relay.
        os.unlink(self.table)
        self.assertEqual(self.greeting(), (421, None))
        self.assertEqual(self.greeting(), (421, None))
        self.assertIn("smtpd_relay_restrictions", self.server.log())

    def test_reload_with_a_broken_list_keeps_the_running_policy(self):
        self.assertEqual(self.greeting(), (220, 554))
        with open(self.conf, "a") as f:
            f.write(f"smtpd_recipient_restrictions = permit\nsmtpd_relay_restrictions = {TYPO}\n")
        self.server.signal(signal.SIGHUP)
        self.server.wait_log(r"reload: configuration \S+ has errors; keeping the running configuration")
        self.assertIn("unknown or unsupported restriction 'reject_unauth_destinatoin'", self.server.log())
        self.assertEqual(self.greeting(), (220, 554))
