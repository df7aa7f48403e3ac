"""The reverse-proxy recipe of docs/security.md ("Behind nginx"), taken from
the document itself and run with real nginx (Debian nginx-light) on free
loopback ports, started by the test as a child with every path in a
temporary directory (as bench/nchan-serve does).

Clients reach nginx from other loopback addresses (127.0.0.2, 127.0.0.3) so
that houston, behind nginx on 127.0.0.1, has real client addresses to tell
apart: per-IP limits must count those, not nginx."""
import asyncio
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from conftest import BIN, ROOT, free_port, read_until, run, upgrade_request, wait_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
KEY = "k-nginx-" + "d" * 40

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(),
                                reason="nginx is not installed (scripts/install-deps.sh test)")


def recipe():
    """The nginx server block and the houston flags of docs/security.md."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text[text.index("### Behind nginx"):]
    block = re.search(r"```nginx\n(.*?)```", section, re.S).group(1)
    flags = re.search(r"with `houston serve ([^`]*)`", section).group(1)
    return block, flags


def test_the_recipe_still_says_what_this_test_runs():
    block, flags = recipe()
    assert "--api-key" in flags and "--trusted-proxies 127.0.0.1" in flags
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in block
    assert 'proxy_set_header Forwarded ""' in block


class Nginx:
    def __init__(self, tmp, ws_port, api_port):
        block, _ = recipe()
        self.port = free_port()
        # The recipe as written, on a plain loopback port instead of 443
        # with a certificate, in front of this test's houston ports.
        block = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{self.port};", block)
        block = re.sub(r"\n\s*ssl_certificate(_key)? [^\n]*", "", block)
        block = block.replace("127.0.0.1:9001", f"127.0.0.1:{ws_port}")
        block = block.replace("127.0.0.1:9002", f"127.0.0.1:{api_port}")
        self.dir = tmp / f"nginx-{self.port}"
        self.dir.mkdir()
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
{block}
}}
""")
        self.log = self.dir / "stderr.log"
        self.stderr = open(self.log, "w")
        self.proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                      "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        wait_port(self.port, self.proc, self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stderr.close()


@pytest.fixture
def behind_nginx(fresh_server, tmp_path):
    """houston with the recipe's flags (plus extra ones), nginx in front."""
    started = []

    def make(*extra, key=KEY):
        _, flags = recipe()
        args = [a for a in flags.split() if not a.startswith("127.0.0.1:900")
                and a not in ("--ws-addr", "--api-addr")]
        args = [KEY if a == '"$KEY"' else a for a in args]
        if key is None:  # the recipe without its key, as it was before
            i = args.index("--api-key")
            del args[i:i + 2]
        srv = fresh_server(*args, *extra)
        nginx = Nginx(tmp_path, srv.ws_port, srv.api_port)
        started.append(nginx)
        return srv, nginx

    yield make
    for nginx in started:
        nginx.stop()


def request(port, method, path, body=None, headers=None, source="127.0.0.2"):
    """One request to nginx from the loopback address source."""
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as s:
        s.sendall(head.encode() + b"\r\n" + data)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    status = int(raw.split(b" ", 2)[1])
    payload = raw.partition(b"\r\n\r\n")[2]
    try:
        return status, json.loads(payload) if payload.strip() else None
    except ValueError:
        return status, payload


def test_a_keyless_api_refuses_everything_relayed(behind_nginx, topic):
    srv, nginx = behind_nginx(key=None)
    status, body = request(nginx.port, "POST", "/api/v1/publish",
                           {"topic": topic, "content": "from the internet"})
    assert status == 403 and body["error"]["code"] == "forbidden", body
    status, body = request(nginx.port, "GET", f"/api/v1/messages?topic={topic}")
    assert status == 403, body
    # houston's own machine still reaches it directly, and nothing was stored
    from conftest import call
    status, page = call(srv, "GET", f"/api/v1/messages?topic={topic}")
    assert status == 403  # 127.0.0.1 is the trusted proxy: no request from it is loopback


def test_no_request_gets_in_without_the_key(behind_nginx, topic):
    srv, nginx = behind_nginx()
    for path, body in [("/api/v1/publish", {"topic": topic, "content": "x"}),
                       (f"/api/v1/messages?topic={topic}", None), ("/metrics", None),
                       ("/api/v1/nothing", None)]:
        status, answer = request(nginx.port, "POST" if body else "GET", path, body)
        assert status == 401, (path, answer)
    status, _ = request(nginx.port, "POST", "/api/v1/publish", {"topic": topic, "content": "x"},
                        {"Authorization": f"Bearer {KEY}"})
    assert status == 201


