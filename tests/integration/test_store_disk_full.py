"""Disk-full test of the store: store_writer delivers large messages into a 4 MiB tmpfs until
deliveries fail. Failures must be temporary, the writer must keep running, the index must stay
consistent with the files; once space is freed (an unrelated filler file is deleted) deliveries
must succeed again in the same run, and a clean stop must leave nothing in tmp/. Needs root (or
CAP_SYS_ADMIN) to mount the tmpfs; skipped otherwise."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import storecheck as sc

ACCOUNTS = ["alice@example.test", "bob@example.test"]
IN_FLIGHT = 4
FILLER = 1024 * 1024


def wait_until(pred, timeout, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            return pred()
        time.sleep(0.02)
    return False


class StoreDiskFull(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(sc.WRITER):
            self.skipTest(f"{sc.WRITER} is not built")
        self.dir = tempfile.mkdtemp(prefix="pillarbox-diskfull-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.mnt = os.path.join(self.dir, "data")
        os.mkdir(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
        self.addCleanup(self.unmount)
        self.proc = None
        self.addCleanup(self.stop_writer)  # runs before the unmount

    def unmount(self):
        if subprocess.run(["umount", self.mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)

    def stop_writer(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def output(self):
        return sc.read_output(self.out)

    def stderr(self):
        with open(self.out + ".err", errors="replace") as f:
            return f.read()

    def tmp_report(self):
        files = {}
        for a in ACCOUNTS:
            files.update(sc.tmp_files(self.mnt, a))
        sizes = []
        for p in files:
            try:
                sizes.append(os.path.getsize(p))
            except FileNotFoundError:
                pass
        return len(sizes), sum(sizes)

    def check_consistent(self, when, clean, extra=()):
        """Index against files; with clean, every file must be indexed too (no writer in the middle of a batch)."""
        acks, fails = self.output()
        acks += list(extra)
        problems = sc.check_acked(self.mnt, acks)
        for a in ACCOUNTS:
            root = sc.account_root(self.mnt, a)
            qc = sc.quick_check(root)
            if qc != "ok":
                problems.append(f"{a}: index quick_check: {qc}")
            boxes = sc.check_mailboxes(self.mnt, a, require_all_indexed=clean)
            kinds = ["missing", "uid", "partial", "flags"] + (["unindexed", "uidnext"] if clean else [])
            for k in kinds:
                problems += boxes[k]
        if problems:
            self.fail(f"{when}: {len(problems)} problems:\n  " + "\n  ".join(problems[:30]))

    def fill_until_failing(self, failures):
        """Starts the writer over a filler file and waits until failures deliveries have failed."""
        self.filler = os.path.join(self.mnt, "filler")
        with open(self.filler, "wb") as f:
            f.write(os.urandom(FILLER))
            os.fsync(f.fileno())
        self.out = os.path.join(self.dir, "writer.out")
        args = ["--prefix", "df", "--lines", "3000:9000", "--in-flight", str(IN_FLIGHT), "--fail-pause", "20"]
        for a in ACCOUNTS:
            args += ["--account", a]
        self.proc = sc.start_writer(self.mnt, self.out, *args)
        ok = wait_until(lambda: len(self.output()[1]) >= failures, 60, self.proc)
        self.assertIsNone(self.proc.poll(), f"the writer died on a full disk (exit {self.proc.returncode}):\n{self.stderr()[-3000:]}")
        self.assertTrue(ok, f"fewer than {failures} deliveries failed on a 4 MiB file system:\n{self.stderr()[-3000:]}")
        acks, fails = self.output()
        self.assertGreater(len(acks), 0, f"nothing was delivered before the disk filled up:\n{self.stderr()[-3000:]}")
        self.assertEqual([f for f in fails if f[2] != "temporary"], [], "a full disk must give temporary failures")
        return acks, fails

    def test_killed_on_a_full_disk_the_next_start_recovers(self):
        self.fill_until_failing(20)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.check_consistent("killed with the disk full", clean=False)
        os.unlink(self.filler)
        out = os.path.join(self.dir, "restart.out")
        restart = sc.start_writer(self.mnt, out, "--prefix", "again", "--count", "6", "--lines", "100:3000",
                                  *[x for a in ACCOUNTS for x in ("--account", a)])
        rc = restart.wait(60)
        with open(out + ".err", errors="replace") as f:
            err = f.read()
        self.assertEqual(rc, 0, f"the writer failed after the crash:\n{err[-3000:]}")
        acks, fails = sc.read_output(out)
        self.assertEqual((len(acks), fails), (6, []), f"deliveries after the crash and freeing space:\n{err[-3000:]}")
        self.check_consistent("after the restart", clean=True, extra=acks)
        n_tmp, tmp_bytes = self.tmp_report()
        print(f"\n[disk full, killed] after the restart {n_tmp} files / {tmp_bytes} bytes of the killed run are left in tmp/",
              file=sys.stderr)

    def test_full_disk_fails_temporarily_and_recovers_when_space_is_freed(self):
        # 1. Fill the disk until deliveries fail, many times.
        acks, fails = self.fill_until_failing(40)

        # 2. Frozen in the middle of failing: index and files agree, tmp/ holds only deliveries in flight.
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.1)
        self.check_consistent("with the disk full", clean=False)
        n_tmp, tmp_bytes = self.tmp_report()
        held = sc.deleted_open_files(self.proc.pid)
        st = os.statvfs(self.mnt)
        print(f"\n[disk full] {len(acks)} acknowledged, {len(fails)} failed (all temporary); with the disk full: "
              f"{n_tmp} files / {tmp_bytes} bytes in tmp/, {len(held)} unlinked files held open, "
              f"{st.f_bavail * st.f_frsize} bytes free", file=sys.stderr)
        self.assertLessEqual(n_tmp, 2 * IN_FLIGHT, "tmp/ holds more files than deliveries in flight: a leak")
        self.assertLessEqual(len(held), 2 * IN_FLIGHT, f"unlinked files held open (space never given back): {held}")
        sample = [line for line in self.stderr().splitlines() if "failed:" in line][:3]
        print("[disk full] failure reasons, e.g.:\n  " + "\n  ".join(sample), file=sys.stderr)

        # 3. Free space: the same writer must deliver again.
        os.unlink(self.filler)
        mark = len(acks)
        self.proc.send_signal(signal.SIGCONT)
        ok = wait_until(lambda: len(self.output()[0]) >= mark + 3, 30, self.proc)
        self.assertIsNone(self.proc.poll(), f"the writer died (exit {self.proc.returncode}):\n{self.stderr()[-3000:]}")
        self.assertTrue(ok, f"no delivery succeeded within 30 s after {FILLER} bytes were freed:\n{self.stderr()[-3000:]}")

        # 4. A clean stop: what is acknowledged is intact, every file is indexed, tmp/ is empty.
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.fail("the writer did not stop within 60 s of SIGTERM")
        self.assertEqual(rc, 0, f"the writer's clean stop failed:\n{self.stderr()[-3000:]}")
        self.assertNotIn("BUG", self.stderr())
        acks, fails = self.output()
        self.assertEqual([f for f in fails if f[2] != "temporary"], [], "a full disk must give temporary failures")
        self.check_consistent("after a clean stop", clean=True)
        n_tmp, tmp_bytes = self.tmp_report()
        print(f"[disk full] at the end: {len(acks)} acknowledged, {len(fails)} failed; "
              f"{n_tmp} files / {tmp_bytes} bytes left in tmp/", file=sys.stderr)
        self.assertEqual(n_tmp, 0, "a clean stop left files in tmp/")


if __name__ == "__main__":
    unittest.main()
