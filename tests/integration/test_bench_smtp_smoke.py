"""bench/smtp --quick still runs end to end: smtp-source against smtp-sink, pillarbox and a private
Postfix, every message in each mailbox, the table and the summary line printed (no timing checks).
Root only, with Debian's postfix package (smtp-source, smtp-sink, postfix)."""
import os
import re
import subprocess

from pbtest import BIN, ROOT, BenchTest

BENCH = os.path.join(ROOT, "bench", "smtp")
TOOLS = ("/usr/sbin/postfix", "/usr/sbin/smtp-source", "/usr/sbin/smtp-sink")


class SmtpBenchSmoke(BenchTest):
    REQUIRES = ("Postfix's master runs as root", TOOLS, "postfix", ("postfix", "nobody"), ("postdrop",))

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
