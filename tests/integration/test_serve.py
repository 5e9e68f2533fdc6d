"""pillarbox serve driven by real clients: openssl s_client for TLS, plain sockets for the
greetings, signals for reload and shutdown, and the embedded defaults as an ordinary user."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from pbtest import HOSTNAME, Server, ServerTest, base_config, free_port, recv_line


def s_client(port, *extra, servername=None, command="QUIT\r\n"):
    # -ign_eof: read until the server closes. Placeholder sessions say their line and close; an
    # SMTP session closes after QUIT, an IMAP one after LOGOUT (-nocommands: "Q" is not
    # s_client's quit command).
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts", "-ign_eof", "-nocommands", *extra]
    if servername:
        args += ["-servername", servername]
    return subprocess.run(args, input=command, capture_output=True, text=True, timeout=20)


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return recv_line(s)


class Listeners(ServerTest):
    def test_each_protocol_answers_in_its_own_words(self):
        ports = {p: free_port() for p in ("smtp", "pop3", "imap", "http")}
        self.start("".join(f"listen_t{p} = {p} none 127.0.0.1:{port}\n" for p, port in ports.items()))
        self.assertRegex(greeting(ports["smtp"]), rf"^220 {HOSTNAME} ESMTP Pillarbox\r\n$")
        self.assertRegex(greeting(ports["pop3"]), r"^\+OK Pillarbox ready\.\r\n$")
        self.assertRegex(greeting(ports["imap"]), r"^\* OK \[CAPABILITY IMAP4rev1 IMAP4rev2 .*\] Pillarbox ready\.\r\n$")
        self.assertRegex(greeting(ports["http"]), r"^HTTP/1\.1 503 ")

    def test_client_connection_rate_limit(self):
        port = free_port()
        server = self.start(f"listen_t = smtp none 127.0.0.1:{port}\nclient_connection_rate_limit = 2\n"
                            "client_connection_limit_exceptions =\n")
        self.assertTrue(greeting(port).startswith("220 "))
        self.assertTrue(greeting(port).startswith("220 "))
        self.assertRegex(greeting(port), r"^421 4\.7\.0 ")
        server.wait_log(r"connection rate limit exceeded by 127\.0\.0\.1 \(client_connection_rate_limit 2 per 60s\)")

    def test_ipv6_loopback_listener(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
                port = probe.getsockname()[1]
        except OSError:
            self.skipTest("no ::1 here")
        self.start(f"listen_t = smtp none [::1]:{port}\n")
        with socket.create_connection(("::1", port), timeout=10) as s:
            self.assertTrue(recv_line(s).startswith("220 "))

    def test_implicit_tls_handshake_shows_the_generated_certificate(self):
        port = free_port()
        server = self.start(f"listen_t = imap implicit 127.0.0.1:{port}\n")
        r = s_client(port, command="a1 LOGOUT\r\n")
        self.assertIn("BEGIN CERTIFICATE", r.stdout, r.stdout + r.stderr)
        self.assertRegex(r.stdout, rf"subject=.*CN ?= ?{HOSTNAME}")
        self.assertIn("* BYE", r.stdout)  # the session's reply came through TLS
        cert = os.path.join(self.dir, "data", "tls", f"{HOSTNAME}.crt")
        text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-text"], capture_output=True, text=True).stdout
        self.assertIn(f"DNS:{HOSTNAME}", text)
        self.assertIn("prime256v1", text.replace("NIST CURVE: P-256", "prime256v1"))
        key = os.path.join(self.dir, "data", "tls", f"{HOSTNAME}.key")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        self.assertIn("TLS connection established", server.log())

    def test_tls_versions(self):
        port = free_port()
        self.start(f"listen_t = smtp implicit 127.0.0.1:{port}\n")
        self.assertIn("Protocol  : TLSv1.2", s_client(port, "-tls1_2").stdout)
        self.assertRegex(s_client(port, "-tls1_3").stdout, r"TLSv1\.3")
        old = s_client(port, "-tls1_1")
        self.assertNotIn("BEGIN CERTIFICATE", old.stdout)

    def test_bad_config_at_start_exits_non_zero_with_file_and_line(self):
        conf = self.write("pillarbox.conf", base_config(self.path("data")) + "smtpd_timeout = soon\n")
        server = Server(["-c", conf, "serve"], cwd=self.dir, wait_started=False)
        self.assertEqual(server.proc.wait(20), 1)
        server.stop()
        n = len(base_config("x").splitlines()) + 1
        self.assertIn(f"error: {conf}:{n}: smtpd_timeout: bad time", server.log())

    def test_log_file_gets_the_same_lines(self):
        port = free_port()
        server = self.start(f"log_file = {self.path('mail.log')}\nlisten_t = smtp none 127.0.0.1:{port}\n")
        greeting(port)
        server.wait_log(r"disconnect from unknown\[127\.0\.0\.1\]")
        with open(self.path("mail.log")) as f:
            logged = f.read()
        self.assertRegex(logged, r"pillarbox/smtpd\[\d+\]: [0-9A-F]{8}: connect from unknown\[127\.0\.0\.1\]:\d+ to t")


class Signals(ServerTest):
    def test_sighup_adds_listener_and_reloads_certificate(self):
        p1, p2 = free_port(), free_port()
        server = self.start(f"listen_a = imap implicit 127.0.0.1:{p1}\n")
        self.assertRegex(s_client(p1, command="a1 LOGOUT\r\n").stdout, rf"CN ?= ?{HOSTNAME}")
        # a certificate of our own, made with the openssl tool
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.path("own.key"), "-out", self.path("own.crt"), "-days", "2",
                        "-subj", "/CN=own.example"], check=True, capture_output=True)
        self.write("pillarbox.conf", base_config(self.path("data")) +
                   f"tls_cert_file = {self.path('own.crt')}\ntls_key_file = {self.path('own.key')}\n"
                   f"listen_a = imap implicit 127.0.0.1:{p1}\nlisten_b = pop3 none 127.0.0.1:{p2}\n")
        server.signal(signal.SIGHUP)
        server.wait_log(r"reload -- configuration .* in force")
        self.assertRegex(s_client(p1, command="a1 LOGOUT\r\n").stdout, r"CN ?= ?own\.example")
        self.assertTrue(greeting(p2).startswith("+OK "))

    def test_sighup_with_bad_config_keeps_the_old_one(self):
        port = free_port()
        server = self.start(f"listen_a = smtp none 127.0.0.1:{port}\n")
        conf = self.write("pillarbox.conf", base_config(self.path("data")) + "listen_a = smtp none 127.0.0.1:0\n")
        server.signal(signal.SIGHUP)
        server.wait_log(r"keeping the running configuration")
        self.assertIn(f"{conf}:", server.log())
        self.assertTrue(greeting(port).startswith("220 "))
        self.assertIsNone(server.proc.poll())

    def test_sigterm_exits_zero(self):
        port = free_port()
        server = self.start(f"listen_a = smtp none 127.0.0.1:{port}\n")
        greeting(port)
        self.assertEqual(server.stop(), 0)
        self.assertIn("daemon stopped", server.log())
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


class EmbeddedDefaults(unittest.TestCase):
    """No config file, run as an ordinary user: unprivileged ports, ./data, a generated
    certificate -- what README's ./scripts/run gives a newcomer."""

    def test_serve_without_config(self):
        ports = [2525, 2587, 2465, 1110, 1995, 1143, 1993, 8080]
        for p in ports:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", p)) == 0:
                    self.skipTest(f"port {p} is in use on this machine")
        work = tempfile.mkdtemp(prefix="pillarbox-it-")
        self.addCleanup(shutil.rmtree, work, True)
        preexec = None
        binary = os.path.join(work, "pillarbox")  # reachable for nobody wherever the checkout is
        shutil.copy(os.environ["PILLARBOX_BIN"], binary)
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(work, nobody.pw_uid, nobody.pw_gid)

            def preexec():
                os.setgid(nobody.pw_gid)
                os.setgroups([])
                os.setuid(nobody.pw_uid)
        server = Server(["serve"], cwd=work, preexec=preexec, binary=binary)
        try:
            self.assertIn("embedded defaults", server.log())
            r = s_client(1993, command="a1 LOGOUT\r\n")
            self.assertIn("BEGIN CERTIFICATE", r.stdout)
            self.assertTrue(os.path.exists(os.path.join(work, "data", "tls")))
            self.assertTrue(greeting(2525).startswith("220 "))
            for p in ports:
                socket.create_connection(("127.0.0.1", p), timeout=5).close()
        finally:
            self.assertEqual(server.stop(), 0)
