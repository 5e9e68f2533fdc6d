"""bench/imap --quick still runs end to end: pillarbox and a private Dovecot serve the same
Maildir content, every message comes back byte for byte from both, every timed IMAP test
produces ops/s for both servers, the idle-connection memory table (plain and TLS) and the
large-mailbox SELECT table are printed (no timing or memory checks). Root only, with Debian's
dovecot-core and dovecot-imapd."""
import os
import re
import subprocess

from pbtest import BIN, ROOT, BenchTest

BENCH = os.path.join(ROOT, "bench", "imap")
TOOLS = ("/usr/sbin/dovecot", "/usr/lib/dovecot/imap", "/usr/bin/doveadm", "/usr/bin/openssl")
OPS = ("login", "SELECT", "FETCH 1:* FLAGS", "FETCH 10 ENVELOPE", "FETCH BODY.PEEK[]", "STORE +/-FLAGS",
       "SEARCH SUBJECT", "APPEND", "EXPUNGE", "IDLE + DONE", "whole session")


class ImapBenchSmoke(BenchTest):
    REQUIRES = ("the private Dovecot runs its mail processes as nobody", TOOLS,
                "dovecot-core dovecot-imapd openssl", ("dovecot", "dovenull", "nobody"), ())

    def test_quick_run_verifies_both_servers_and_prints_every_table(self):
        r = subprocess.run([BENCH, "--quick", "--bin", BIN, "--dir", self.dir],
                           capture_output=True, text=True, timeout=600)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertRegex(r.stdout, r"IMAP: 4 users x 11 messages \(10 x 2 KiB \+ 1 x 100 KiB")
        self.assertIn("idle connections: 20, 50, plain and TLS, as 10 users; large mailbox: 500 messages", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^dovecot: dovecot \d")
        self.assertRegex(r.stdout, r"(?m)^pillarbox: pillarbox ")
        self.assertIn("verified: every message from pillarbox and dovecot equals its file (44 per server)", r.stdout)

        # The summary table: every test, ops/s > 0 on both servers, and the ratio.
        self.assertRegex(r.stdout, r"test\s+pillarbox ops/s\s+p50 ms\s+p99 ms\s+cpu ms\s+dovecot ops/s\s+p50 ms")
        for op in OPS:
            m = re.search(rf"(?m)^{re.escape(op)}\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+"
                          rf"\s+\d+\.\d\dx$", r.stdout)
            self.assertIsNotNone(m, f"no summary row for {op}: {out}")
            self.assertGreater(int(m.group(1)), 0, f"pillarbox {op}: {out}")
            self.assertGreater(int(m.group(2)), 0, f"dovecot {op}: {out}")

        # Memory with idle connections: both servers, both levels, plain and TLS.
        rows = re.findall(r"(?m)^(pillarbox|dovecot)\s+(plain|TLS)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+-?[\d.]+",
                          r.stdout)
        self.assertEqual(sorted((name, tls, int(n)) for name, tls, n, _, _ in rows),
                         sorted((name, tls, n) for name in ("pillarbox", "dovecot") for tls in ("plain", "TLS")
                                for n in (20, 50)), out)
        for name, tls, n, users, procs in rows:
            self.assertEqual(users, "10", out)  # --quick: 10 idle users
            if name == "dovecot":  # one imap process per connection, and a login process per TLS one
                self.assertGreaterEqual(int(procs), int(n) * (2 if tls == "TLS" else 1), out)
            else:
                self.assertEqual(procs, "1", out)

        # The large mailbox.
        self.assertIn("large mailbox: INBOX of 500 messages", r.stdout)
        for label in ("SELECT", "NOOP", "IDLE until +", "UID FETCH 1:* (FLAGS)"):
            self.assertRegex(r.stdout, rf"(?m)^{re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+x (faster|slower)$")

        self.assertRegex(r.stdout, r"(?m)^pillarbox/dovecot ops/s: login \d+\.\d\dx, .*; geometric mean \d+\.\d\dx "
                                   r"\(target 2x\)$")
        self.assertNotIn("FAILED", r.stdout)
        self.assertNotIn("pillarbox log:", r.stdout, "pillarbox logged warnings or errors")
        self.assertNotIn("dovecot log:", r.stdout, "dovecot logged warnings or errors")
        self.assertEqual(os.listdir(self.dir), [], "temporary data left behind")
