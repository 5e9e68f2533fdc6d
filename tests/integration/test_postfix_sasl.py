"""Debian's real Postfix (smtpd_sasl_type = dovecot) authenticating its SMTP clients against
pillarbox's auth socket, driven by swaks. Root only: Postfix's master runs as root and its smtpd
as the postfix user, which must reach the socket."""
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from pbtest import BIN, Server, base_config, free_port, run

POSTFIX = "/usr/sbin/postfix"
SWAKS = shutil.which("swaks")
FAST = ("auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\n"
        # Postfix gives the auth server 10 s per reply; keep the failed-login penalty well below.
        "auth_failure_delay = 50ms\nauth_penalty_max = 200ms\n")
USER, PASSWORD = "bob@example.com", "correct horse"


def missing_requirement():
    if os.geteuid() != 0:
        return "needs root: Postfix's master runs as root and drops to the postfix user"
    if not os.access(POSTFIX, os.X_OK):
        return f"{POSTFIX} is not installed (apt-get install postfix)"
    if not SWAKS:
        return "swaks is not installed (apt-get install swaks)"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return "the postfix user or postdrop group is missing"
    return None


MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n  -  n  60    1  pickup
cleanup   unix  n  -  n  -     0  cleanup
qmgr      unix  n  -  n  300   1  qmgr
tlsmgr    unix  -  -  n  1000? 1  tlsmgr
rewrite   unix  -  -  n  -     -  trivial-rewrite
bounce    unix  -  -  n  -     0  bounce
defer     unix  -  -  n  -     0  bounce
trace     unix  -  -  n  -     0  bounce
verify    unix  -  -  n  -     1  verify
flush     unix  n  -  n  1000? 0  flush
proxymap  unix  -  -  n  -     -  proxymap
smtp      unix  -  -  n  -     -  smtp
relay     unix  -  -  n  -     -  smtp
showq     unix  n  -  n  -     -  showq
error     unix  -  -  n  -     -  error
retry     unix  -  -  n  -     -  error
discard   unix  -  -  n  -     -  discard
local     unix  -  n  n  -     -  local
anvil     unix  -  -  n  -     1  anvil
scache    unix  -  -  n  -     1  scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PrivatePostfix:
    """A Postfix instance of its own in `root`: config, queue and data directories, log file, one
    unchrooted smtpd on 127.0.0.1:port. Nothing under /etc/postfix or /var/spool is touched."""

    def __init__(self, root, port, sasl_path, tls_cert, tls_key):
        self.root = root
        self.conf = os.path.join(root, "conf")
        self.queue = os.path.join(root, "queue")
        self.data = os.path.join(root, "data")
        self.log_path = os.path.join(root, "postfix.log")
        self.port = port
        for d in (self.conf, self.queue, self.data):
            os.makedirs(d)
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, grp.getgrnam("postfix").gr_gid)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(f"""\
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.postfix.test
mydomain = postfix.test
mydestination =
relay_domains =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
maillog_file = {self.log_path}
maillog_file_prefixes = {root}
smtpd_tls_security_level = may
smtpd_tls_cert_file = {tls_cert}
smtpd_tls_key_file = {tls_key}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl_path}
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
""")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen=f"127.0.0.1:{port}"))

    def postfix(self, *args):
        # Postfix reports errors to the terminal and its log only; capture both for the message.
        return subprocess.run([POSTFIX, "-c", self.conf, *args], capture_output=True, text=True, timeout=60)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return "(no postfix log)"

    def start(self):
        # `check` also creates the queue directories with Postfix's owners and modes.
        for cmd in ("check", "start"):
            r = self.postfix(cmd)
            if r.returncode != 0:
                raise AssertionError(f"postfix {cmd} failed ({r.returncode}): {r.stdout}{r.stderr}\n{self.log()}")
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"postfix smtpd didn't listen on port {self.port}:\n{self.log()}")

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def own_processes(self):
        """Pids of every process of this instance: Postfix passes MAIL_CONFIG to its daemons."""
        marker = f"MAIL_CONFIG={self.conf}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                pass
        return pids

    def stop(self):
        master = self.master_pid()
        self.postfix("stop")
        deadline = time.time() + 10
        while master and time.time() < deadline and os.path.exists(f"/proc/{master}"):
            time.sleep(0.1)
        for pid in set(self.own_processes() + ([master] if master else [])):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def swaks(port, mech, user, password, tls=True):
    args = [SWAKS, "--server", f"127.0.0.1:{port}", "--ehlo", "client.test", "--auth", mech,
            "--auth-user", user, "--auth-password", password, "--quit-after", "AUTH", "--timeout", "30"]
    if tls:
        args.append("--tls")
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@unittest.skipIf(missing_requirement(), missing_requirement() or "")
class PostfixSasl(unittest.TestCase):
    """One pillarbox and one Postfix for the class; `extra` is added to pillarbox's config."""
    extra = ""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pillarbox-it-")
        # Postfix's smtpd (user postfix) must get through to the socket inside.
        os.chmod(cls.dir, 0o711)
        cls.socket_path = os.path.join(cls.dir, "auth-socket")
        cls.conf = os.path.join(cls.dir, "pillarbox.conf")
        with open(cls.conf, "w") as f:
            f.write(base_config(os.path.join(cls.dir, "data")) + FAST +
                    f"auth_socket_path = {cls.socket_path}\nauth_socket_user = postfix\n"
                    f"auth_socket_group = postfix\nauth_socket_mode = 0660\n" + cls.extra)
        cls.server = None
        cls.postfix = None
        try:
            for args, stdin in ((("domain", "add", "example.com"), None), (("user", "add", USER), PASSWORD + "\n")):
                r = run("-c", cls.conf, *args, stdin=stdin)
                if r.returncode != 0:
                    raise AssertionError(f"pillarbox {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}")
            cls.server = Server(["-c", cls.conf, "serve"], cwd=cls.dir)
            cls.server.wait_log(r"auth socket listening on")
            key, cert = os.path.join(cls.dir, "smtpd.key"), os.path.join(cls.dir, "smtpd.crt")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=mx.postfix.test"],
                           check=True, capture_output=True)
            cls.port = free_port()
            cls.postfix = PrivatePostfix(os.path.join(cls.dir, "postfix"), cls.port, cls.socket_path, cert, key)
            cls.postfix.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
        if cls.server:
            cls.server.stop()
        shutil.rmtree(cls.dir, True)

    def logs(self):
        return f"\n--- postfix log ---\n{self.postfix.log()}\n--- pillarbox log ---\n{self.server.log()}"

    def assert_auth_ok(self, r):
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self.logs())
        self.assertRegex(r.stdout, r"(?m)^<[-~] +235 ", r.stdout + self.logs())

    def assert_auth_refused(self, r):
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr + self.logs())
        self.assertRegex(r.stdout, r"(?m)^<[~*]\* +535 ", r.stdout + self.logs())


