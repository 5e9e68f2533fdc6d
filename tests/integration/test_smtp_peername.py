"""The SMTP client name (Postfix's smtpd_peername_lookup) from a client that is not on loopback:
the test makes its own network namespace joined to ours by a veth pair (10.231.X.0/30), runs the
client inside it, and answers the server's PTR and A queries from a DNS server of its own on
127.0.0.1. A forward-confirmed name shows in the log and the Received: header; a PTR whose name
does not lead back to the address gives "unknown", and reject_unknown_client_hostname refuses
it. Root only (creating namespaces and links); skipped elsewhere."""
import os
import random
import re
import shutil
import subprocess
import unittest

from fakedns import FakeDns
from pbtest import ServerTest, free_port, run

IP = shutil.which("ip")
FAST = "auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nsmtpd_error_sleep_time = 0\n"

CLIENT = r"""
import smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
with smtplib.SMTP(host, port, timeout=30) as s:
    s.ehlo("helo.client.test")
    code, text = s.mail("someone@ext.example")
    if code != 250:
        print(code, text.decode()); sys.exit(0)
    code, text = s.rcpt("bob@example.com")
    print(code, text.decode())
    if code == 250:
        s.data(b"Subject: peername\r\n\r\nhello\r\n")
"""


def netns_available():
    if os.geteuid() != 0 or not IP:
        return False
    name = f"pbprobe{os.getpid()}"
    ok = subprocess.run([IP, "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run([IP, "netns", "del", name], capture_output=True)
    return ok


@unittest.skipUnless(netns_available(), "needs root and ip netns (a network namespace of the test's own)")
class PeerName(ServerTest):
    def setUp(self):
        super().setUp()
        n = random.randint(1, 250)
        self.ns = f"pbns{os.getpid()}"
        self.host_if, self.ns_if = f"pbh{os.getpid()}"[:15], f"pbc{os.getpid()}"[:15]
        self.server_ip, self.client_ip = f"10.231.{n}.1", f"10.231.{n}.2"
        self.rev = f"2.{n}.231.10.in-addr.arpa"

        def ip(*args, ns=False):
            cmd = [IP, "netns", "exec", self.ns, IP, *args] if ns else [IP, *args]
            subprocess.run(cmd, check=True, capture_output=True)

        ip("netns", "add", self.ns)
        self.addCleanup(subprocess.run, [IP, "netns", "del", self.ns], capture_output=True)
        try:
            ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        except subprocess.CalledProcessError as e:
            self.skipTest(f"this machine cannot make a veth pair: {e.stderr.decode(errors='replace').strip()}")
        self.addCleanup(subprocess.run, [IP, "link", "del", self.host_if], capture_output=True)
        ip("link", "set", self.ns_if, "netns", self.ns)
        ip("addr", "add", f"{self.server_ip}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("addr", "add", f"{self.client_ip}/30", "dev", self.ns_if, ns=True)
        ip("link", "set", self.ns_if, "up", ns=True)
        ip("link", "set", "lo", "up", ns=True)
        self.port = free_port()

    def serve(self, records, restrictions=""):
        self.dns = FakeDns(records)
        self.addCleanup(self.dns.close)
        server = self.start(FAST + f"listen_t = smtp none {self.server_ip}:{self.port}\n"
                            f"dns_servers = 127.0.0.1:{self.dns.port}\n"
                            "mynetworks = 192.0.2.0/24\n" + restrictions)
        conf = self.path("pillarbox.conf")
        self.assertEqual(run("-c", conf, "domain", "add", "example.com").returncode, 0)
        self.assertEqual(run("-c", conf, "user", "add", "bob@example.com", stdin="pw\n").returncode, 0)
        return server

    def client(self):
        r = subprocess.run([IP, "netns", "exec", self.ns, "python3", "-c", CLIENT, self.server_ip, str(self.port)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def delivered(self):
        new = os.path.join(self.path("data"), "mail", "example.com", "bob", "new")
        out = []
        for n in sorted(os.listdir(new)) if os.path.isdir(new) else []:
            with open(os.path.join(new, n), "rb") as f:
                out.append(f.read())
        return out

    def test_forward_confirmed_name_in_log_and_received(self):
        server = self.serve({(self.rev, "PTR"): ["Client.Test"], ("client.test", "A"): [self.client_ip]})
        self.assertTrue(self.client().startswith("250"))
        server.wait_log(rf"disconnect from client\.test\[{re.escape(self.client_ip)}\]")
        server.wait_log(rf"client=client\.test\[{re.escape(self.client_ip)}\]")
        self.assertIn((self.rev, "PTR"), self.dns.queries)
        self.assertIn(("client.test", "A"), self.dns.queries)
        msgs = self.delivered()
        self.assertEqual(len(msgs), 1)
        self.assertRegex(msgs[0], rb"Received: from helo\.client\.test \(client\.test \[" +
                         re.escape(self.client_ip).encode() + rb"\]\)")

    def test_ptr_not_confirmed_is_unknown_and_can_be_refused(self):
        records = {(self.rev, "PTR"): ["forged.test"], ("forged.test", "A"): ["192.0.2.99"]}
        server = self.serve(records, "smtpd_client_restrictions = reject_unknown_client_hostname\n")
        out = self.client()
        self.assertRegex(out, r"^(450|550) ")  # Postfix's unknown_client_reject_code
        server.wait_log(rf"reject: RCPT from unknown\[{re.escape(self.client_ip)}\]")
        self.assertEqual(self.delivered(), [])


if __name__ == "__main__":
    unittest.main()
