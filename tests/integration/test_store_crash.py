"""Crash test of the store (DESIGN.md principle 1): store_writer delivers to INBOX and appends to
Sent and Drafts (IMAP APPEND with flags and an internal date) as fast as it can and is killed with
SIGKILL at a random instant, round after round on the same data folder. Whatever it acknowledged
must be on disk, in its mailbox, with its flags, and indexed with its UID the moment it is killed;
UIDs of a mailbox only grow from round to round; then one clean run (opening the accounts runs the
recovery) and a check of the index against the files, straight from the disk.
PILLARBOX_CRASH_SEED=N replays a run's timings; PILLARBOX_KEEP_TMP=1 keeps its folder."""
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import unittest

import storecheck as sc

ROUNDS = 20
ACCOUNTS = ["alice@example.test", "bob@example.test"]
MAILBOXES = ("INBOX", "Sent", "Drafts")  # what the writer delivers and appends to
APPEND_PERCENT = 30
STALE = 37 * 3600  # Maildir convention: tmp files older than 36 hours are deleted


def wait_for_ack(path, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        with open(path, "rb") as f:
            if b"\n" in f.read():
                return
        time.sleep(0.005)


class StoreCrash(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(sc.WRITER):
            raise unittest.SkipTest(f"{sc.WRITER} is not built")
        cls.seed = int(os.environ.get("PILLARBOX_CRASH_SEED", time.time_ns() % 2**31))
        rnd = random.Random(cls.seed)
        cls.dir = tempfile.mkdtemp(prefix="pillarbox-crash-")
        cls.data = os.path.join(cls.dir, "data")
        cls.acks, cls.fails = [], []
        cls.per_round = []   # acknowledged messages missing or damaged right after a kill
        cls.crashes = []     # the writer died on its own, or logged a bug
        cls.uidvalidity = []
        cls.uid_order = []   # a UID acknowledged in a round not above every UID of earlier rounds
        first_uv = {}
        highest = {}         # (account, mailbox): (highest UID acknowledged so far, its id)
        for r in range(ROUNDS):
            out = os.path.join(cls.dir, f"round{r:02d}.out")
            args = ["--prefix", f"r{r:02d}", "--in-flight", str(rnd.choice([1, 4, 8, 16, 32])),
                    "--rcpts", str(rnd.choice([1, 1, 2])), "--append-percent", str(APPEND_PERCENT),
                    "--seed", str(rnd.randrange(2**31))]
            for a in ACCOUNTS:
                args += ["--account", a]
            proc = sc.start_writer(cls.data, out, *args)
            if r == 0:
                wait_for_ack(out, proc, 10)  # so the accounts exist and UIDVALIDITY can be recorded
            time.sleep(rnd.uniform(0.010, 0.400))
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
            with open(out + ".err", errors="replace") as f:
                err = f.read()
            if rc != -signal.SIGKILL or "BUG" in err:
                cls.crashes.append(f"round {r}: exit {rc}, stderr: {err[-2000:]}")
            acks, fails = sc.read_output(out)
            cls.acks += acks
            cls.fails += fails
            # Acknowledged means durable and indexed: no recovery may be needed to find it.
            cls.per_round += [f"after round {r}: {p}" for p in sc.check_acked(cls.data, acks)]
            cls.check_uid_order(f"round {r}", acks, highest)
            for a in ACCOUNTS:
                now = sc.uidvalidities(sc.account_root(cls.data, a))
                for box, (uv, file_v) in now.items():
                    if file_v is not None and file_v != uv:
                        cls.uidvalidity.append(f"after round {r}: {a} {box}: index UIDVALIDITY {uv}, {sc.UID_FILE} says {file_v}")
                    first_uv.setdefault((a, box), (r, uv))
                    r0, uv0 = first_uv[(a, box)]
                    if uv != uv0:
                        cls.uidvalidity.append(f"after round {r}: {a} {box}: UIDVALIDITY {uv}, was {uv0} after round {r0}")
        cls.rounds_acked = len(cls.acks)
        missing = [(a, b) for a in ACCOUNTS for b in MAILBOXES if (a, b) not in first_uv]
        if missing:
            cls.uidvalidity.append(f"no index for {missing} after {ROUNDS} rounds")

        # tmp/ before the clean run: leftovers of the killed runs, plus one stale file planted.
        cls.tmp_before = {}
        for a in ACCOUNTS:
            cls.tmp_before.update(sc.tmp_files(cls.data, a))
        cls.stale = os.path.join(sc.account_root(cls.data, ACCOUNTS[0]), "tmp", "1000000000.M1P1Q1.stale.test")
        with open(cls.stale, "wb") as f:
            f.write(b"Subject: left in tmp/ long ago\r\n\r\n")
        old = time.time() - STALE
        os.utime(cls.stale, (old, old))

        # The clean run: opens every account (recovery), delivers a few, exits.
        out = os.path.join(cls.dir, "final.out")
        args = ["--prefix", "final", "--count", "40", "--in-flight", "8", "--append-percent", str(APPEND_PERCENT),
                "--seed", str(rnd.randrange(2**31))]
        for a in ACCOUNTS:
            args += ["--account", a]
        cls.final_start = time.time()
        proc = sc.start_writer(cls.data, out, *args)
        try:
            rc = proc.wait(60)
        except Exception:
            proc.kill()
            rc = proc.wait()
        with open(out + ".err", errors="replace") as f:
            cls.final_err = f.read()
        cls.final_rc = rc
        acks, fails = sc.read_output(out)
        cls.final_acks = acks
        cls.check_uid_order("the clean run", acks, highest)
        cls.acks += acks
        cls.fails += fails
        cls.tmp_after = {}
        for a in ACCOUNTS:
            cls.tmp_after.update(sc.tmp_files(cls.data, a))
        cls.after = sc.check_acked(cls.data, cls.acks)
        cls.boxes = {k: [] for k in sc.KINDS}
        for a in ACCOUNTS:
            for kind, probs in sc.check_mailboxes(cls.data, a).items():
                cls.boxes[kind] += probs
        for a in ACCOUNTS:
            for box, (uv, file_v) in sc.uidvalidities(sc.account_root(cls.data, a)).items():
                r0, uv0 = first_uv.get((a, box), (None, uv))
                if uv != uv0:
                    cls.uidvalidity.append(f"after the clean run: {a} {box}: UIDVALIDITY {uv}, was {uv0} after round {r0}")
                if file_v is not None and file_v != uv:
                    cls.uidvalidity.append(f"after the clean run: {a} {box}: index UIDVALIDITY {uv}, {sc.UID_FILE} says {file_v}")
        killed_left = [p for p in cls.tmp_before if p in cls.tmp_after]
        cls.per_mailbox = {b: sum(1 for x in cls.acks if x[3] == b) for b in MAILBOXES}
        split = ", ".join(f"{n} to {b}" for b, n in cls.per_mailbox.items())
        print(f"\n[store crash] seed {cls.seed}: {ROUNDS} rounds, {cls.rounds_acked} acknowledged while being killed, "
              f"{len(cls.final_acks)} in the clean run ({split}); tmp/ files of killed runs: {len(cls.tmp_before)} before "
              f"the clean run, {len(killed_left)} still there after it; folder {cls.dir}", file=sys.stderr)

    @classmethod
    def check_uid_order(cls, when, acks, highest):
        """UIDNEXT never goes back: every UID a run acknowledges in a mailbox is above all UIDs
        acknowledged there by earlier runs (a reused UID after a crash would not be)."""
        before = dict(highest)
        for msg_id, account, uid, mailbox in acks:
            key = (account, mailbox)
            if key in before and uid <= before[key][0]:
                cls.uid_order.append(f"{when}: {account} {mailbox}: {msg_id} acknowledged with UID {uid}, "
                                     f"but {before[key][1]} had UID {before[key][0]} in an earlier run")
            if key not in highest or uid > highest[key][0]:
                highest[key] = (uid, msg_id)

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("PILLARBOX_KEEP_TMP"):
            shutil.rmtree(cls.dir, True)

    def report(self, problems, what):
        if problems:
            shown = "\n  ".join(problems[:25])
            more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
            self.fail(f"{what} (seed {self.seed}, {len(problems)} problems):\n  {shown}{more}")

    def test_rounds_acknowledged_something(self):
        self.assertGreater(self.rounds_acked, ROUNDS, "the writer hardly delivered: the rounds test nothing")

    def test_writer_only_dies_by_sigkill(self):
        self.report(self.crashes, "store_writer crashed or logged a bug")
        self.assertEqual(self.final_rc, 0, f"the clean run failed:\n{self.final_err[-3000:]}")
        self.assertNotIn("BUG", self.final_err)

    def test_rounds_appended_to_every_mailbox(self):
        for box in MAILBOXES:
            self.assertGreater(self.per_mailbox[box], 0, f"nothing acknowledged in {box}: appends are not tested")

    def test_no_delivery_fails_on_a_healthy_disk(self):
        self.report([f"FAIL {i} {a} {k} {b}" for i, a, k, b in self.fails], "deliveries or appends failed")

    def test_acknowledged_messages_are_on_disk_and_indexed_at_each_kill(self):
        self.report(self.per_round, "acknowledged messages missing right after a kill")

    def test_acknowledged_messages_intact_with_their_uid_after_recovery(self):
        self.report(self.after, "acknowledged messages lost or changed after recovery")

    def test_every_indexed_row_has_its_file(self):
        self.report(self.boxes["missing"], "index rows without their file")

    def test_no_uid_names_two_messages(self):
        self.report(self.boxes["uid"] + self.boxes["uidnext"], "UIDs given to two messages (index or U= in file names) or not below uidnext")

    def test_uids_acknowledged_only_grow_across_runs(self):
        self.report(self.uid_order, "a UID acknowledged after a crash is not above those acknowledged before it")

    def test_flags_in_index_and_file_names_agree(self):
        self.report(self.boxes["flags"], "flags of index rows and file names disagree, or appended files lack their flags")

    def test_no_partial_message_in_new_or_cur(self):
        self.report(self.boxes["partial"], "partial or foreign files in new/ or cur/")

    def test_every_message_file_is_indexed_after_recovery(self):
        self.report(self.boxes["unindexed"], "message files the index does not know after recovery")

    def test_uidvalidity_never_changes(self):
        self.report(self.uidvalidity, "UIDVALIDITY changed")

    def test_clean_run_leaves_nothing_in_tmp(self):
        own = [p for p, mtime in self.tmp_after.items()
               if p not in self.tmp_before and p != self.stale and mtime >= self.final_start - 1]
        self.report(own, "tmp/ files left by a run that was not killed")

    def test_tmp_files_older_than_36_hours_are_removed(self):
        self.assertFalse(os.path.exists(self.stale),
                         "a tmp/ file 37 hours old survived the opening of the account (Maildir convention: delete after 36 h)")


if __name__ == "__main__":
    unittest.main()
