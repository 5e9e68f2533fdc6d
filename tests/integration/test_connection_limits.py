"""Connection exhaustion and TLS close against the built binary (issue 14, items 2 and 11), at
small scale: silent connections that would hold every slot are shed by stress mode, silent TLS
clients by tls_handshake_timeout; the open files limit is raised and the connection limit fits
it; loopback has no exemption from client_connection_limit; and every TLS close sends
close_notify (Python's ssl raises SSLEOFError on a close without it)."""
import resource
import signal
import smtplib
import socket
import ssl
import subprocess
import time

from pbtest import Server, ServerTest, base_config, free_port, recv_line


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)  # a close without close_notify is an error
    return ctx


def silent(port, count):
    """count TCP connections that never say anything (after reading the greeting, if any)."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
    return socks


def closed_within(sock, seconds):
    """True when the server closes sock (EOF or reset) within seconds, whatever it says first."""
    sock.settimeout(seconds)
    deadline = time.time() + seconds
    try:
        while time.time() < deadline:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def read_to_end(tls):
    """Everything the server sends until it closes; raises ssl.SSLEOFError when the close comes
    without close_notify."""
    data = b""
    while True:
        chunk = tls.recv(4096)
        if not chunk:
            return data
        data += chunk


class Base(ServerTest):
    def serve(self, listeners, extra="", preexec=None):
        """listeners: {name: "smtp none"}; returns (server, {name: port})."""
        ports = {name: free_port() for name in listeners}
        conf = ""
        for n, kind in listeners.items():  # "PROTOCOL TLS-MODE [NAME=VALUE...]"
            proto, tls, *overrides = kind.split()
            conf += f"listen_t_{n} = {proto} {tls} 127.0.0.1:{ports[n]} {' '.join(overrides)}\n"
        conf += extra
        if preexec is None:
            return self.start(conf), ports
        path = self.write("pillarbox.conf", base_config(self.path("data")) + conf)
        server = Server(["-c", path, "serve"], cwd=self.dir, preexec=preexec)
        self.addCleanup(self.stop_clean, server)
        return server, ports

    def close_all(self, socks):
        for s in socks:
            s.close()


class StressMode(Base):
    def test_silent_connections_are_shed_so_a_new_client_is_served(self):
        # The attack: fill connection_limit with connections that say nothing. Before stress
        # mode each held its slot for smtpd_timeout (300 s) and every new client got 421.
        server, ports = self.serve({"mx": "smtp none"},
                                   "connection_limit = 20\nclient_connection_limit = 0\n"
                                   "connection_stress_idle_timeout = 1s\n")
        hold = silent(ports["mx"], 20)
        self.addCleanup(self.close_all, hold)
        server.wait_log(r"master\[\d+\]: warning: server is under stress: 16 connections")
        served = None
        deadline = time.time() + 30
        while time.time() < deadline and served is None:
            try:
                with smtplib.SMTP("127.0.0.1", ports["mx"], timeout=10) as c:
                    self.assertEqual(c.noop()[0], 250)
                    served = True
            except smtplib.SMTPConnectError as e:
                self.assertEqual(e.smtp_code, 421)  # still full: clients retry
                time.sleep(0.2)
        self.assertTrue(served, "a legitimate client was refused while silent connections held every slot")
        self.assertRegex(server.log(), r"timeout after 1s from unknown\[127\.0\.0\.1\] \(server under stress\)")
        # The silent ones were told and closed.
        for s in hold:
            self.assertTrue(closed_within(s, 10))
        server.wait_log(r"master\[\d+\]: server is no longer under stress: \d+ connections")

    def test_error_limit_is_one_under_stress(self):
        server, ports = self.serve({"mx": "smtp none", "pop": "pop3 none"},
                                   "connection_limit = 20\nclient_connection_limit = 0\n"
                                   "connection_stress_threshold = 50\nconnection_stress_idle_timeout = 60s\n")
        hold = silent(ports["mx"], 10)
        self.addCleanup(self.close_all, hold)
        server.wait_log(r"server is under stress: 10 connections \(connection_stress_threshold 10 of 20\)")
        with socket.create_connection(("127.0.0.1", ports["mx"]), timeout=10) as s:
            self.assertTrue(recv_line(s).startswith("220 "))
            s.sendall(b"BOGUS\r\n")
            self.assertRegex(recv_line(s), r"^5\d\d ")
            self.assertRegex(recv_line(s), r"^421 4\.7\.0 .*too many errors")
            self.assertTrue(closed_within(s, 10))
        with socket.create_connection(("127.0.0.1", ports["pop"]), timeout=10) as s:
            self.assertTrue(recv_line(s).startswith("+OK"))
            s.sendall(b"BOGUS\r\n")
            self.assertTrue(recv_line(s).startswith("-ERR"))
            self.assertRegex(recv_line(s), r"^-ERR Too many bad commands")
            self.assertTrue(closed_within(s, 10))


class HandshakeTimeout(Base):
    def test_silent_tls_clients_are_dropped_after_tls_handshake_timeout(self):
        server, ports = self.serve({"smtps": "smtp implicit", "pop3s": "pop3 implicit", "mx": "smtp starttls"},
                                   "tls_handshake_timeout = 1s\n")
        for name in ("smtps", "pop3s"):
            with self.subTest(listener=name), socket.create_connection(("127.0.0.1", ports[name]), timeout=10) as s:
                started = time.time()
                self.assertTrue(closed_within(s, 15), "a client that never starts the handshake holds its connection")
                self.assertLess(time.time() - started, 15)
        # STARTTLS, then silence.
        with socket.create_connection(("127.0.0.1", ports["mx"]), timeout=10) as s:
            self.assertTrue(recv_line(s).startswith("220 "))
            s.sendall(b"EHLO client.test\r\n")
            while not recv_line(s).startswith("250 "):
                pass
            s.sendall(b"STARTTLS\r\n")
            self.assertTrue(recv_line(s).startswith("220 "))
            self.assertTrue(closed_within(s, 15), "a client that stops after STARTTLS holds its connection")
        server.wait_log(r"TLS handshake failed from unknown\[127\.0\.0\.1\]: timed out after 1s \(tls_handshake_timeout\)",
                        count=3)


class OpenFiles(Base):
    def test_soft_open_files_limit_is_raised_to_the_hard_limit(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard < 600:
            self.skipTest(f"hard open files limit {hard}")
        server, ports = self.serve({"mx": "smtp none"},
                                   preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard)))
        with open(f"/proc/{server.proc.pid}/limits") as f:
            line = next(l for l in f if l.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], [str(hard), str(hard)], line)
        # 64 + 16 per worker thread, and 3 per open account (256) and idle index read connection
        # (64), at most a quarter of the limit
        expect = min(1000, (hard - 64 - 16 * 4 - min(3 * (256 + 64), hard // 4)) // 2)
        self.assertRegex(server.log(), rf"master\[\d+\]: connection limit {expect} \(open files limit {hard}\)")

    def test_connection_limit_is_lowered_to_what_the_hard_limit_holds(self):
        # Before: 1000 silent connections against a soft limit of 1024 made accept() fail with
        # EMFILE and every client time out; now the server refuses past what its files allow.
        server, ports = self.serve({"mx": "smtp none"}, "client_connection_limit = 0\n",
                                   preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
        server.wait_log(r"connection limit lowered from 1000 to 32: the open files limit is 256")
        hold = silent(ports["mx"], 32)
        self.addCleanup(self.close_all, hold)
        for s in hold:
            self.assertTrue(recv_line(s).startswith("220 "))
        with socket.create_connection(("127.0.0.1", ports["mx"]), timeout=10) as s:
            self.assertRegex(recv_line(s), r"^421 4\.7\.0 .*too many connections")
        self.assertNotIn("accept:", server.log())


class ClientLimit(Base):
    def test_loopback_is_not_exempt_from_client_connection_limit_by_default(self):
        server, ports = self.serve({"mx": "smtp none"}, "client_connection_limit = 3\n")
        hold = silent(ports["mx"], 3)
        self.addCleanup(self.close_all, hold)
        for s in hold:
            self.assertTrue(recv_line(s).startswith("220 "))
        with socket.create_connection(("127.0.0.1", ports["mx"]), timeout=10) as s:
            self.assertRegex(recv_line(s), r"^421 4\.7\.0 ")
        server.wait_log(r"too many connections from 127\.0\.0\.1 \(client_connection_limit 3\)")

    def test_ipv6_client_is_counted_by_its_64(self):
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
                port = probe.getsockname()[1]
        except OSError:
            self.skipTest("no ::1 here")
        server = self.start(f"listen_t = smtp none [::1]:{port}\nclient_connection_limit = 2\n")
        hold = [socket.create_connection(("::1", port), timeout=10) for _ in range(2)]
        self.addCleanup(self.close_all, hold)
        for s in hold:
            self.assertTrue(recv_line(s).startswith("220 "))
        with socket.create_connection(("::1", port), timeout=10) as s:
            self.assertRegex(recv_line(s), r"^421 ")
        server.wait_log(r"too many connections from ::/64 \(client_connection_limit 2\)")


class CloseNotify(Base):
    """Each way a TLS connection ends sends close_notify before the TCP close."""

    def connect(self, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        tls = tls_context().wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        self.addCleanup(tls.close)
        return tls

    def line(self, tls):
        data = b""
        while not data.endswith(b"\n"):
            chunk = tls.recv(1)
            if not chunk:
                break
            data += chunk
        return data.decode()

    def test_close_notify_on_quit_timeout_error_and_shutdown(self):
        server, ports = self.serve({"smtps": "smtp implicit", "pop3s": "pop3 implicit",
                                    "slow": "smtp implicit smtpd_timeout=1s", "strict": "smtp implicit smtpd_hard_error_limit=1"})
        cases = {
            "SMTP QUIT": (ports["smtps"], b"QUIT\r\n", r"^221 "),
            "POP3 QUIT": (ports["pop3s"], b"QUIT\r\n", r"^\+OK"),
            "idle timeout": (ports["slow"], b"", r"^421 4\.4\.2 "),
            "error limit": (ports["strict"], b"BOGUS\r\n", r"^5\d\d "),
        }
        for name, (port, send, reply) in cases.items():
            with self.subTest(name):
                tls = self.connect(port)
                self.line(tls)  # greeting
                if send:
                    tls.sendall(send)
                self.assertRegex(self.line(tls), reply)
                try:
                    read_to_end(tls)
                except ssl.SSLEOFError as e:
                    self.fail(f"{name}: the server closed without close_notify ({e})")
        # Server shutdown: the goodbye, then close_notify.
        tls = self.connect(ports["smtps"])
        self.line(tls)
        server.signal(signal.SIGTERM)
        self.assertRegex(self.line(tls), r"^421 ")
        try:
            read_to_end(tls)
        except ssl.SSLEOFError as e:
            self.fail(f"shutdown: the server closed without close_notify ({e})")

    def test_openssl_s_client_sees_no_unexpected_eof(self):
        server, ports = self.serve({"smtps": "smtp implicit"})
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{ports['smtps']}", "-ign_eof", "-nocommands",
                              "-quiet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertRegex(p.stdout.readline(), r"^220 ")  # QUIT before the greeting would be pipelining
        out, err = p.communicate("QUIT\r\n", timeout=20)
        self.assertRegex(out, r"221 ")
        self.assertNotRegex(err, r"unexpected eof")