def test_per_ip_limits_see_the_client_address_and_the_upgrade_passes(behind_nginx, topic):
    srv, nginx = behind_nginx("--max-connections-per-ip", "1")

    def upgrade(source, extra=""):
        s = socket.create_connection(("127.0.0.1", nginx.port), timeout=10,
                                     source_address=(source, 0))
        s.sendall(upgrade_request(extra=extra).replace(
            b"Host: 127.0.0.1\r\n", f"Host: 127.0.0.1:{nginx.port}\r\n".encode()))
        head = read_until(s, b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), s

    held = []
    try:
        status, s = upgrade("127.0.0.2")
        held.append(s)
        assert status == 101
        # the same client again, even claiming to be someone else
        status, s = upgrade("127.0.0.2", "X-Forwarded-For: 198.51.100.9\r\n")
        held.append(s)
        assert status == 429
        status, s = upgrade("127.0.0.3")
        held.append(s)
        assert status == 101
        logs = srv.logs()
        assert "connected from 127.0.0.2 (via a proxy)" in logs
        assert "connected from 127.0.0.3 (via a proxy)" in logs
        assert "198.51.100.9" not in logs
    finally:
        for s in held:
            s.close()

    # A real client through nginx gets a message its backend subscribed it to.
    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{nginx.port}/api/v1/ws",
                                      origin=f"http://127.0.0.1:{nginx.port}",
                                      local_addr=("127.0.0.5", 0))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        cid = hello["connectionID"]
        auth = {"Authorization": f"Bearer {KEY}"}
        # The connections API shows the client's address, not nginx's.
        status, body = await asyncio.to_thread(request, nginx.port, "GET",
                                               f"/api/v1/connections/{cid}", None, auth,
                                               "127.0.0.4")
        assert status == 200 and body["address"] == "127.0.0.5", body
        status, _ = await asyncio.to_thread(request, nginx.port, "POST", "/api/v1/subscribes",
                                            {"topic": topic, "connectionID": cid}, auth,
                                            "127.0.0.4")
        assert status in (200, 201)
        status, _ = await asyncio.to_thread(request, nginx.port, "POST", "/api/v1/publish",
                                            {"topic": topic, "content": "through nginx"}, auth,
                                            "127.0.0.4")
        assert status == 201
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if frame["type"] == "message":
                assert frame["message"]["content"] == "through nginx"
                break
        await ws.close()
    time.sleep(0.2)
    run(go())
    # A page from another site is refused through the proxy too.
    async def foreign():
        await websockets.connect(f"ws://127.0.0.1:{nginx.port}/api/v1/ws",
                                 origin="https://evil.example")
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
        run(foreign())
    assert refused.value.status_code == 403


def test_the_cli_finds_the_websocket_through_the_proxy(behind_nginx, topic):
    """GET /api/v1/info relayed by nginx names the proxy's origin (its Host
    and X-Forwarded-Proto), so `houston sub --server <nginx>` subscribes
    through nginx with nothing else said."""
    srv, nginx = behind_nginx()
    status, info = request(nginx.port, "GET", "/api/v1/info", None,
                           {"Authorization": f"Bearer {KEY}"})
    assert status == 200, info
    assert info["wsURL"] == f"ws://127.0.0.1:{nginx.port}/api/v1/ws"
    assert info["sseURL"] == f"http://127.0.0.1:{nginx.port}/api/v1/sse"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSTON_")}
    env.update(HOUSTON_URL=f"http://127.0.0.1:{nginx.port}", HOUSTON_API_KEY=KEY)
    sub = subprocess.Popen([BIN, "sub", topic], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sub.poll() is None:
            status, subs = request(nginx.port, "GET", f"/api/v1/subscribes?topic={topic}", None,
                                   {"Authorization": f"Bearer {KEY}"})
            if status == 200 and subs:
                break
            time.sleep(0.05)
        status, sent = request(nginx.port, "POST", "/api/v1/publish",
                               {"topic": topic, "content": "through nginx"},
                               {"Authorization": f"Bearer {KEY}"})
        assert status == 201, sent
        ready, _, _ = select.select([sub.stdout], [], [], 10)
        line = sub.stdout.readline() if ready else ""
    finally:
        sub.send_signal(signal.SIGINT)
        _, err = sub.communicate(timeout=10)
    assert line and json.loads(line) == sent, err
    assert "via a proxy" in srv.logs()
