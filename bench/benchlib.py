"""What bench/pop3 and bench/imap share: errors and signals, ports, /proc accounting (CPU and
memory of a process or a whole session), the client worker pool, message sizes, the shared
password hash and the checks that Dovecot's users can reach the benchmark's folder. Imported by
the scripts next to it (they put this folder on sys.path); see bench/README.md."""
import argparse
import ctypes
import multiprocessing
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
import traceback

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
# Dovecot refuses mail access as root, so its copy of the mail belongs to this user. nobody's
# uid (65534) is above Dovecot's default first_valid_uid (500).
MAIL_USER = "nobody"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class Interrupted(Exception):
    pass


class BenchError(Exception):
    """Stops the run: a server misbehaved or could not be set up. server: whose log tail to show."""

    def __init__(self, msg, server=None):
        super().__init__(msg)
        self.server = server


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def say(msg):
    print(msg, file=sys.stderr, flush=True)


_ports_given = set()


def free_port():
    """A free loopback port, never one this process was given before: the kernel can hand out a
    just-closed port again at once, and two listeners of one configuration on the same port
    make the server refuse to start."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_port(port, timeout, alive=lambda: True, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise BenchError(f"{what} exited before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} didn't listen on port {port} within {timeout}s")


def fs_type(path):
    best, kind = "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, fstype = line.split()[:3]
            mnt = mnt.replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fstype
    return kind


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"({path}: {e})\n"


def wait_until(t):
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# ------------------------------------------------------------------------------- /proc accounting
def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (fields[0] is field 3, state), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_cpu(pid):
    """(own utime+stime, reaped children's cutime+cstime) of a process in seconds, or (0, 0)."""
    fields = proc_stat(pid)
    if not fields:
        return 0.0, 0.0
    # utime/stime/cutime/cstime are fields 14-17.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, (int(fields[13]) + int(fields[14])) / CLK_TCK


def session_pids(sid):
    """The live processes of session sid (a leader started with start_new_session)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(entry)
            if fields and fields[3] == str(sid):  # field 6: session id
                out.append(int(entry))
    return out


def session_cpu(sid):
    """CPU seconds of every live process of session sid plus what the leader reaped: Dovecot's
    master and its short-lived login and mail processes."""
    total = proc_cpu(sid)[1]
    for pid in session_pids(sid):
        fields = proc_stat(pid)
        if fields:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def proc_memory(pid):
    """(PSS, RSS) of a process in KiB from /proc/PID/smaps_rollup, or None when it is gone. PSS
    splits every shared page between the processes that map it, so the PSS of a group of
    processes adds up to what they cost together; RSS counts shared pages in every process."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return None
    pss = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    rss = re.search(r"^Rss:\s+(\d+) kB", text, re.M)
    if not pss or not rss:
        return None  # a kernel thread or a zombie
    return int(pss.group(1)), int(rss.group(1))


def group_memory(pids):
    """(PSS KiB, RSS KiB, processes) summed over pids (those still alive)."""
    pss = rss = n = 0
    for pid in pids:
        m = proc_memory(pid)
        if m:
            pss += m[0]
            rss += m[1]
            n += 1
    return pss, rss, n


def kill_group(proc, sig=signal.SIGTERM, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# ------------------------------------------------------------------------------------- messages
def parse_size(text):
    m = re.fullmatch(r"(\d+)([KkMm]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 2048, 2K, 1M)")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def parse_sizes(text):
    """'2K:100,1M:3' -> [(2048, 100), (1048576, 3)]"""
    out = []
    for part in text.split(","):
        size, _, count = part.partition(":")
        n = int(count) if count.strip() else 1
        s = parse_size(size)
        if s < 1024 or n < 1:
            raise argparse.ArgumentTypeError(f"bad --sizes entry {part!r}: SIZE >= 1K, COUNT >= 1")
        out.append((s, n))
    return out


def size_name(n):
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def message_plan(sizes):
    """The message sizes of one mailbox in file order, the large ones spread among the small."""
    keyed = []
    for size, count in sizes:
        keyed += [((j + 0.5) / count, size) for j in range(count)]
    return [size for _, size in sorted(keyed)]


def split_users(users, n):
    """n disjoint lists: one session never shares its mailbox with another running session."""
    return [users[i::n] for i in range(n)]


# ---------------------------------------------------------------------------------- client pool
def worker_main(conn, tasks):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:  # die with the parent even if it is SIGKILLed
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            result = tasks[task["kind"]](task)
        except Exception as e:
            fatal = getattr(e, "fatal", None)  # the script's own "always fatal" exceptions
            result = {"fatal": str(e) if fatal else "client crashed:\n" + traceback.format_exc()}
        conn.send(result)


class Pool:
    """One client process per session (no GIL shared between sessions; on 2 cores the client
    processes compete with the server under test, the same way for both servers). tasks maps a
    task's "kind" to the function that runs it in the worker; a worker keeps its memory between
    tasks, so a task may leave connections open for the next one."""

    def __init__(self, n, tasks):
        ctx = multiprocessing.get_context("fork")
        self.workers = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(child, tasks), daemon=True)
            p.start()
            child.close()
            self.workers.append((p, parent))

    def cpu(self):
        return sum(proc_cpu(p.pid)[0] for p, _ in self.workers)

    def run(self, tasks, timeout):
        """tasks: one per worker (or fewer); returns their results in order."""
        for (_, conn), task in zip(self.workers, tasks):
            conn.send(task)
        results = []
        deadline = time.monotonic() + timeout
        for (p, conn), _ in zip(self.workers, tasks):
            if not conn.poll(max(deadline - time.monotonic(), 0)):
                raise BenchError(f"a client process did not finish within {timeout:.0f}s")
            try:
                results.append(conn.recv())
            except EOFError:
                raise BenchError(f"client process {p.pid} died (exit code {p.exitcode})")
        return results

    def stop(self):
        for p, conn in self.workers:
            try:
                conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 3
        for p, conn in self.workers:
            p.join(max(deadline - time.monotonic(), 0))
            if p.is_alive():
                p.kill()
                p.join()
            conn.close()
        self.workers = []


# ------------------------------------------------------------------------------- accounts, dovecot
def shared_hash(password, scheme="SHA512-CRYPT"):
    """One hash of password from doveadm, used for every user: SHA512-CRYPT, or ARGON2ID
    (Dovecot's costs m=64M, t=3, the same as pillarbox's defaults)."""
    r = subprocess.run([DOVEADM, "pw", "-s", scheme, "-p", password], capture_output=True, text=True, timeout=60)
    h = r.stdout.strip()
    if r.returncode != 0 or not h.startswith("{" + scheme + "}$"):
        raise BenchError(f"doveadm pw failed ({r.returncode}): {r.stdout}{r.stderr}")
    return h


def dovecot_missing(protocol_binary, package):
    """Why the private Dovecot can't run here, or None."""
    if not os.access(DOVECOT, os.X_OK):
        return f"{DOVECOT} is not installed (apt-get install dovecot-core)"
    if not os.access(protocol_binary, os.X_OK):
        return f"{protocol_binary} is not installed (apt-get install {package})"
    if os.geteuid() != 0:
        return "not root: the private Dovecot switches to its mail user"
    try:
        pwd.getpwnam("dovecot")
        pwd.getpwnam("dovenull")
        pwd.getpwnam(MAIL_USER)
    except KeyError as e:
        return f"missing user: {e}"
    return None


def unreachable(path, user):
    """The first folder on the way to path that user can't pass through (owner, group or other
    x bit), or None. Dovecot's auth process (user dovecot) reads the passwd-file and its mail
    processes (MAIL_USER) the maildirs."""
    pw = pwd.getpwnam(user)
    groups = {g for g in os.getgrouplist(user, pw.pw_gid)}
    p = "/"
    for part in os.path.realpath(path).split("/")[1:]:
        p = os.path.join(p, part)
        st = os.stat(p)
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok and os.path.isdir(p):
            return f"{p} (mode {st.st_mode & 0o7777:04o})"
    return None


def dovecot_problems(log_path):
    """Warning, Error, Fatal and Panic lines of a private Dovecot's log (the master's own "Killed
    with signal 15" is the benchmark's SIGTERM at the end)."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [l for l in lines if re.search(r"\b(Warning|Error|Fatal|Panic):", l)
            and not re.search(r"master: Warning: Killed with signal 15 \(by pid=%d " % os.getpid(), l)]


def pillarbox_problems(log_path):
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    return [l for l in text.splitlines() if re.search(r"\b(warning|error|fatal|panic|BUG)\b|runtime error:|Sanitizer", l)]
