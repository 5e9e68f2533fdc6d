"""pillarbox index check|rebuild against a data folder the store wrote (server stopped)."""
import os
import sqlite3
import subprocess

from pbtest import TempDirTest, run

WRITER = os.path.join(os.path.dirname(os.environ.get("PILLARBOX_BIN", "")), "tests", "tools", "store_writer")


class IndexCommands(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data")
        r = subprocess.run([WRITER, self.data, "--account", "alice@example.org", "--count", "20", "--seed", "1"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.acks = [line.split() for line in r.stdout.splitlines() if line.startswith("ACK ")]  # ACK id account uid mailbox
        self.assertEqual(len(self.acks), 20)
        self.conf = self.write("pillarbox.conf", f"data_directory = {self.data}\n")
        self.root = os.path.join(self.data, "mail", "example.org", "alice")

    def index(self, *args):
        return run("-c", self.conf, "index", *args)

    def test_check_reports_agreement_and_differences(self):
        r = self.index("check", "alice@example.org")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("index matches the Maildir", r.stderr)
        victim = sorted(os.listdir(os.path.join(self.root, "new")))[0]
        os.remove(os.path.join(self.root, "new", victim))
        with open(os.path.join(self.root, "new", "1700000000.M1P1Q1.elsewhere"), "w") as f:
            f.write("Subject: dropped in\n\nhi\n")
        r = self.index("check", "alice@example.org")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"new/{victim} is missing", r.stdout)
        self.assertIn("new/1700000000.M1P1Q1.elsewhere is not in the index", r.stdout)
        # check changed nothing: the dropped-in file keeps its name
        self.assertTrue(os.path.exists(os.path.join(self.root, "new", "1700000000.M1P1Q1.elsewhere")))

    def test_rebuild_keeps_uids(self):
        before = {name.split(",U=")[1].split(":")[0]: name for name in os.listdir(os.path.join(self.root, "new"))}
        for suffix in ("", "-wal", "-shm"):
            p = os.path.join(self.root, "pillarbox.index" + suffix)
            if os.path.exists(p):
                os.remove(p)
        self.assertEqual(self.index("check", "alice@example.org").returncode, 1)
        r = self.index("rebuild", "alice@example.org")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.index("check", "alice@example.org").returncode, 0)
        db = sqlite3.connect(f"file:{os.path.join(self.root, 'pillarbox.index')}?mode=ro", uri=True)
        rows = dict(db.execute("SELECT uid, file FROM message JOIN mailbox ON mailbox.id = mailbox_id WHERE name = 'INBOX'"))
        self.assertEqual({str(u): f.split("/", 1)[1] for u, f in rows.items()}, before)
        self.assertEqual({box for *_, box in self.acks}, {"INBOX"})
        acked = {uid for _, _, _, uid, _ in self.acks}
        self.assertEqual({str(u) for u in rows}, acked)

    def test_bad_user(self):
        self.assertEqual(self.index("check", "no-at-sign").returncode, 2)
        self.assertEqual(self.index("check", "../x@example.org").returncode, 2)
        self.assertEqual(self.index("rebuild", "nobody@example.org").returncode, 1)
