"""A tiny authoritative DNS server on 127.0.0.1 for tests (UDP): answers A, AAAA, MX and TXT
from a table, NXDOMAIN for names it doesn't know, NODATA for known names without that type."""
import socket
import struct
import threading

TYPES = {"A": 1, "MX": 15, "TXT": 16, "AAAA": 28, "PTR": 12}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


class FakeDns:
    def __init__(self, records):
        """records: {("name", "A"): ["127.0.0.2"], ("example.net", "MX"): [(10, "mx.example.net")], ...}"""
        self.records = {(n.lower().rstrip("."), t): v for (n, t), v in records.items()}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def close(self):
        self.sock.close()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self.answer(data)
            except Exception:  # a malformed query: no answer
                continue
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                return

    def answer(self, q):
        qid, flags, qd = struct.unpack(">HHH", q[:6])
        pos, labels = 12, []
        while q[pos]:
            n = q[pos]
            labels.append(q[pos + 1:pos + 1 + n].decode())
            pos += 1 + n
        qtype, qclass = struct.unpack(">HH", q[pos + 1:pos + 5])
        question = q[12:pos + 5]
        name = ".".join(labels).lower()
        tname = next((k for k, v in TYPES.items() if v == qtype), str(qtype))
        self.queries.append((name, tname))
        known = any(n == name for n, _ in self.records)
        values = self.records.get((name, tname), [])
        rcode = 0 if known else 3
        answers = b""
        for v in values:
            if tname == "A":
                rdata = socket.inet_pton(socket.AF_INET, v)
            elif tname == "AAAA":
                rdata = socket.inet_pton(socket.AF_INET6, v)
            elif tname == "MX":
                rdata = struct.pack(">H", v[0]) + encode_name(v[1])
            elif tname == "TXT":
                rdata = bytes([len(v)]) + v.encode()
            else:
                rdata = encode_name(v)
            answers += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
        header = struct.pack(">HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1, len(values), 0, 0)
        return header + question + answers
