"""bench/pop3 --quick still runs end to end: pillarbox and a private Dovecot serve the same
Maildir content, every message comes back byte for byte from both, the logins/s and RETR
measurements produce a row per server, the table and the summary line are printed (no timing
checks). Root only, with Debian's dovecot-core and dovecot-pop3d."""
import os
import re
import subprocess

from pbtest import BIN, ROOT, BenchTest

BENCH = os.path.join(ROOT, "bench", "pop3")
TOOLS = ("/usr/sbin/dovecot", "/usr/lib/dovecot/pop3", "/usr/bin/doveadm")


class Pop3BenchSmoke(BenchTest):
    REQUIRES = ("the private Dovecot runs its mail processes as nobody", TOOLS,
                "dovecot-core dovecot-pop3d", ("dovecot", "dovenull", "nobody"), ())

    def test_quick_run_verifies_both_servers_and_prints_the_summary(self):
        r = subprocess.run([BENCH, "--quick", "--bin", BIN, "--dir", self.dir],
                           capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertRegex(r.stdout, r"POP3: 4 users x 11 messages \(10 x 2 KiB \+ 1 x 1 MiB")
        self.assertRegex(r.stdout, r"(?m)^dovecot: dovecot \d")
        self.assertRegex(r.stdout, r"(?m)^pillarbox: pillarbox ")
        self.assertIn("verified: every message from pillarbox and dovecot equals its file (44 per server)", r.stdout)
        self.assertRegex(r.stdout, r"server\s+round\s+logins/s\s+errors\s+cpu ms/login\s+msgs/s\s+MB/s\s+errors")
        rows = re.findall(r"^(pillarbox|dovecot)\s+1\s+(\d+)\s+(\d+)\s+[\d.]+\s+(\d+)\s+[\d.]+\s+(\d+)\s", r.stdout, re.M)
        self.assertEqual([row[0] for row in rows], ["pillarbox", "dovecot"], out)
        for name, logins, login_errors, msgs, retr_errors in rows:
            self.assertGreater(int(logins), 0, f"{name}: {out}")
            self.assertGreater(int(msgs), 0, f"{name}: {out}")
            self.assertEqual((login_errors, retr_errors), ("0", "0"), f"{name}: {out}")
        self.assertRegex(r.stdout, r"(?m)^pillarbox/dovecot\s+\d+\.\d\dx\s+\d+\.\d\dx\s+\d+\.\d\dx$")
        self.assertNotIn("FAILED", r.stdout)
        self.assertNotIn("pillarbox log:", r.stdout, "pillarbox logged warnings or errors")
        self.assertNotIn("dovecot log:", r.stdout, "dovecot logged warnings or errors")
        self.assertRegex(r.stdout, r"(?m)^pillarbox \d+ logins/s, \d+ msgs/s, [\d.]+ MB/s; "
                                   r"dovecot \d+ logins/s, \d+ msgs/s, [\d.]+ MB/s; "
                                   r"pillarbox/dovecot logins/s \d+\.\d\dx, RETR msgs/s \d+\.\d\dx, "
                                   r"RETR MB/s \d+\.\d\dx$")
        self.assertEqual(os.listdir(self.dir), [], "temporary data left behind")
