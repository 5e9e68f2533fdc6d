#!/usr/bin/env python3
"""Compares the IMAP message-format corpus with what Dovecot answers.

Puts every tests/unit/protocols/imap/corpus/NAME.eml in a scratch Maildir, runs Debian's
Dovecot imap binary on it (pre-authenticated, over stdin/stdout: no daemon, no port, no
password), FETCHes ENVELOPE BODY BODYSTRUCTURE and prints each item that differs from
NAME.expected. Known, deliberate differences are listed in the corpus README.

Needs dovecot-imapd (apt-get install -y dovecot-imapd). Run as root: the imap process runs as
nobody, since Dovecot refuses to open mail as root. Not part of any test run.
    python3 tests/tools/dovecot_corpus_compare.py
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "protocols", "imap", "corpus")
IMAP = "/usr/lib/dovecot/imap"


def fetch_all(paths):
    d = tempfile.mkdtemp(prefix="pbx-dovecot-")
    try:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, "Maildir", sub))
        with open(os.path.join(d, "dovecot.conf"), "w") as f:
            f.write(f"base_dir = {d}/run\nlog_path = {d}/log\nmail_location = maildir:{d}/Maildir\n"
                    "ssl = no\nprotocols = imap\n")
        for i, p in enumerate(paths, 1):
            shutil.copy(p, os.path.join(d, "Maildir", "cur", f"{i:04d}.pbx:2,S"))
        subprocess.run(["chown", "-R", "nobody:nogroup", d], check=True)
        commands = b"a0 SELECT INBOX\r\na1 FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE)\r\na2 LOGOUT\r\n"
        out = subprocess.run(["runuser", "-u", "nobody", "--", "env", "USER=test", f"HOME={d}", "timeout", "30",
                              IMAP, "-c", f"{d}/dovecot.conf"], input=commands, capture_output=True, check=True)
        return out.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)


def value_end(b, i):
    """Index after the IMAP value (list, quoted string, literal or atom) that starts at b[i]."""
    c = b[i:i + 1]
    if c == b"(":
        depth = 0
        while True:
            c = b[i:i + 1]
            if c in (b'"', b"{"):
                i = value_end(b, i)
                continue
            if c == b"(":
                depth += 1
            elif c == b")":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    if c == b'"':
        i += 1
        while b[i:i + 1] != b'"':
            i += 2 if b[i:i + 1] == b"\\" else 1
        return i + 1
    if c == b"{":
        m = re.match(rb"\{(\d+)\}\r\n", b[i:])
        return i + len(m.group(0)) + int(m.group(1))
    return i + len(re.match(rb"[^ ()]+", b[i:]).group(0))


def fetch_items(b, i):
    items = {}
    i += 1  # "("
    while b[i:i + 1] != b")":
        m = re.match(rb"([A-Z0-9.]+) ", b[i:])
        i += len(m.group(0))
        end = value_end(b, i)
        items[m.group(1).decode()] = b[i:end]
        i = end + (1 if b[end:end + 1] == b" " else 0)
    return items, i + 1


def expected_items(path):
    b = open(path, "rb").read()
    items, i = {}, 0
    while i < len(b):
        m = re.match(rb"([A-Z]+) ", b[i:])
        i += len(m.group(0))
        end = value_end(b, i)
        items[m.group(1).decode()] = b[i:end]
        i = end + 2  # CRLF
    return items


def main():
    names = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(CORPUS, "*.eml")))
    out = fetch_all([os.path.join(CORPUS, n + ".eml") for n in names])
    pos, seen, differences = 0, 0, 0
    fetch = re.compile(rb"\* (\d+) FETCH ")
    while (m := fetch.search(out, pos)) is not None:
        got, pos = fetch_items(out, m.end())
        name = names[int(m.group(1)) - 1]
        want = expected_items(os.path.join(CORPUS, name + ".expected"))
        for item in ("ENVELOPE", "BODY", "BODYSTRUCTURE"):
            if want[item] != got.get(item):
                differences += 1
                print(f"{name} {item}\n  expected: {want[item]!r}\n  dovecot:  {got.get(item)!r}")
        seen += 1
    print(f"{seen} of {len(names)} messages compared, {differences} items differ")
    return 0 if seen == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
