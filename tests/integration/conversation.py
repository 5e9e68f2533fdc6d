"""Runner for scripted conversations (tests/scripts/smtp/*.txt, tests/scripts/pop3/*.txt) against the
built binary.

Script format, one item per line:
  # comment                 (and blank lines) ignored
  config: NAME = VALUE      extra server configuration (header lines; any position)
  listener: mx|submission|submissions|pop3|pop3s|imap|imaps
                            where the script connects (default mx; submissions and pop3s are
                            implicit TLS)
  account: NAME@example.com a fresh account (password PASSWORD) made for this script before it
                            connects, so scripts sharing a server don't share a mailbox
  deliver: N                N numbered messages sent to that account over SMTP first (see
                            message()); a line of each starts with "." (dot-stuffing)
  C: text                   text sent as is, CRLF appended
  C<raw>: text              text with escapes (\\r \\n \\t \\\\ \\xHH, and {{N*TEXT}} for TEXT repeated N
                            times), no CRLF appended
  S: regex                  the next reply line must match (full-line regex, without CRLF)
  S*: regex                 read a whole reply (up to the final "NNN " line); its last line must match
  S.: regex                 read a POP3 multi-line response (up to the "." line); its first line
                            must match; S+/S- then look at the lines after it (dot-unstuffed)
  S+: regex                 some line of the reply read by the last S*/S: matches
  S-: regex                 no line of the reply read by the last S*/S: matches
  S<eof>:                   the server closes the connection (no more reply lines)
  TLS:                      handshake TLS on the connection now (after a 220 to STARTTLS)
  RECONNECT:                close and open a new connection (the greeting is not read)
  inject: FAULT             in-process only (tests/unit/scripts/runner.cpp: the fakes): what the
                            store or authentication does from now on: commit-tempfail, disk-full,
                            over-quota ACCOUNT, slow-store Nms, hold-commits, release-commits,
                            auth-tempfail, none. Scripts with inject: are skipped here.
  wait: MS                  in-process only: let the loop run MS milliseconds

The same files run in-process against the sessions with a fake store and authentication
(tests/unit/scripts/, the unit tests' [scripts] cases), and here against the built binary.

Every script runs against a server with listeners mx (smtp starttls), submission (starttls,
smtpd_tls_security_level=encrypt, $mua_client_restrictions, $mua_sender_restrictions) and
submissions (implicit TLS, $mua_client_restrictions, $mua_sender_restrictions), as the default
listeners are, on 127.0.0.1; domain example.com; accounts bob@example.com (password
PASSWORD) and alice@example.com (and carol@example.com); alias sales@example.com -> bob, alice;
postmaster (the aliases(5) name of the mydestination domains) -> bob; domain catchall.example
whose catch-all goes to carol. Scripts with the same config lines share one server; each
script runs as a subtest and a mismatch names the script file and line.

MailHost (that server, started from Python) is also the fixture of test_smtp.py and
test_smtp_security.py.

Standalone: python3 conversation.py PATH/TO/pillarbox SCRIPT.txt..."""
import base64
import os
import re
import socket
import ssl
import sys
import tempfile
import shutil

here = os.path.dirname(os.path.abspath(__file__))
if here not in sys.path:
    sys.path.insert(0, here)
import pbtest  # noqa: E402

SCRIPT_DIR = os.path.join(pbtest.ROOT, "tests", "scripts", "smtp")
POP3_SCRIPT_DIR = os.path.join(pbtest.ROOT, "tests", "scripts", "pop3")
IMAP_SCRIPT_DIR = os.path.join(pbtest.ROOT, "tests", "scripts", "imap")
PASSWORD = "script-pass-1"
USERS = ["bob@example.com", "alice@example.com"]
FAST = ("auth_argon2_time_cost = 1\nauth_argon2_memory_cost = 8M\nauth_failure_delay = 10ms\n"
        "auth_penalty_max = 20ms\nsmtpd_error_sleep_time = 0\n")
TIMEOUT = 5


class ScriptError(AssertionError):
    pass


class Step:
    def __init__(self, kind, arg, line):
        self.kind, self.arg, self.line = kind, arg, line


