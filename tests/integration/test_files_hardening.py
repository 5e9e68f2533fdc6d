"""Issue 14, items 4, 8 and 10, against the built binary: the data folder is private (umask 077,
0700 folders, 0600 files) and `pillarbox check [--fix]` finds and repairs looser modes; names the
store refuses are refused by the CLI, and an older database's row with such a name neither makes
folders nor fails temporarily forever; the first admin's password never reaches the log."""
import os
import poplib
import pty
import re
import smtplib
import sqlite3
import ssl
import stat
import subprocess
import time

from pbtest import BIN, ServerTest, base_config, free_port, run

FAST_HASH = "auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nauth_failure_delay = 50ms\nauth_penalty_max = 200ms\n"
PW = "files hardening pw"


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def loose_paths(top):
    """Folders and regular files under top (top included) whose mode gives group/others access."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for p in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
            st = os.lstat(p)
            if (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) and stat.S_IMODE(st.st_mode) & 0o077:
                out.append((p, oct(stat.S_IMODE(st.st_mode))))
    return out


class Umask022:
    """The test process's umask is 022 (as a shell's usually is), so that only the server's own
    umask and modes can make its files private. The umask is process-wide: restored after."""

    def setUp(self):
        super().setUp()
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)


class FileModes(Umask022, ServerTest):
    def setUp(self):
        super().setUp()
        self.ports = {"mx": free_port(), "pop3s": free_port()}
        self.conf = self.write("pillarbox.conf", base_config(self.path("data")) + FAST_HASH +
                               f"listen_mx = smtp none 127.0.0.1:{self.ports['mx']}\n"
                               f"listen_pop3s_t = pop3 implicit 127.0.0.1:{self.ports['pop3s']}\n")
        self.data = self.path("data")

    def cli(self, *args, stdin=None):
        return run("-c", self.conf, *args, stdin=stdin)

    def serve(self):
        from pbtest import Server
        server = Server(["-c", self.conf, "serve"], cwd=self.dir)
        self.addCleanup(self.stop_clean, server)
        return server

    def populate(self):
        """Data made by the CLI and by a running server: account database, a delivered message
        (account folders, index), the generated TLS key, the queue."""
        self.assertEqual(self.cli("domain", "add", "example.com").returncode, 0)
        self.assertEqual(self.cli("user", "add", "bob@example.com", stdin=PW + "\n").returncode, 0)
        server = self.serve()
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=30) as s:
            s.sendmail("someone@ext.example", ["bob@example.com"], "Subject: modes\r\n\r\nhello\r\n")
        return server

    def test_data_folder_database_account_folders_index_and_tls_key_are_private(self):
        server = self.populate()
        # The server holds the account database open: its -wal and -shm exist now.
        expect = {
            self.data: 0o700,
            os.path.join(self.data, "pillarbox.db"): 0o600,
            os.path.join(self.data, "mail"): 0o700,
            os.path.join(self.data, "mail", "example.com"): 0o700,
            os.path.join(self.data, "mail", "example.com", "bob"): 0o700,
            os.path.join(self.data, "mail", "example.com", "bob", "new"): 0o700,
            os.path.join(self.data, "mail", "example.com", "bob", "pillarbox.index"): 0o600,
            os.path.join(self.data, "tls"): 0o700,
        }
        for suffix in ("-wal", "-shm"):
            p = os.path.join(self.data, "pillarbox.db" + suffix)
            if os.path.exists(p):
                expect[p] = 0o600
        keys = [os.path.join(self.data, "tls", f) for f in os.listdir(os.path.join(self.data, "tls")) if f.endswith(".key")]
        self.assertEqual(len(keys), 1)
        expect[keys[0]] = 0o600
        for p, m in expect.items():
            self.assertEqual(oct(mode(p)), oct(m), p)
        self.assertEqual(len(os.listdir(os.path.join(self.data, "mail", "example.com", "bob", "new"))), 1)
        self.assertEqual(loose_paths(self.data), [])
        server.stop()
        self.assertEqual(loose_paths(self.data), [])

    def test_check_reports_looser_modes_and_fix_repairs_them(self):
        server = self.populate()
        server.stop()
        r = self.cli("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        db = os.path.join(self.data, "pillarbox.db")
        bob = os.path.join(self.data, "mail", "example.com", "bob")
        index = os.path.join(bob, "pillarbox.index")
        key = [os.path.join(self.data, "tls", f) for f in os.listdir(os.path.join(self.data, "tls")) if f.endswith(".key")][0]
        message = os.path.join(bob, "new", os.listdir(os.path.join(bob, "new"))[0])
        # What an older version (or a copy made with a 022 umask) leaves behind.
        loosened = {self.data: 0o755, db: 0o644, bob: 0o755, index: 0o644, key: 0o640, message: 0o644}
        for p, m in loosened.items():
            os.chmod(p, m)
        r = self.cli("check")
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"pillarbox: warning: {db}: mode 0644, should be 0600", r.stderr)
        for p, m in loosened.items():
            self.assertIn(f"warning: {p}: mode {m:04o}, should be {m & 0o700:04o}", r.stderr)
        self.assertIn("pillarbox check --fix", r.stderr)
        for p, m in loosened.items():
            self.assertEqual(mode(p), m, "check alone changed a mode")
        r = self.cli("check", "--fix")
        self.assertEqual(r.returncode, 0, r.stderr)
        for p, m in loosened.items():
            self.assertIn(f"pillarbox: {p}: mode {m:04o} changed to {m & 0o700:04o}", r.stderr)
            self.assertEqual(mode(p), m & 0o700, p)
        self.assertEqual(loose_paths(self.data), [])
        r = self.cli("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning: " + self.data, r.stderr)
        # The repaired data still works: bob logs in over POP3S and finds his message.
        self.serve()
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], context=no_verify(), timeout=30)
        p.user("bob@example.com")
        p.pass_(PW)
        self.assertEqual(p.stat()[0], 1)
        p.quit()


class MailboxNames(ServerTest):
    def setUp(self):
        super().setUp()
        self.mx = free_port()
        self.conf = self.write("pillarbox.conf", base_config(self.path("data")) + FAST_HASH +
                               f"listen_mx = smtp none 127.0.0.1:{self.mx}\n")
        self.data = self.path("data")

    def cli(self, *args, stdin=None):
        return run("-c", self.conf, *args, stdin=stdin)

    def test_cli_refuses_names_the_store_refuses(self):
        self.assertEqual(self.cli("domain", "add", "example.com").returncode, 0)
        self.assertEqual(self.cli("user", "add", "bob@example.com", stdin=PW + "\n").returncode, 0)
        for bad in ("..@example.com", ".hidden@example.com", "a..b@example.com", "bob.@example.com",
                    "a/b@example.com", "a\\b@example.com", "a\x01b@example.com", "x" * 65 + "@example.com",
                    "bob@..example.com"):
            r = self.cli("user", "add", bad, stdin=PW + "\n")
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("not a valid address", r.stderr, bad)
        for source, target in ((".hidden@example.com", "bob@example.com"), ("..", "bob@example.com"),
                               ("sales@example.com", "..@example.com"), ("sales@example.com", ".hidden"),
                               ("@..example.com", "bob@example.com")):
            r = self.cli("alias", "add", source, target)
            self.assertNotEqual(r.returncode, 0, (source, target))
        for bad in ("..", ".example.com", "example..com", "exa/mple.com", "x-.example.com", "[192.0.2.1]"):
            r = self.cli("domain", "add", bad)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("not a valid domain name", r.stderr, bad)
        self.assertEqual(self.cli("user", "list").stdout.split(), ["bob@example.com"])
        self.assertEqual(self.cli("alias", "list").stdout.strip(), "")
        self.assertEqual(self.cli("domain", "list").stdout.split()[-1:], ["example.com"])
        self.assertFalse(os.path.exists(os.path.join(self.data, "mail")))

    def test_older_database_rows_with_such_names_create_nothing_and_fail_permanently(self):
        self.assertEqual(self.cli("domain", "add", "example.com").returncode, 0)
        # Rows an older version accepted, put straight into the database.
        db = sqlite3.connect(os.path.join(self.data, "pillarbox.db"))
        with db:
            for addr in ("..@example.com", ".hidden@example.com"):
                db.execute("INSERT INTO accounts(address, domain, created) VALUES (?, 'example.com', 0)", (addr,))
            db.execute("INSERT INTO aliases(source, target) VALUES ('dots@example.com', '..@example.com')")
            db.execute("INSERT INTO aliases(source, target) VALUES ('hid@example.com', '.hidden@example.com')")
        db.close()
        server = self.start(f"listen_mx = smtp none 127.0.0.1:{self.mx}\n")
        for rcpt in ("dots@example.com", "hid@example.com", ".hidden@example.com"):
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=30) as s:
                with self.assertRaises(smtplib.SMTPRecipientsRefused, msg=rcpt) as cm:
                    s.sendmail("someone@ext.example", [rcpt], "Subject: x\r\n\r\nx\r\n")
                code, text = cm.exception.recipients[rcpt]
                self.assertTrue(500 <= code < 600, (rcpt, code, text))
        # Nothing made anywhere: before the fix, DATA/mail/tmp and DATA/mail/example.com/.hidden/tmp.
        self.assertFalse(os.path.exists(os.path.join(self.data, "mail")),
                         [os.path.join(d, x) for d, ds, fs in os.walk(os.path.join(self.data, "mail")) for x in ds + fs])
        # The admin can still remove the old rows.
        self.assertEqual(self.cli("user", "del", "..@example.com").returncode, 0)
        self.assertEqual(self.cli("alias", "del", "hid@example.com").returncode, 0)


class FirstAdminPassword(Umask022, ServerTest):
    def setUp(self):
        super().setUp()
        self.pop3 = free_port()
        self.conf = self.write("pillarbox.conf", base_config(self.path("data")) +
                               f"listen_pop3s_t = pop3 implicit 127.0.0.1:{self.pop3}\n")
        self.file = os.path.join(self.path("data"), "first-admin-password")

    def test_password_goes_to_a_private_file_when_stdout_is_not_a_terminal(self):
        from pbtest import Server
        server = Server(["-c", self.conf, "serve"], cwd=self.dir)  # stdout and stderr: a file
        self.addCleanup(self.stop_clean, server)
        server.wait_log(r"created the first admin account")
        self.assertTrue(os.path.exists(self.file), server.log())
        self.assertEqual(oct(mode(self.file)), oct(0o600))
        text = open(self.file).read()
        address = re.search(r"^address: (\S+)$", text, re.M).group(1)
        password = re.search(r"^password: (\S+)$", text, re.M).group(1)
        self.assertEqual(address, "postmaster@mail.pillarbox.test")
        log = server.log()
        self.assertNotIn(password, log)
        self.assertNotIn("with password", log)
        self.assertIn(f"created the first admin account {address}; its password is in {self.file} (mode 0600)", log)
        p = poplib.POP3_SSL("127.0.0.1", self.pop3, context=no_verify(), timeout=30)
        p.user(address)
        self.assertTrue(p.pass_(password).startswith(b"+OK"))
        p.quit()
        server.stop()
        # Only on the first start.
        again = Server(["-c", self.conf, "serve"], cwd=self.dir)
        self.addCleanup(self.stop_clean, again)
        self.assertNotIn("first admin", again.log())
        self.assertEqual(open(self.file).read(), text)

    def test_password_is_printed_on_a_terminal_and_not_written(self):
        master, slave = pty.openpty()
        log_path = self.path("serve.log")
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen([BIN, "-c", self.conf, "serve"], cwd=self.dir, stdout=slave, stderr=log_file)
        os.close(slave)
        try:
            out = b""
            deadline = time.time() + 30
            while b"Change it with" not in out and time.time() < deadline:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            m = re.search(rb"created the admin account (\S+) with password (\S+)", out)
            self.assertIsNotNone(m, out)
            password = m.group(2).decode()
            deadline = time.time() + 20
            # The account is made once the services are up, which may be after "daemon started".
            while "created the first admin account" not in open(log_path).read() and time.time() < deadline:
                time.sleep(0.05)
            log = open(log_path).read()
            self.assertIn("created the first admin account postmaster@mail.pillarbox.test", log)
            self.assertNotIn(password, log)
            self.assertFalse(os.path.exists(self.file))
        finally:
            proc.terminate()
            proc.wait(20)
            os.close(master)
