"""A SCRAM-SHA-256 client (RFC 5802, RFC 7677) for the tests, over a conversation.Client line
socket, for any protocol whose SASL challenges are lines starting with a prefix ("334 " in SMTP,
"+ " in POP3)."""
import base64
import hashlib
import hmac
import os
import socket


def b64(b):
    return base64.b64encode(b).decode()


def login(c, user, password, initial_response=True, prefix="334 "):
    """AUTH SCRAM-SHA-256 on c; returns the server's final reply line, or what went wrong."""
    try:
        return _exchange(c, user, password, initial_response, prefix)
    except (socket.timeout, TimeoutError) as e:
        return f"no reply from the server ({e}) in step {getattr(c, 'scram_step', '?')}"


def _challenge(line, prefix):
    return line is not None and (line.startswith(prefix) or line == prefix.rstrip())


def _exchange(c, user, password, initial_response, prefix):
    nonce = b64(os.urandom(18))
    first_bare = f"n={user},r={nonce}"
    first = "n,," + first_bare
    c.scram_step = "client-first"
    if initial_response:
        c.send(f"AUTH SCRAM-SHA-256 {b64(first.encode())}\r\n".encode())
    else:
        c.send(b"AUTH SCRAM-SHA-256\r\n")
        l = c.line()
        if not _challenge(l, prefix):
            return l
        c.send(b64(first.encode()).encode() + b"\r\n")
    l = c.line()
    if not _challenge(l, prefix):
        return l
    server_first = base64.b64decode(l[len(prefix):]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    if not attrs["r"].startswith(nonce):
        return f"bad server nonce in {server_first}"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    c.scram_step = "client-final"
    c.send(b64(f"{without_proof},p={b64(proof)}".encode()).encode() + b"\r\n")
    l = c.line()
    if _challenge(l, prefix):
        server_final = base64.b64decode(l[len(prefix):]).decode()
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        want = "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest())
        if server_final != want:
            return f"bad server signature {server_final}"
        c.scram_step = "the empty response to the server-final message (v=...)"
        c.send(b"\r\n")
        l = c.line()
    return l
