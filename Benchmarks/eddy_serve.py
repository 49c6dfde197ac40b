"""Starting a warm `eddy serve` for the benchmark scripts, and its bearer token.

Every request but /health needs `Authorization: Bearer TOKEN`. `start` gives the server a
`--token-file` that does not exist yet (the server creates it, mode 0600, with a fresh token) and
reads it once /health answers; a script that starts the server itself reads the file the server's
log names (`token_file=PATH`, see `token_from_log`)."""
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request


def start(eddy, plugin_dir, data_dir, extra_args=()):
    """`eddy serve` on a free loopback port, its plugin directory `plugin_dir` and data directory
    `data_dir`, once /health answers; returns (process, port), with the bearer token as
    `process.token` (None with --no-token). Its output is discarded."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token_file = os.path.join(tempfile.mkdtemp(prefix="eddy-bench-"), "token")
    auth = [] if "--no-token" in extra_args else ["--token-file", token_file]
    server = subprocess.Popen(
        [eddy, "serve", "--port", str(port), "--plugin-dir", plugin_dir, "--data-dir", data_dir, "--rescan", "60"]
        + auth + list(extra_args),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    server.token = read_token(token_file) if auth else None
    return server, port


def read_token(path):
    """The token in a token file."""
    with open(path) as f:
        return f.read().strip()


def token_from_log(line):
    """The token of a server whose log line names its token file (`token_file=PATH`), else None."""
    m = re.search(r"token_file=(\S+)", line)
    return read_token(m.group(1)) if m else None


def auth_headers(token):
    """`Authorization: Bearer TOKEN` as a headers dict (empty without a token)."""
    return {"Authorization": "Bearer " + token} if token else {}


class SocketClient:
    """A minimal HTTP/1.1 client on one kept-alive socket: writes a request, reads the status line,
    the headers and a Content-Length body. What a lean client costs, next to http.client's parsing
    of the reply's headers (about 0.1 ms per request here): the server's work is the same."""

    def __init__(self, port, timeout=120, token=None):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""

    def post(self, path, payload, content_type="application/json"):
        """(status, body bytes) of a POST."""
        return self.request(
            (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
             % (path.encode(), self.auth, content_type.encode(), len(payload))) + payload)

    def get(self, path):
        """(status, body bytes) of a GET."""
        return self.request(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (path.encode(), self.auth))

    def request(self, request):
        """Sends one whole request and reads its reply. A kept-alive socket the server closed while
        idle is reopened once, but only when no byte of a reply came back (the request is not sent
        twice)."""
        for attempt in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.sock.sendall(request)
                first = self.sock.recv(65536)
            except (ConnectionError, OSError):
                self.close()
                if attempt == 1:
                    raise
                continue
            if not first:
                self.close()
                if attempt == 1:
                    raise ConnectionError("the server closed the connection without a reply")
                continue
            try:
                return self.read_reply(first)
            except Exception:
                self.close()
                raise

    def read_reply(self, data=b""):
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        lengths = [int(l.split(b":", 1)[1]) for l in lines[1:] if l.lower().startswith(b"content-length:")]
        if len(lengths) != 1:
            raise ConnectionError(f"a reply without one Content-Length (this client reads no other): {head[:200]!r}")
        length = lengths[0]
        parts, have = [rest], len(rest)
        while have < length:
            chunk = self.sock.recv(max(65536, length - have))
            if not chunk:
                raise ConnectionError("the server closed the connection mid-reply")
            parts.append(chunk)
            have += len(chunk)
        body = b"".join(parts)
        if len(body) != length:
            raise ConnectionError(f"{len(body) - length} bytes after the reply's Content-Length")
        return status, body

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
