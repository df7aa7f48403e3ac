"""End-to-end harness: the real houston binary on free loopback ports, driven by
clients no one here wrote (HTTPie, Python websockets) and raw sockets."""
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import websockets

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("HOUSTON_BIN", str(ROOT / "build" / "houston"))


# `make tsan` (HOUSTON_TSAN=1) runs houston under ThreadSanitizer, 5-15x
# slower. A test whose outcome depends on how fast the server is - a
# deadline in the server racing the test's own pace - is marked
# @pytest.mark.timing_bound("why") and skipped there, and only there.
def pytest_configure(config):
    config.addinivalue_line("markers", "timing_bound(reason): skipped under make tsan (HOUSTON_TSAN=1)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("HOUSTON_TSAN") != "1":
        return
    for item in items:
        marker = item.get_closest_marker("timing_bound")
        if marker:
            item.add_marker(pytest.mark.skip(reason=f"timing-bound under ThreadSanitizer: {marker.args[0]}"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"houston exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"houston did not listen on {port}:\n{log.read_text()}")


class Server:
    """One running houston serve, its stderr kept in a file."""

    def __init__(self, tmp: Path, *extra, db=None):
        self.tmp = tmp
        self.db = db or tmp / "houston.db"
        self.extra = list(extra)
        self.proc = None
        self.stderr = None

    def start(self):
        self.ws_port, self.api_port = free_port(), free_port()
        self.log = self.tmp / f"houston-{self.api_port}.log"
        # HOUSTON_TEST_DB_URL runs the suite on another store (e.g. MariaDB).
        db_url = os.environ.get("HOUSTON_TEST_DB_URL") or f"sqlite:{self.db}"
        args = [BIN, "serve", "--ws-addr", f"127.0.0.1:{self.ws_port}",
                "--api-addr", f"127.0.0.1:{self.api_port}", "--db", db_url, *self.extra]
        self.stderr = open(self.log, "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
        try:
            wait_port(self.ws_port, self.proc, self.log)
            wait_port(self.api_port, self.proc, self.log)
        except BaseException:
            self.kill()
            raise
        return self

    @property
    def api(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.ws_port}/api/v1/ws"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals the server and returns its exit code (or the code it
        already exited with)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"houston did not stop within {timeout} s:\n{self.logs()}")
        self.stderr.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stderr.close()

    def logs(self):
        return self.log.read_text(errors="replace")


def stop_cleanly(srv):
    """SIGTERM; the server must exit 0."""
    code = srv.stop()
    assert code == 0, f"houston exited with {code}:\n{srv.logs()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The shared server of a test module; tests keep apart by topic."""
    srv = Server(tmp_path_factory.mktemp("houston"), "--ping-interval", "30s").start()
    yield srv
    stop_cleanly(srv)


@pytest.fixture
def fresh_server(tmp_path):
    """Starts servers of the test's own (restart, shutdown, options). Those
    the test left running are stopped with SIGTERM and must exit 0."""
    servers = []

    def make(*extra, db=None):
        srv = Server(tmp_path, *extra, db=db).start()
        servers.append(srv)
        return srv

    make.servers = servers
    yield make
    failures = []
    for srv in servers:
        if srv.running():
            code = srv.stop()
            if code != 0:
                failures.append(f"houston exited with {code}:\n{srv.logs()}")
        else:
            srv.stderr.close()
    assert not failures, "\n".join(failures)


def servers_of(item):
    """The servers a test used, to show their logs when it fails."""
    found = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Server):
            found.append(value)
        found.extend(getattr(value, "servers", []))
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in servers_of(item):
            try:
                text = srv.logs()
            except OSError:
                continue
            report.sections.append((f"houston stderr (API port {srv.api_port})",
                                    text[-6000:]))


@pytest.fixture
def topic():
    """A topic no other test uses."""
    return "t-" + uuid.uuid4().hex[:12]


# ---- HTTPie -----------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.text = body
        try:
            self.json = json.loads(body) if body.strip() else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.text[:200]!r}>"


def http(*args):
    """Runs HTTPie and returns status, headers and body."""
    out = subprocess.run(["http", "--ignore-stdin", "--pretty=none", "--print=hb",
                          "--timeout=10", *args], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=20)
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    if not lines or not lines[0].startswith("HTTP/"):
        raise AssertionError(f"HTTPie failed: {out.stderr}")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(status, headers, body)


def call(srv, method, path, body=None):
    """One request with http.client, for set-up and checks in bulk (HTTPie
    costs a process each). srv is a Server or an API port. Returns (status,
    decoded JSON or None)."""
    import http.client as httplib
    port = srv if isinstance(srv, int) else srv.api_port
    conn = httplib.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"} if body is not None else {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.strip() else None)
    finally:
        conn.close()


# ---- WebSocket helpers ------------------------------------------------------

def run(coro, timeout=25):
    """Runs a test's coroutine; timeout is its budget, counted from the work
    it does (an HTTPie call takes ~1 s on a busy machine)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def connect(srv, path="/api/v1/ws"):
    ws = await websockets.connect(f"ws://127.0.0.1:{srv.ws_port}{path}")
    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert hello["type"] == "connected"
    return ws, hello["connectionID"]


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def expect_silence(ws, timeout=0.3):
    try:
        frame = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame {frame}")


async def ahttp(*args):
    return await asyncio.to_thread(http, *args)


# ---- raw sockets --------------------------------------------------------------

def publish_requests(messages):
    """The bytes of one POST /api/v1/messages per {"topic", "content"} dict,
    to be written at once on one connection (pipelined)."""
    out = b""
    for message in messages:
        body = json.dumps(message).encode()
        out += (f"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
    return out


def upgrade_request(key=None, version="13", path="/api/v1/ws", extra=""):
    """The bytes of a WebSocket opening handshake."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n"
            ).encode()


def read_until(sock, marker):
    """Reads until marker has arrived or the peer closed."""
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_to_eof(sock):
    """Everything the peer sends until it closes (a reset counts as closing)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
