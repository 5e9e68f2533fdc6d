"""Helpers for the store crash and disk-full tests: the store_writer tool, its output, the
messages it writes, and a check of an account's Maildir and index straight from the disk."""
import os
import re
import sqlite3
import subprocess

from pbtest import BIN

WRITER = os.path.join(os.path.dirname(BIN), "tests", "tools", "store_writer")
RETURN_PATH = "writer@store-writer.test"
UID_FILE = "pillarbox-uidvalidity"  # per-mailbox UIDVALIDITY kept beside the Maildir, when present
ID_RE = re.compile(rb"^Message-ID: <([^@>]+)@store-writer\.test>\r$", re.M)

# storage::Flag bits and their Maildir letters (docs/storage.md), and what store_writer's
# --append-percent appends: "Sent" with \Seen, "Drafts" with \Draft \Seen. INBOX gets deliveries.
SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = 1, 2, 4, 8, 16
LETTERS = {"D": DRAFT, "F": FLAGGED, "R": ANSWERED, "S": SEEN, "T": DELETED}
APPEND_FLAGS = {"Sent": SEEN, "Drafts": DRAFT | SEEN}
KINDS = ("missing", "uid", "uidnext", "partial", "unindexed", "flags")


def start_writer(data_dir, out_path, *args, err_path=None):
    """store_writer in the background, stdout to out_path (a file, so it never blocks on a pipe)."""
    out = open(out_path, "wb")
    err = open(err_path or out_path + ".err", "wb")
    try:
        return subprocess.Popen([WRITER, data_dir, *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    finally:
        out.close()
        err.close()


def parse_output(data):
    """(acks, fails) from the writer's stdout ("ACK id account uid mailbox", "FAIL id account
    kind mailbox"); only complete lines count. acks: [(id, account, uid, mailbox)], fails: [(id,
    account, kind, mailbox)]; mailbox is INBOX for deliveries."""
    acks, fails = [], []
    lines = data.split(b"\n")
    for line in lines[:-1]:  # the last piece has no newline: incomplete (or empty)
        f = line.decode().split(" ")
        if f[0] == "ACK" and len(f) == 5:
            acks.append((f[1], f[2], int(f[3]), f[4]))
        elif f[0] == "FAIL" and len(f) == 5:
            fails.append((f[1], f[2], f[3], f[4]))
        else:
            raise AssertionError(f"unexpected writer output line {line!r}")
    return acks, fails


def read_output(path):
    with open(path, "rb") as f:
        return parse_output(f.read())


def expected_message(msg_id, account, mailbox="INBOX"):
    """What the store must have on disk for message msg_id delivered to account (INBOX), or
    appended to another mailbox of it (stored as given: no Return-Path, no Delivered-To)."""
    lines = int(msg_id.rsplit("x", 1)[1])
    head = f"Message-ID: <{msg_id}@store-writer.test>\r\nSubject: store_writer {msg_id}\r\n\r\n"
    if mailbox == "INBOX":
        head = f"Return-Path: <{RETURN_PATH}>\r\nDelivered-To: {account}\r\n" + head
    return (head + "".join(f"{msg_id} line {k}\r\n" for k in range(lines))).encode()


def expected_flags(mailbox):
    """storage::Flag bits a store_writer message in mailbox carries: none for deliveries."""
    return APPEND_FLAGS.get(mailbox, 0)


def expected_internal_date(msg_id):
    """The internal date store_writer gives an append of msg_id (internal_date_of in store_writer.cpp)."""
    h = 2166136261
    for c in msg_id.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return 1000000000 + h % 700000000


def flags_of_info(info):
    """storage::Flag bits from a Maildir info ("2,DS"), or None when it is not a valid "2," info
    with system flags in ASCII order."""
    if info == "":
        return 0
    if not info.startswith("2,"):
        return None
    letters = info[2:]
    system = "".join(c for c in letters if c.isupper())
    if list(system) != sorted(set(system)) or any(c not in LETTERS for c in system):
        return None
    return sum(LETTERS[c] for c in system)


def flag_letters(flags):
    return "".join(c for c in sorted(LETTERS) if flags & LETTERS[c])


def account_root(data_dir, account):
    local, domain = account.split("@")
    return os.path.join(data_dir, "mail", domain, local)


def parse_file_name(name):
    """Maildir name BASE[,K=V...][:2,FLAGS] -> (base, {K: V}, info) or None for dot files."""
    if name.startswith("."):
        return None
    main, sep, info = name.rpartition(":")
    if not sep:
        main, info = name, ""
    parts = main.split(",")
    fields = {}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        if eq:
            fields.setdefault(k, v)
    return parts[0], fields, info


def connect_ro(root):
    path = os.path.join(root, "pillarbox.index")
    if not os.path.exists(path):
        return None
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def mailboxes(root):
    """{name: (id, dir, uidvalidity, uidnext)} from the index; {} when there is no index yet."""
    db = connect_ro(root)
    if db is None:
        return {}
    try:
        return {r[1]: (r[0], r[2], r[3], r[4]) for r in db.execute("SELECT id, name, dir, uidvalidity, uidnext FROM mailbox")}
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def uidvalidities(root):
    """{mailbox: (index uidvalidity, V from the uidvalidity file or None)}."""
    out = {}
    for name, (_, d, uv, _) in mailboxes(root).items():
        file_v = None
        try:
            with open(os.path.join(root, d, UID_FILE)) as f:
                for line in f:
                    k, _, v = line.strip().partition(" ")
                    if k == "V":
                        file_v = int(v)
        except FileNotFoundError:
            pass
        out[name] = (uv, file_v)
    return out


def messages(root):
    """{mailbox name: {uid: (base, file, flags, internal_date)}} from the index; file is below the
    mailbox directory."""
    db = connect_ro(root)
    if db is None:
        return {}
    try:
        boxes = {r[0]: r[1] for r in db.execute("SELECT id, name FROM mailbox")}
        out = {name: {} for name in boxes.values()}
        for mid, uid, base, file, flags, idate in db.execute(
                "SELECT mailbox_id, uid, base, file, flags, internal_date FROM message"):
            out[boxes[mid]][uid] = (base, file, flags, idate)
        return out
    finally:
        db.close()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_acked(data_dir, acks, index=None):
    """Problems with acknowledged messages: each must be indexed in its mailbox with its UID, its
    flags and (appends) its internal date; its file, in cur/ with the flag letters when it has
    flags, must hold exactly what its id implies. acks: [(id, account, uid, mailbox)]."""
    problems = []
    by_uid = {}
    for msg_id, account, uid, mailbox in acks:
        prev = by_uid.setdefault((account, mailbox, uid), msg_id)
        if prev != msg_id:
            problems.append(f"{account} {mailbox}: UID {uid} acknowledged for two messages, {prev} and {msg_id}")
    index = index or {}
    dirs = {}
    for msg_id, account, uid, mailbox in acks:
        root = account_root(data_dir, account)
        if account not in index:
            index[account] = messages(root)
            dirs[account] = {name: d for name, (_, d, _, _) in mailboxes(root).items()}
        where = f"{account} {mailbox}: acknowledged {msg_id} UID {uid}"
        row = index[account].get(mailbox, {}).get(uid)
        if row is None:
            problems.append(f"{where} is not in the index")
            continue
        base, file, flags, idate = row
        want_flags = expected_flags(mailbox)
        if flags != want_flags:
            problems.append(f"{where}: index flags {flags}, expected {want_flags}")
        if mailbox != "INBOX" and idate != expected_internal_date(msg_id):
            problems.append(f"{where}: index internal date {idate}, expected {expected_internal_date(msg_id)}")
        parsed = parse_file_name(os.path.basename(file))
        want_sub = "cur" if want_flags else "new"
        if parsed is None or parsed[0] != base or file.split("/")[0] not in ("new", "cur"):
            problems.append(f"{where}: indexed file {file} does not match base {base}")
        elif want_flags and (file.split("/")[0] != want_sub or flags_of_info(parsed[2]) != want_flags):
            problems.append(f"{where}: indexed file {file}, expected {want_sub}/...:2,{flag_letters(want_flags)}")
        path = os.path.join(root, dirs.get(account, {}).get(mailbox, ""), file)
        try:
            data = read(path)
        except FileNotFoundError:
            problems.append(f"{where}: indexed file {file} is missing")
            continue
        want = expected_message(msg_id, account, mailbox)
        if data != want:
            m = ID_RE.search(data)
            got = m.group(1).decode() if m else "?"
            problems.append(f"{where}: {file} holds {len(data)} bytes of {got}, expected {len(want)} bytes of {msg_id}")
    return problems


def check_mailboxes(data_dir, account, require_all_indexed=True):
    """Problems in one account's INBOX and folders, by kind: "missing" (an index row without its
    file, or whose file name disagrees on base or UID), "uid" (a U= UID on two different
    messages), "uidnext" (a UID not below the mailbox's uidnext), "partial" (a file in new/ or
    cur/ that is not a complete store_writer message: delivered in INBOX, appended elsewhere),
    "unindexed" (a file in new/ or cur/ with no index row), "flags" (an index row whose flags
    column disagrees with its file name's letters, or a file whose letters or new/cur place are
    not what store_writer gives that mailbox). While a writer runs, or after a kill before recovery, files renamed into new/ but
    not yet indexed are expected: "unindexed" and "uidnext" say nothing then."""
    problems = {k: [] for k in KINDS}
    root = account_root(data_dir, account)
    index = messages(root)
    boxes = mailboxes(root)
    for name, (_, d, _, uidnext) in boxes.items():
        rows = index.get(name, {})
        for uid, (base, file, flags, _) in rows.items():
            path = os.path.join(root, d, file)
            if not os.path.exists(path):
                problems["missing"].append(f"{account} {name}: index row UID {uid} points to missing file {file}")
                continue
            parsed = parse_file_name(os.path.basename(file))
            if parsed is None or parsed[0] != base:
                problems["missing"].append(f"{account} {name}: index row UID {uid} base {base} but file {file}")
                continue
            if parsed[1].get("U") not in (None, str(uid)):
                problems["missing"].append(f"{account} {name}: index row UID {uid} but its file says U={parsed[1]['U']} ({file})")
            if flags_of_info(parsed[2]) != flags:
                problems["flags"].append(f"{account} {name}: index row UID {uid} has flags {flags} but its file is {file}")
        indexed_files = {row[1] for row in rows.values()}
        want_flags = expected_flags(name)
        want_info = f"2,{flag_letters(want_flags)}" if want_flags else None
        by_u = {}
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(root, d, sub))
            except FileNotFoundError:
                continue
            for n in names:
                parsed = parse_file_name(n)
                if parsed is None:
                    continue
                base, fields, _ = parsed
                path = os.path.join(root, d, sub, n)
                try:
                    data = read(path)
                except FileNotFoundError:
                    continue
                if want_flags and (sub != "cur" or flags_of_info(parsed[2]) != want_flags):
                    problems["flags"].append(f"{account} {name}: {sub}/{n}: expected cur/...:{want_info}")
                elif not want_flags and flags_of_info(parsed[2]) != 0:
                    problems["flags"].append(f"{account} {name}: {sub}/{n}: a delivery with flags")
                if "U" in fields:
                    by_u.setdefault(fields["U"], set()).add(base)
                    if int(fields["U"]) >= uidnext:
                        problems["uidnext"].append(f"{account} {name}: {sub}/{n} has U={fields['U']} but uidnext is {uidnext}")
                if require_all_indexed and f"{sub}/{n}" not in indexed_files:
                    problems["unindexed"].append(f"{account} {name}: {sub}/{n} is not in the index")
                if "S" in fields and int(fields["S"]) != len(data):
                    problems["partial"].append(f"{account} {name}: {sub}/{n} is {len(data)} bytes, its name says S={fields['S']}")
                m = ID_RE.search(data)
                if not m:
                    problems["partial"].append(f"{account} {name}: {sub}/{n} has no store_writer Message-ID ({len(data)} bytes)")
                elif data != expected_message(m.group(1).decode(), account, name):
                    problems["partial"].append(f"{account} {name}: {sub}/{n} is not the complete message {m.group(1).decode()}")
        for u, bases in sorted(by_u.items(), key=lambda kv: int(kv[0])):
            if len(bases) > 1:
                problems["uid"].append(f"{account} {name}: U={u} on {len(bases)} different messages: {sorted(bases)}")
        if rows and max(rows) >= uidnext:
            problems["uidnext"].append(f"{account} {name}: uidnext {uidnext} is not above the highest indexed UID {max(rows)}")
    return problems


def tmp_files(data_dir, account):
    """{path: mtime} of everything in the tmp/ folders of an account."""
    out = {}
    root = account_root(data_dir, account)
    if not os.path.isdir(root):
        return out
    for d in [""] + [e for e in os.listdir(root) if e.startswith(".")]:
        tmp = os.path.join(root, d, "tmp")
        if os.path.isdir(tmp):
            for n in os.listdir(tmp):
                p = os.path.join(tmp, n)
                try:
                    out[p] = os.stat(p).st_mtime
                except FileNotFoundError:
                    pass
    return out


def quick_check(root):
    """"ok" or what SQLite's quick_check says about the index."""
    db = connect_ro(root)
    if db is None:
        return "no index"
    try:
        return "; ".join(r[0] for r in db.execute("PRAGMA quick_check"))
    finally:
        db.close()


def deleted_open_files(pid):
    """Files the process holds open that were unlinked (space a full disk does not get back)."""
    out = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.endswith(" (deleted)"):
                out.append(target)
    except FileNotFoundError:
        pass
    return out
