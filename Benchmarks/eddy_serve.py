"""Starting a warm `eddy serve` for the benchmark scripts (race.py's native lane, serve_latency.py)."""
import socket
import subprocess
import time
import urllib.request


def start(eddy, plugin_dir, data_dir, extra_args=()):
    """`eddy serve` on a free loopback port, its plugin directory `plugin_dir` and data directory
    `data_dir`, once /health answers; returns (process, port). Its output is discarded."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [eddy, "serve", "--port", str(port), "--plugin-dir", plugin_dir, "--data-dir", data_dir, "--rescan", "60"]
        + list(extra_args),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    return server, port


class SocketClient:
    """A minimal HTTP/1.1 client on one kept-alive socket: writes a request, reads the status line,
    the headers and a Content-Length body. What a lean client costs, next to http.client's parsing
    of the reply's headers (about 0.1 ms per request here): the server's work is the same."""

    def __init__(self, port):
        self.port = port
        self.sock = None

    def post(self, path, payload, content_type="application/json"):
        """(status, body bytes) of a POST."""
        return self.request(
            (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
             % (path.encode(), content_type.encode(), len(payload))) + payload)

    def get(self, path):
        """(status, body bytes) of a GET."""
        return self.request(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())

    def request(self, request):
        """Sends one whole request; one reconnect if the kept-alive socket was closed."""
        for attempt in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.sock.sendall(request)
                return self.read_reply()
            except (ConnectionError, OSError):
                self.close()
                if attempt == 1:
                    raise

    def read_reply(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(int(l.split(b":", 1)[1]) for l in lines[1:] if l.lower().startswith(b"content-length:"))
        parts, have = [rest], len(rest)
        while have < length:
            chunk = self.sock.recv(max(65536, length - have))
            if not chunk:
                raise ConnectionError("the server closed the connection mid-reply")
            parts.append(chunk)
            have += len(chunk)
        return status, b"".join(parts)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
