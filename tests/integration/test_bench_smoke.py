"""bench/store_bench still builds, runs and prints its table (tiny counts, no timing checks), so
the benchmark cannot rot between the times someone runs it for real."""
import os
import re
import subprocess

from pbtest import BIN, TempDirTest

BENCH = os.path.join(os.path.dirname(BIN), "bench", "store_bench")


class StoreBenchSmoke(TempDirTest):
    def run_bench(self, *args):
        return subprocess.run([BENCH, "--dir", self.dir, *args], capture_output=True, text=True, timeout=60)

    def test_tiny_run_prints_the_table_and_cleans_up(self):
        r = self.run_bench("--messages", "12", "--sizes", "2K,8K", "--writers", "1,4")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"filesystem: \S+")
        self.assertRegex(r.stdout, r"size\s+writers\s+msgs\s+msgs/s\s+MB/s\s+vs 1 wr\s+vs plain")
        rows = re.findall(r"^(\d+ KiB)\s+(plain|\d+)\s+(\d+)\s+\d+", r.stdout, re.M)
        self.assertEqual([(size, w) for size, w, _ in rows],
                         [("2 KiB", "plain"), ("2 KiB", "1"), ("2 KiB", "4"),
                          ("8 KiB", "plain"), ("8 KiB", "1"), ("8 KiB", "4")])
        self.assertTrue(all(n == "12" for _, _, n in rows), rows)
        self.assertIn("target 4 writers >= 5x 1 writer", r.stdout)
        self.assertNotIn("blocking calls ran on the event loop", r.stdout)
        self.assertEqual(os.listdir(self.dir), [], "temporary data left behind")

    def test_keep_leaves_the_messages_on_disk(self):
        r = self.run_bench("--messages", "5", "--sizes", "1K", "--writers", "2", "--no-baseline", "--keep")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        kept = re.search(r"^kept: (.+)$", r.stdout, re.M).group(1)
        new = [os.path.join(root, "new") for root, dirs, _ in os.walk(kept) if "new" in dirs and "tmp" in dirs
               and os.path.basename(root) == "user0"]
        self.assertEqual(len(new), 1, kept)
        self.assertEqual(len(os.listdir(new[0])), 5)

    def test_bad_option_is_a_usage_error(self):
        r = self.run_bench("--no-such-option")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: store_bench", r.stderr)
