"""bench/smtp --quick still runs end to end: smtp-source against smtp-sink, pillarbox and a private
Postfix, every message in each mailbox, the table and the summary line printed (no timing checks).
Root only, with Debian's postfix package (smtp-source, smtp-sink, postfix)."""
import grp
import os
import pwd
import re
import subprocess

from pbtest import BIN, ROOT, TempDirTest

BENCH = os.path.join(ROOT, "bench", "smtp")
TOOLS = ("/usr/sbin/postfix", "/usr/sbin/smtp-source", "/usr/sbin/smtp-sink")


def missing_requirement():
    if os.geteuid() != 0:
        return "needs root: Postfix's master runs as root"
    for tool in TOOLS:
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (apt-get install postfix)"
    try:
        pwd.getpwnam("postfix")
        pwd.getpwnam("nobody")
        grp.getgrnam("postdrop")
    except KeyError as e:
        return f"missing user or group: {e}"
    return None


class SmtpBenchSmoke(TempDirTest):
    def setUp(self):
        reason = missing_requirement()
        if reason:
            self.skipTest(reason)
        super().setUp()
        # The test's folder is on the same disk as what it would measure; never tmpfs-only.
        os.chmod(self.dir, 0o755)

    def test_quick_run_delivers_everything_and_prints_the_summary(self):
        r = subprocess.run([BENCH, "--quick", "--bin", BIN, "--dir", self.dir],
                           capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertRegex(r.stdout, r"smtp-source -s 20 -m 200 -l 2048")
        self.assertRegex(r.stdout, r"server\s+round\s+delivered\s+acked s\s+in mbox s\s+msg/s")
        rows = re.findall(r"^(sink|pillarbox|postfix)\s+1\s+(\d+)\s+[\d.]+\s+[\d.]+\s+(\d+)\s", r.stdout, re.M)
        self.assertEqual([name for name, _, _ in rows], ["sink", "pillarbox", "postfix"], out)
        for name, delivered, rate in rows:
            self.assertEqual(delivered, "200", f"{name}: {out}")
            self.assertGreater(int(rate), 0, f"{name}: {out}")
        self.assertNotIn("FAILED", r.stdout)
        self.assertNotIn("pillarbox log:", r.stdout, "pillarbox logged warnings or errors")
        self.assertRegex(r.stdout, r"(?m)^pillarbox \d+ msg/s, postfix \d+ msg/s, sink \d+ msg/s; "
                                   r"pillarbox/postfix \d+\.\d\dx, pillarbox/sink \d+\.\d\dx$")
        self.assertEqual(os.listdir(self.dir), [], "temporary data left behind")