class Script:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        self.config = []
        self.listener = "mx"
        self.account = None
        self.deliver = 0
        self.steps = []
        self.in_process_only = False
        with open(path, encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                line = raw.rstrip("\r\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                m = re.match(r"^(config|listener|account|deliver|inject|wait|C|C<raw>|S|S\*|S\.|S\+|S-|S<eof>|TLS|RECONNECT):(?: (.*))?$", line)
                if not m:
                    raise ScriptError(f"{path}:{n}: cannot parse {line!r}")
                kind, arg = m.group(1), m.group(2) or ""
                if kind == "config":
                    if "=" not in arg:
                        raise ScriptError(f"{path}:{n}: config needs NAME = VALUE")
                    name, value = (x.strip() for x in arg.split("=", 1))
                    self.config.append((name, value))
                elif kind == "account":
                    self.account = arg.strip()
                elif kind == "deliver":
                    self.deliver = int(arg)
                elif kind in ("inject", "wait"):
                    self.in_process_only = True
                elif kind == "listener":
                    if arg not in ("mx", "submission", "submissions", "pop3", "pop3s", "imap", "imaps"):
                        raise ScriptError(f"{path}:{n}: unknown listener {arg!r}")
                    self.listener = arg
                else:
                    if kind.startswith("S") and kind != "S<eof>":
                        try:
                            re.compile(arg)
                        except re.error as e:
                            raise ScriptError(f"{path}:{n}: bad regex {arg!r}: {e}")
                    self.steps.append(Step(kind, arg, n))

    def config_key(self):
        return tuple(sorted(self.config))


def unescape(text):
    """C<raw>: escapes -> bytes."""
    def rep(m):
        return m.group(2) * int(m.group(1))
    text = re.sub(r"\{\{(\d+)\*(.*?)\}\}", rep, text)
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            e = text[i + 1]
            if e in "rnt\\":
                out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[e]
                i += 2
                continue
            if e == "x" and i + 3 < len(text) and re.match(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


class Client:
    """A line-reading SMTP client socket (plain or TLS)."""

    def __init__(self, port, implicit_tls=False, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if implicit_tls:
            self.start_tls()

    def start_tls(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.buf:
            raise ScriptError(f"plaintext bytes after STARTTLS reply, before the handshake: {self.buf!r}")
        self.sock = ctx.wrap_socket(self.sock, server_hostname=pbtest.HOSTNAME)

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        """One reply line without CRLF, or None at EOF."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if self.buf:
                    rest, self.buf = self.buf, b""
                    return rest.decode("utf-8", "replace")
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def multiline(self):
        """A POP3 multi-line response: the status line, then the dot-unstuffed lines before
        the "." line (just the status line when it is -ERR); stops at EOF."""
        first = self.line()
        if first is None:
            return []
        lines = [first]
        if not first.startswith("+OK"):
            return lines
        while True:
            l = self.line()
            if l is None or l == ".":
                return lines
            lines.append(l[1:] if l.startswith(".") else l)

    def reply(self, imap=False):
        """Lines of one (multi-line) reply; stops at EOF. IMAP: up to the first line that is not
        untagged ("* ..."): the tagged end or a continuation."""
        lines = []
        while True:
            l = self.line()
            if l is None:
                return lines
            lines.append(l)
            if not (l.startswith("* ") if imap else re.match(r"^\d{3}-", l)):
                return lines

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def message(account, i):
    """The i-th message deliver: sends (CRLF line ends)."""
    return (f"From: sender@example.net\r\nTo: {account}\r\nSubject: message {i}\r\n"
            f"Message-ID: <m{i}.{account}>\r\n\r\nLine one of message {i}\r\n"
            f".a line starting with a dot\r\n..two dots\r\nlast line of message {i}\r\n").encode()


def prepare(script, host):
    """account: and deliver: of a script, on the running host."""
    if not script.account:
        return
    host.cli("user", "add", script.account, stdin=PASSWORD + "\n")
    import smtplib
    with smtplib.SMTP("127.0.0.1", host.ports["mx"], timeout=TIMEOUT) as s:
        for i in range(1, script.deliver + 1):
            s.sendmail("sender@example.net", [script.account], message(script.account, i))


def run_script(script, ports, host=None):
    """Runs one script; raises ScriptError naming file:line on the first mismatch."""
    if host is not None:
        prepare(script, host)
    transcript = []

    def fail(step, msg):
        tail = "\n".join(transcript[-15:])
        raise ScriptError(f"{script.path}:{step.line}: {msg}\n--- transcript (last lines) ---\n{tail}")

    def connect():
        return Client(ports[script.listener], implicit_tls=script.listener in ("submissions", "pop3s", "imaps"))

    c = connect()
    last = []
    try:
        for step in script.steps:
            try:
                if step.kind == "C":
                    transcript.append(f"C: {step.arg}")
                    c.send(step.arg.encode("utf-8") + b"\r\n")
                elif step.kind == "C<raw>":
                    data = unescape(step.arg)
                    transcript.append(f"C<raw>: {data[:200]!r}{'...' if len(data) > 200 else ''}")
                    c.send(data)
                elif step.kind == "S":
                    l = c.line()
                    transcript.append(f"S: {l}")
                    if l is None:
                        fail(step, f"expected /{step.arg}/, got EOF")
                    last = [l]
                    if not re.fullmatch(step.arg, l):
                        fail(step, f"expected /{step.arg}/, got {l!r}")
                elif step.kind == "S*":
                    lines = c.reply(imap=script.listener.startswith("imap"))
                    transcript += [f"S: {l}" for l in lines]
                    if not lines:
                        fail(step, f"expected a reply ending /{step.arg}/, got EOF")
                    last = lines
                    if not re.fullmatch(step.arg, lines[-1]):
                        fail(step, f"expected a reply ending /{step.arg}/, got {lines!r}")
                elif step.kind == "S.":
                    lines = c.multiline()
                    transcript += [f"S: {l}" for l in lines[:40]]
                    if not lines:
                        fail(step, f"expected a response /{step.arg}/, got EOF")
                    last = lines[1:]
                    if not re.fullmatch(step.arg, lines[0]):
                        fail(step, f"expected /{step.arg}/, got {lines[0]!r}")
                elif step.kind == "S+":
                    if not any(re.fullmatch(step.arg, l) for l in last):
                        fail(step, f"no line of the reply matches /{step.arg}/: {last!r}")
                elif step.kind == "S-":
                    bad = [l for l in last if re.fullmatch(step.arg, l)]
                    if bad:
                        fail(step, f"reply line {bad[0]!r} must not match /{step.arg}/")
                elif step.kind == "S<eof>":
                    l = c.line()
                    if l is not None:
                        transcript.append(f"S: {l}")
                        fail(step, f"expected the connection closed, got {l!r}")
                    transcript.append("S: <EOF>")
                elif step.kind == "TLS":
                    transcript.append("TLS handshake")
                    c.start_tls()
                elif step.kind == "RECONNECT":
                    transcript.append("RECONNECT")
                    c.close()
                    c = connect()
            except (socket.timeout, TimeoutError):
                fail(step, f"timed out after {TIMEOUT}s waiting for the server")
            except (ssl.SSLError, ConnectionError, OSError) as e:
                if isinstance(e, ScriptError):
                    raise
                fail(step, f"{type(e).__name__}: {e}")
    finally:
        c.close()


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class MailHost:
    """A temp data folder with the accounts above (plus carol@example.com, domain catchall.example
    whose catch-all goes to carol) and, after start(), a server with the three listeners. The
    config lines (NAME, VALUE) replace defaults of the same name."""

    DOMAINS = ["example.com", "catchall.example"]
    ALIASES = [("sales@example.com", USERS), ("postmaster", [USERS[0]]), ("@catchall.example", ["carol@example.com"])]

    def __init__(self, config_lines=(), start=True):
        self.dir = tempfile.mkdtemp(prefix="pillarbox-smtp-")
        self.ports = {name: pbtest.free_port() for name in ("mx", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")}
        self.data = os.path.join(self.dir, "data")
        conf = pbtest.base_config(self.data) + FAST
        conf += (f"listen_tmx = smtp starttls 127.0.0.1:{self.ports['mx']}\n"
                 f"listen_tsub = smtp starttls 127.0.0.1:{self.ports['submission']} smtpd_tls_security_level=encrypt "
                 f"smtpd_client_restrictions=$mua_client_restrictions smtpd_sender_restrictions=$mua_sender_restrictions\n"
                 f"listen_tsubs = smtp implicit 127.0.0.1:{self.ports['submissions']} "
                 f"smtpd_client_restrictions=$mua_client_restrictions smtpd_sender_restrictions=$mua_sender_restrictions\n"
                 f"listen_tpop3 = pop3 starttls 127.0.0.1:{self.ports['pop3']}\n"
                 f"listen_tpop3s = pop3 implicit 127.0.0.1:{self.ports['pop3s']}\n"
                 f"listen_timap = imap starttls 127.0.0.1:{self.ports['imap']}\n"
                 f"listen_timaps = imap implicit 127.0.0.1:{self.ports['imaps']}\n")
        overridden = {name for name, _ in config_lines}
        conf = "\n".join(l for l in conf.split("\n") if l.split(" =")[0].strip() not in overridden) + "\n"
        conf += "".join(f"{n} = {v}\n" for n, v in config_lines)
        self.conf = os.path.join(self.dir, "pillarbox.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.server = None
        self.logs = []
        try:
            for d in self.DOMAINS:
                self.cli("domain", "add", d)
            for u in USERS + ["carol@example.com"]:
                self.cli("user", "add", u, stdin=PASSWORD + "\n")
            for src, targets in self.ALIASES:
                self.cli("alias", "add", src, *targets)
            if start:
                self.start()
        except BaseException:
            self.close()
            raise

    def cli(self, *args, stdin=None, check=True):
        r = pbtest.run("-c", self.conf, *args, stdin=stdin)
        if check and r.returncode != 0:
            raise AssertionError(f"pillarbox {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r

    def start(self):
        if self.server:
            self.logs.append(self.server.log())
        self.server = pbtest.Server(["-c", self.conf, "serve"], cwd=self.dir)

    def stop(self):
        return self.server.stop() if self.server else None

    def kill9(self):
        self.server.proc.kill()
        self.server.proc.wait()
        self.server.log_file.close()

    def log(self):
        return "".join(self.logs) + (self.server.log() if self.server else "")

    def maildir(self, account, sub="new"):
        """{file name: bytes} of an account's INBOX new/ (or cur/)."""
        local, domain = account.split("@")
        d = os.path.join(self.data, "mail", domain, local, sub)
        out = {}
        if os.path.isdir(d):
            for n in os.listdir(d):
                if not n.startswith("."):
                    with open(os.path.join(d, n), "rb") as f:
                        out[n] = f.read()
        return out

    def find(self, account, marker):
        """Messages of an account's INBOX (new/ and cur/) holding marker (bytes or str)."""
        if isinstance(marker, str):
            marker = marker.encode()
        return [data for sub in ("new", "cur") for data in self.maildir(account, sub).values() if marker in data]

    def queued(self):
        """[(envelope dict, .eml bytes)] of DATA/queue/messages, in id order."""
        import json
        d = os.path.join(self.data, "queue", "messages")
        out = []
        if os.path.isdir(d):
            for n in sorted(os.listdir(d)):
                if n.endswith(".env"):
                    with open(os.path.join(d, n)) as f:
                        env = json.load(f)
                    try:
                        with open(os.path.join(d, n[:-4] + ".eml"), "rb") as f:
                            eml = f.read()
                    except FileNotFoundError:
                        eml = None
                    out.append((env, eml))
        return out

    def close(self):
        """Stops the server, removes the folder; returns the whole log."""
        if self.server and self.server.proc.poll() is None:
            self.server.stop()
        elif self.server and not self.server.log_file.closed:
            self.server.log_file.close()
        log = self.log()
        if not os.environ.get("PILLARBOX_KEEP_TMP"):
            shutil.rmtree(self.dir, True)
        return log


ScriptServer = MailHost
SANITY = ("BUG: blocking call", "runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")


def load_scripts(paths=None, directory=SCRIPT_DIR):
    if paths is None:
        paths = sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".txt"))
    return [s for s in (Script(p) for p in paths) if not s.in_process_only]


def groups(scripts):
    out = {}
    for s in scripts:
        out.setdefault(s.config_key(), []).append(s)
    return out


def run_scripts(testcase, scripts):
    """One server per distinct config; each script a subtest of testcase."""
    for key, group in groups(scripts).items():
        srv = ScriptServer(list(key))
        try:
            for s in group:
                with testcase.subTest(script=s.name):
                    run_script(s, srv.ports, srv)
        finally:
            log = srv.close()
            for bad in SANITY:
                testcase.assertNotIn(bad, log)


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: conversation.py PATH/TO/pillarbox [SCRIPT.txt...]")
    pbtest.BIN = os.path.abspath(argv[1])
    scripts = load_scripts([os.path.abspath(p) for p in argv[2:]] or None)
    failed = 0
    for key, group in groups(scripts).items():
        srv = ScriptServer(list(key))
        try:
            for s in group:
                try:
                    run_script(s, srv.ports, srv)
                    print(f"ok   {s.name}")
                except ScriptError as e:
                    failed += 1
                    print(f"FAIL {s.name}\n{e}\n")
        finally:
            srv.close()
    print(f"{len(scripts) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
