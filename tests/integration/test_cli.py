"""The pillarbox command line: version, config (postconf-like), check, and the documentation
generated from the parameter table."""
import os
import re
import subprocess

from pbtest import BIN, ROOT, TempDirTest, base_config, run


class VersionAndLinkage(TempDirTest):
    def test_version_reports_boringssl(self):
        r = run("version")
        self.assertEqual(r.returncode, 0)
        self.assertIn("TLS: BoringSSL", r.stdout)

    def test_binary_links_boringssl_and_not_openssl(self):
        ldd = subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
        self.assertNotIn("libssl.so.3", ldd)
        self.assertNotIn("libcrypto.so.3", ldd)
        self.assertRegex(ldd, r"android/libssl\.so")
        self.assertRegex(ldd, r"android/libcrypto\.so")


class ConfigCommand(TempDirTest):
    def conf(self, text):
        return self.write("pillarbox.conf", text)

    def test_prints_effective_values_like_postconf(self):
        c = self.conf("myhostname = mx.example.com\nsyslog_name = pb-$myhostname\n")
        r = run("-c", c, "config", "myhostname", "mydomain", "syslog_name")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "myhostname = mx.example.com\nmydomain = example.com\nsyslog_name = pb-$myhostname\n")
        r = run("-c", c, "config", "-x", "syslog_name")
        self.assertEqual(r.stdout, "syslog_name = pb-mx.example.com\n")

    def test_n_prints_only_what_the_file_sets(self):
        c = self.conf("myhostname = mx.example.com\nsmtpd_timeout = 60s\n")
        r = run("-c", c, "config", "-n")
        self.assertEqual(r.stdout, "myhostname = mx.example.com\nsmtpd_timeout = 60s\n")

    def test_d_prints_defaults(self):
        c = self.conf("smtpd_timeout = 60s\n")
        r = run("-c", c, "config", "-d", "smtpd_timeout", "mynetworks", "connection_limit")
        self.assertEqual(r.stdout, "smtpd_timeout = 300s\nmynetworks = 127.0.0.1/32 [::1]/128\nconnection_limit = 1000\n")

    def test_all_parameters_listed_sorted(self):
        c = self.conf("listen_alt = smtp none 2526\n")
        r = run("-c", c, "config")
        names = [line.split(" =")[0] for line in r.stdout.splitlines()]
        self.assertEqual(names, sorted(names))
        for name in ("myhostname", "listen_imaps", "listen_alt", "tls_cert_file", "shutdown_timeout"):
            self.assertIn(name, names)

    def test_unknown_name_is_an_error(self):
        c = self.conf("")
        r = run("-c", c, "config", "no_such_parameter")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no_such_parameter: unknown parameter", r.stderr)

    def test_missing_explicit_config_is_an_error(self):
        r = run("-c", self.path("nope.conf"), "check")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot open", r.stderr)

    def test_docs_match_the_parameter_table(self):
        r = run("config", "--doc")
        with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
            self.assertEqual(r.stdout, f.read(),
                             "docs/configuration.md is stale: regenerate it with `pillarbox config --doc`")


class CheckCommand(TempDirTest):
    def check(self, extra):
        c = self.write("pillarbox.conf", base_config(self.path("data")) + extra)
        return run("-c", c, "check"), c

    def test_good_config_passes(self):
        r, c = self.check("listen_t = smtp starttls 127.0.0.1:2526\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(": OK", r.stderr)
        # check reports what serve would create, but creates nothing itself
        self.assertIn("generates a self-signed certificate", r.stderr)
        self.assertFalse(os.path.exists(self.path("data")))

    def test_duplicate_inet_interfaces_is_called_out(self):
        r, c = self.check("inet_interfaces = 127.0.0.1\ninet_interfaces = all\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        n = len(base_config("x").splitlines())
        self.assertIn(f"{c}:{n + 2}: warning: \"inet_interfaces\" is set twice", r.stderr)
        self.assertIn(f"from line {n + 1}", r.stderr)

    def test_errors_carry_file_and_line_and_fail(self):
        r, c = self.check("connection_limit = many\nsyslog_name = $log_file\nlog_file = $syslog_name\n")
        self.assertEqual(r.returncode, 1)
        n = len(base_config("x").splitlines())
        self.assertRegex(r.stderr, re.escape(f"{c}:{n + 1}: error: connection_limit"))
        self.assertIn("parameter expansion loop", r.stderr)
        self.assertIn("errors found", r.stderr)

    def test_unknown_parameter_warns_with_suggestion(self):
        r, c = self.check("smtpd_timout = 10s\n")
        self.assertEqual(r.returncode, 0)
        self.assertIn('did you mean "smtpd_timeout"', r.stderr)

    def test_listener_conflicts_and_bad_overrides(self):
        r, c = self.check("listen_a = smtp none 127.0.0.1:2526\nlisten_b = imap none 127.0.0.1:2526\n"
                          "listen_c = pop3 none 127.0.0.1:2527 worker_threads=9\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already used by listen_a", r.stderr)
        self.assertIn("cannot be set per listener", r.stderr)

    def test_world_writable_data_directory(self):
        os.makedirs(self.path("data"))
        os.chmod(self.path("data"), 0o777)
        r, c = self.check("")
        self.assertEqual(r.returncode, 1)
        self.assertIn("world-writable", r.stderr)

    def test_unreadable_certificate_file(self):
        r, c = self.check(f"tls_cert_file = {self.path('missing.pem')}\nlisten_t = imap implicit 127.0.0.1:2526\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read", r.stderr)