class PostfixOverTls(PostfixSasl):
    """Pillarbox's defaults: cleartext mechanisms only for a client Postfix marks as secured (TLS)."""

    def test_socket_is_owned_as_configured(self):
        st = os.lstat(self.socket_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_uid, pwd.getpwnam("postfix").pw_uid)
        self.assertEqual(st.st_gid, grp.getgrnam("postfix").gr_gid)

    def test_plain_good_password(self):
        r = swaks(self.port, "PLAIN", USER, PASSWORD)
        self.assert_auth_ok(r)
        self.server.wait_log(rf"sasl_method=PLAIN, sasl_username={re.escape(USER)}")

    def test_plain_bad_password(self):
        self.assert_auth_refused(swaks(self.port, "PLAIN", USER, "wrong horse"))
        self.assertRegex(self.postfix.log(), r"SASL PLAIN authentication failed")

    def test_login_good_and_bad_password(self):
        self.assert_auth_ok(swaks(self.port, "LOGIN", USER, PASSWORD))
        self.assert_auth_refused(swaks(self.port, "LOGIN", USER, "wrong horse"))
        self.assert_auth_refused(swaks(self.port, "LOGIN", "nobody@example.com", PASSWORD))

    def test_postfix_advertises_the_mechanisms(self):
        r = swaks(self.port, "PLAIN", USER, PASSWORD)
        self.assertRegex(r.stdout, r"250-AUTH .*\bPLAIN\b.*\bLOGIN\b", r.stdout + self.logs())

    def test_cleartext_without_tls_is_refused(self):
        r = swaks(self.port, "PLAIN", USER, PASSWORD, tls=False)
        self.assert_auth_refused(r)
        self.assertIn("Plaintext authentication disallowed", r.stdout)


class PostfixCleartextLoopback(PostfixSasl):
    """auth_allow_cleartext_loopback lets Postfix's plaintext sessions from 127.0.0.1 through."""
    extra = "auth_allow_cleartext_loopback = yes\n"

    def test_plain_and_login_without_tls(self):
        self.assert_auth_ok(swaks(self.port, "PLAIN", USER, PASSWORD, tls=False))
        self.assert_auth_ok(swaks(self.port, "LOGIN", USER, PASSWORD, tls=False))
        self.assert_auth_refused(swaks(self.port, "PLAIN", USER, "wrong horse", tls=False))


if __name__ == "__main__":
    unittest.main()
