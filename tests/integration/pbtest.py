"""Helpers for integration tests: temp folders, free loopback ports, and a pillarbox serve
process whose log can be waited on."""
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("PILLARBOX_BIN", "")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOSTNAME = "mail.pillarbox.test"
DEFAULT_LISTENERS = ["smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http"]

# free_port: the benchmarks' (never the same port twice in one process).
sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import free_port  # noqa: E402,F401


def run(*args, cwd=None, stdin=None, timeout=30):
    return subprocess.run([BIN, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout)


def base_config(data_dir, hostname=HOSTNAME):
    """Every default listener off, data in data_dir."""
    lines = [f"myhostname = {hostname}", f"data_directory = {data_dir}"]
    lines += [f"listen_{name} =" for name in DEFAULT_LISTENERS]
    return "\n".join(lines) + "\n"


def recv_line(sock, limit=4096):
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pillarbox-it-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)


class BenchTest(TempDirTest):
    """A bench/* smoke test. REQUIRES says what the peer server needs: (why root, tools,
    packages that install them, users, groups); without them the test is skipped. The test's
    folder is on the same disk the benchmark would measure, and open (0755) to the peer's
    users."""
    REQUIRES = ("", (), "", (), ())

    def missing(self):
        why_root, tools, packages, users, groups = self.REQUIRES
        if os.geteuid() != 0:
            return f"needs root: {why_root}"
        for tool in tools:
            if not os.access(tool, os.X_OK):
                return f"{tool} is not installed (apt-get install {packages})"
        for user in users:
            try:
                pwd.getpwnam(user)
            except KeyError:
                return f"missing user {user}"
        for group in groups:
            try:
                grp.getgrnam(group)
            except KeyError:
                return f"missing group {group}"
        return None

    def setUp(self):
        reason = self.missing()
        if reason:
            self.skipTest(reason)
        super().setUp()
        os.chmod(self.dir, 0o755)


class Server:
    """pillarbox serve in the background; stderr goes to a file we can wait on."""

    def __init__(self, args, cwd, env=None, preexec=None, wait_started=True, binary=None):
        self.log_path = os.path.join(cwd, "serve.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary or BIN, *args], cwd=cwd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=env, preexec_fn=preexec)
        if wait_started:
            self.wait_log(r"daemon started", 20)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=10, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(re.findall(pattern, self.log())) >= count:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}) before /{pattern}/:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"no /{pattern}/ in the log within {timeout}s:\n{self.log()}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log_file.close()
        return rc


class ServerTest(TempDirTest):
    """A temp folder with a config file and a server started from it."""

    def start(self, extra_config, name="pillarbox.conf"):
        conf = self.write(name, base_config(self.path("data")) + extra_config)
        server = Server(["-c", conf, "serve"], cwd=self.dir)
        self.addCleanup(self.stop_clean, server)
        return server

    def stop_clean(self, server):
        server.stop()
        # The debug build flags blocking calls on the loop thread; a run must have none.
        self.assertNotIn("BUG: blocking call", server.log())
        self.assertNotIn("runtime error:", server.log())  # UBSan
        self.assertNotIn("ERROR: AddressSanitizer", server.log())
        self.assertNotIn("ERROR: LeakSanitizer", server.log())
