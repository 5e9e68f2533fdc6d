"""Accounts, domains and aliases from the command line (server stopped and running), the first
admin account, and logins through the Dovecot-compatible auth socket with a small client that
speaks Dovecot's auth protocol the way Postfix does."""
import base64
import os
import re
import socket
import stat
import time
import unittest

from pbtest import ServerTest, TempDirTest, base_config, run

FAST_HASH = "auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nauth_failure_delay = 50ms\nauth_penalty_max = 200ms\n"
# fail2ban's postfix-sasl filter (filter.d/postfix.conf, mode=auth), after its prefix.
FAIL2BAN = re.compile(r"\[(?P<host>[0-9a-f.:]+)\](?::\d+)?: SASL ((?i:LOGIN|PLAIN|(?:CRAM|DIGEST)-MD5)) authentication failed:")


class DovecotAuthClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buf = b""
        self.sock.sendall(b"VERSION\t1\t2\nCPID\t4242\n")
        self.handshake = []
        while True:
            line = self.line()
            self.handshake.append(line)
            if line == "DONE":
                break
        self.next_id = 1

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("auth socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def mechanisms(self):
        return [l.split("\t")[1] for l in self.handshake if l.startswith("MECH\t")]

    def plain(self, user, password, secured=True, rip="192.0.2.10"):
        rid = str(self.next_id)
        self.next_id += 1
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        fields = ["AUTH", rid, "PLAIN", "service=smtp"] + (["secured"] if secured else []) + [f"rip={rip}", "lip=127.0.0.1", f"resp={resp}"]
        self.sock.sendall(("\t".join(fields) + "\n").encode())
        reply = self.line().split("\t")
        self.assert_id(reply, rid)
        return reply

    def login(self, user, password):
        rid = str(self.next_id)
        self.next_id += 1
        self.sock.sendall(f"AUTH\t{rid}\tLOGIN\tservice=smtp\tsecured\trip=192.0.2.11\n".encode())
        for answer in (user, password):
            reply = self.line().split("\t")
            if reply[0] != "CONT":
                return reply
            self.sock.sendall(f"CONT\t{rid}\t{base64.b64encode(answer.encode()).decode()}\n".encode())
        return self.line().split("\t")

    @staticmethod
    def assert_id(reply, rid):
        assert reply[1] == rid, reply

    def close(self):
        self.sock.close()


class AccountCommands(TempDirTest):
    """The commands against the data folder with no server running."""

    def setUp(self):
        super().setUp()
        self.conf = self.write("pillarbox.conf", base_config(self.path("data")) + FAST_HASH)

    def cli(self, *args, stdin=None):
        return run("-c", self.conf, *args, stdin=stdin)

    def test_user_lifecycle(self):
        r = self.cli("user", "add", "bob@example.com", stdin="pw1\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("pillarbox domain add example.com", r.stderr)
        self.assertEqual(self.cli("domain", "add", "Example.COM").returncode, 0)
        self.assertIn("example.com", self.cli("domain", "list").stdout)
        r = self.cli("user", "add", "Bob@Example.com", "--quota", "2G", stdin="pw1\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.cli("user", "add", "bob@example.com", stdin="pw1\n").returncode, 1)  # exists
        show = self.cli("user", "show", "bob@example.com").stdout
        self.assertIn("password_scheme: ARGON2ID", show)
        self.assertIn("stored_secrets: SCRAM-SHA-256 SCRAM-SHA-1", show)
        self.assertIn(f"quota_bytes: {2 * 1024 ** 3}", show)
        self.assertNotIn("pw1", show)
        self.assertEqual(self.cli("user", "list").stdout.split(), ["bob@example.com"])
        # Passwords come from stdin only: an empty one or none is refused.
        self.assertEqual(self.cli("user", "passwd", "bob@example.com", stdin="").returncode, 1)
        self.assertEqual(self.cli("user", "passwd", "bob@example.com", stdin="\n").returncode, 1)
        self.assertEqual(self.cli("user", "passwd", "bob@example.com", stdin="pw2\n").returncode, 0)
        self.assertEqual(self.cli("user", "set", "bob@example.com", "--disable").returncode, 0)
        self.assertIn("bob@example.com disabled", self.cli("user", "list").stdout)
        r = self.cli("domain", "del", "example.com")
        self.assertEqual(r.returncode, 1)
        self.assertIn("still has 1 account", r.stderr)
        r = self.cli("user", "del", "bob@example.com")
        self.assertEqual(r.returncode, 0)
        self.assertIn("mail stays in", r.stdout)
        self.assertEqual(self.cli("user", "del", "bob@example.com").returncode, 1)
        self.assertEqual(self.cli("domain", "del", "example.com").returncode, 0)
        self.assertEqual(self.cli("user", "show", "nobody@example.com").returncode, 1)
        self.assertEqual(self.cli("user", "add", "not-an-address", stdin="x\n").returncode, 1)
        # Local users of mydestination domains need no domain add.
        self.assertEqual(self.cli("user", "add", "root@localhost", stdin="x\n").returncode, 0)

    def test_aliases_and_import(self):
        self.cli("domain", "add", "example.com")
        self.cli("user", "add", "bob@example.com", stdin="pw\n")
        self.assertEqual(self.cli("alias", "add", "sales@example.com", "bob@example.com", "partner@remote.net").returncode, 0)
        self.assertEqual(self.cli("alias", "add", "@example.com", "bob@example.com").returncode, 0)
        self.assertEqual(self.cli("alias", "add", "sales@elsewhere.net", "bob@example.com").returncode, 1)
        aliases = self.write("aliases", "# /etc/aliases\npostmaster: root\nroot: bob@example.com,\n  admin@remote.net\nlogs: |/usr/bin/logger\n")
        r = self.cli("aliases", "import", aliases)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pipes, files and :include: are not supported", r.stderr)
        self.assertIn("3 alias target(s) imported", r.stdout)
        virtual = self.write("virtual", "info@example.com bob@example.com\nx@notours.org bob@example.com\n")
        r = self.cli("aliases", "import", virtual)
        self.assertIn("x@notours.org: mail for notours.org is not delivered here; skipped", r.stderr)
        listing = self.cli("alias", "list").stdout.splitlines()
        self.assertIn("sales@example.com bob@example.com, partner@remote.net", listing)
        self.assertIn("root bob@example.com, admin@remote.net", listing)
        self.assertIn("@example.com bob@example.com", listing)
        self.assertIn("info@example.com bob@example.com", listing)
        self.assertEqual(self.cli("alias", "del", "sales@example.com", "partner@remote.net").returncode, 0)
        self.assertIn("sales@example.com bob@example.com", self.cli("alias", "list").stdout.splitlines())
        self.assertEqual(self.cli("alias", "del", "sales@example.com").returncode, 0)
        self.assertEqual(self.cli("alias", "del", "sales@example.com").returncode, 1)


class AuthSocket(ServerTest):
    def start_with_socket(self, extra=""):
        self.sock_path = self.path("auth-socket")
        server = self.start(FAST_HASH + f"auth_socket_path = {self.sock_path}\n" + extra)
        server.wait_log(r"auth socket listening on")
        self.conf = self.path("pillarbox.conf")
        return server

    def cli(self, *args, stdin=None):
        return run("-c", self.conf, *args, stdin=stdin)

    def client(self):
        c = DovecotAuthClient(self.sock_path)
        self.addCleanup(c.close)
        return c

    def test_first_admin_is_created_once_and_can_log_in(self):
        server = self.start_with_socket()
        # Standard output isn't a terminal here: the password is in a 0600 file, not the log
        # (test_files_hardening has the terminal case).
        server.wait_log(r"created the first admin account")
        with open(os.path.join(self.path("data"), "first-admin-password")) as f:
            text = f.read()
        address = re.search(r"^address: (\S+)$", text, re.M).group(1)
        password = re.search(r"^password: (\S+)$", text, re.M).group(1)
        self.assertEqual(address, "postmaster@mail.pillarbox.test")
        self.assertNotIn(password, server.log())
        c = self.client()
        self.assertEqual(c.plain(address, password)[0], "OK")
        self.assertIn("admin: yes", self.cli("user", "show", address).stdout)
        server.stop()
        again = self.start_with_socket()
        self.assertNotIn("first admin", again.log())

    def test_logins_follow_cli_changes_while_running(self):
        server = self.start_with_socket("auth_default_domain = example.com\n")
        st = os.stat(self.sock_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(self.cli("domain", "add", "example.com").returncode, 0)
        self.assertEqual(self.cli("user", "add", "bob@example.com", stdin="first pass\n").returncode, 0)
        c = self.client()
        self.assertIn("PLAIN", c.mechanisms())
        self.assertIn("LOGIN", c.mechanisms())
        ok = c.plain("bob@example.com", "first pass")
        self.assertEqual(ok[0], "OK", ok)
        self.assertIn("user=bob@example.com", ok)
        self.assertEqual(c.plain("Bob", "first pass")[0], "OK")  # auth_default_domain, case-insensitive
        self.assertEqual(c.login("bob@example.com", "first pass")[0], "OK")
        bad = c.plain("bob@example.com", "Wr0ngSecret!", rip="203.0.113.9")
        self.assertEqual(bad[0], "FAIL")
        # Cleartext from a non-TLS, non-loopback client is refused before any lookup.
        self.assertEqual(c.plain("bob@example.com", "first pass", secured=False)[0], "FAIL")
        self.assertEqual(self.cli("user", "passwd", "bob@example.com", stdin="second pass\n").returncode, 0)
        self.assertEqual(c.plain("bob@example.com", "first pass", rip="198.51.100.1")[0], "FAIL")
        self.assertEqual(c.plain("bob@example.com", "second pass", rip="198.51.100.2")[0], "OK")
        self.assertEqual(self.cli("user", "set", "bob@example.com", "--disable").returncode, 0)
        self.assertEqual(c.plain("bob@example.com", "second pass", rip="198.51.100.3")[0], "FAIL")
        self.assertEqual(self.cli("user", "del", "bob@example.com").returncode, 0)
        self.assertEqual(c.plain("bob@example.com", "second pass", rip="198.51.100.4")[0], "FAIL")
        log = server.log()
        self.assertNotIn("Wr0ngSecret!", log)
        self.assertNotIn("first pass", log)
        hosts = [m.group("host") for m in FAIL2BAN.finditer(log)]
        self.assertIn("203.0.113.9", hosts, log)
        self.assertIn("sasl_username=bob@example.com", log)

    def test_passwd_file_backend_with_imported_hashes(self):
        # A Dovecot passwd-file with a hash made by doveadm (SHA512-CRYPT of "s3cret").
        fixtures = os.path.join(os.path.dirname(__file__), "..", "unit", "auth", "fixtures", "doveadm_pw.txt")
        hashes = {}
        with open(fixtures, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                scheme, pw, h = line.rstrip("\n").split("\t")
                hashes.setdefault(scheme, (pw, h))
        pw, h = hashes["SHA512-CRYPT"]
        users = self.write("users", f"carol@example.org:{h}::::::\nbroken line without colon\n")
        server = self.start_with_socket(f"auth_backends = builtin passwd-file:{users}\n")
        c = self.client()
        self.assertEqual(c.plain("carol@example.org", pw)[0], "OK")
        self.assertEqual(c.plain("carol@example.org", pw + "x", rip="192.0.2.77")[0], "FAIL")
        # Changing the file takes effect without a restart.
        pw2, h2 = hashes["SSHA512"]
        with open(users, "w") as f:
            f.write(f"carol@example.org:{h2}\n")
        future = time.time() + 5
        os.utime(users, (future, future))
        time.sleep(1.2)  # the backend re-checks the file at most once a second
        self.assertEqual(c.plain("carol@example.org", pw2, rip="192.0.2.78")[0], "OK")
        server.stop()


if __name__ == "__main__":
    unittest.main()
