"""Safe by default against web pages and behind proxies (issue 14,
docs/security.md): the Host check (DNS rebinding, 421), the Origin check of
WebSocket and SSE (403 before the upgrade), --trusted-proxies (the client
address behind a proxy, never loopback), and no secret in any log line.
Raw sockets write the exact headers a browser or a proxy would send."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time

import websockets

from conftest import BIN, call, free_port, read_to_eof, read_until, run, upgrade_request

KEY = "k-safe-" + "c" * 40
SECRET = "s3cret-for-safe-defaults-0123456789abcdef"


def raw(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_to_eof(s)


def get(port, path, host, extra=""):
    return raw(port, (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
                      "Connection: close\r\n\r\n").encode())


def status_of(response):
    return int(response.split(b" ", 2)[1])


def body_of(response):
    return json.loads(response.partition(b"\r\n\r\n")[2])


def handshake(port, request):
    """The answer head of an upgrade; the socket is closed after."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        return read_until(s, b"\r\n\r\n")


def upgrade(host="127.0.0.1", path="/api/v1/ws", extra=""):
    return upgrade_request(path=path, extra=extra).replace(
        b"Host: 127.0.0.1\r\n", f"Host: {host}\r\n".encode())


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(sub="alice", topics=("news",)):
    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub, "iat": now, "exp": now + 300,
                              "topics": list(topics)}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


# ---- Host check (DNS rebinding) -----------------------------------------------

def test_keyless_server_answers_only_loopback_hosts_on_both_ports(server, topic):
    for port in (server.api_port, server.ws_port):
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example",
                     "192.168.1.10", "houston.internal:80", "localhost.evil.example"):
            resp = get(port, "/healthz", host)
            assert status_of(resp) == 421, (port, host, resp)
            assert body_of(resp)["error"]["code"] == "misdirected_request"
        for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST",
                     f"[::1]:{port}", "127.1.2.3", "localhost."):
            assert status_of(get(port, "/healthz", host)) == 200, (port, host)
    # A rebinding page's publish: refused before it is read, nothing stored.
    body = json.dumps({"topic": topic, "content": "rebound"}).encode()
    resp = raw(server.api_port, (f"POST /api/v1/publish HTTP/1.1\r\nHost: evil.example:"
                                 f"{server.api_port}\r\nOrigin: http://evil.example:"
                                 f"{server.api_port}\r\nContent-Type: application/json\r\n"
                                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                                 ).encode() + body)
    assert status_of(resp) == 421, resp
    # Its WebSocket: no upgrade either.
    head = handshake(server.ws_port, upgrade(f"evil.example:{server.ws_port}",
                                             extra=f"Origin: http://evil.example:"
                                                   f"{server.ws_port}\r\n"))
    assert head.startswith(b"HTTP/1.1 421"), head
    status, page = call(server, "GET", f"/api/v1/messages?topic={topic}")
    assert status == 200 and page["messages"] == []


def test_allowed_hosts_lists_more_names(fresh_server):
    srv = fresh_server("--allowed-hosts", "houston.test, Other.Test:8080")
    for port in (srv.api_port, srv.ws_port):
        assert status_of(get(port, "/healthz", "houston.test:1234")) == 200
        assert status_of(get(port, "/healthz", "other.test")) == 200
        assert status_of(get(port, "/healthz", "localhost")) == 200
        assert status_of(get(port, "/healthz", "third.test")) == 421


def test_with_an_api_key_the_host_is_checked_only_when_listed(fresh_server):
    srv = fresh_server("--api-key", KEY)
    resp = get(srv.api_port, "/api/v1/messages?topic=x", "houston.example",
               f"Authorization: Bearer {KEY}\r\n")
    assert status_of(resp) == 200, resp
    assert status_of(get(srv.ws_port, "/healthz", "houston.example")) == 200
    srv = fresh_server("--api-key", KEY, "--allowed-hosts", "houston.example")
    assert status_of(get(srv.api_port, "/api/v1/messages?topic=x", "houston.example",
                         f"Authorization: Bearer {KEY}\r\n")) == 200
    assert status_of(get(srv.api_port, "/api/v1/messages?topic=x", "evil.example",
                         f"Authorization: Bearer {KEY}\r\n")) == 421
    assert status_of(get(srv.ws_port, "/healthz", "evil.example")) == 421


def test_allowed_hosts_from_the_environment(tmp_path):
    ws, api = free_port(), free_port()
    proc = subprocess.Popen([BIN, "serve", "--ws-addr", f"127.0.0.1:{ws}", "--api-addr",
                             f"127.0.0.1:{api}", "--db", f"sqlite:{tmp_path}/h.db"],
                            env={**os.environ, "HOUSTON_ALLOWED_HOSTS": "env.test"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_port
        wait_port(api, proc, tmp_path / "none")
        assert status_of(get(api, "/healthz", "env.test")) == 200
        assert status_of(get(api, "/healthz", "evil.test")) == 421
    finally:
        proc.terminate()
        proc.wait(10)


# ---- Origin check (WebSocket and SSE) -----------------------------------------------

def test_websocket_and_sse_only_from_the_servers_own_origin(server):
    own = f"http://127.0.0.1:{server.ws_port}"
    for origin in ("https://evil.example", "null", f"http://localhost:{server.ws_port}",
                   f"http://127.0.0.1:{server.api_port}", "http://127.0.0.1",
                   f"{own}.evil.example"):
        head = handshake(server.ws_port, upgrade(f"127.0.0.1:{server.ws_port}",
                                                 extra=f"Origin: {origin}\r\n"))
        assert head.startswith(b"HTTP/1.1 403"), (origin, head)
        resp = get(server.ws_port, "/api/v1/sse", f"127.0.0.1:{server.ws_port}",
                   f"Origin: {origin}\r\n")
        assert status_of(resp) == 403 and body_of(resp)["error"]["code"] == "origin_not_allowed"
    # The console's page on this very listener, and clients without Origin.
    for extra in (f"Origin: {own}\r\n", f"Origin: {own.upper()}\r\n", ""):
        head = handshake(server.ws_port, upgrade(f"127.0.0.1:{server.ws_port}", extra=extra))
        assert head.startswith(b"HTTP/1.1 101"), (extra, head)
    head = handshake(server.ws_port, upgrade(f"localhost:{server.ws_port}",
                                             extra=f"Origin: http://localhost:"
                                                   f"{server.ws_port}\r\n"))
    assert head.startswith(b"HTTP/1.1 101"), head


def test_a_foreign_page_subscribes_nothing_and_reads_nothing(server, topic):
    async def go():
        try:
            await websockets.connect(server.ws_url, origin="https://evil.example")
            raise AssertionError("a foreign origin opened a WebSocket")
        except websockets.exceptions.InvalidStatusCode as e:
            assert e.status_code == 403
        ws = await websockets.connect(server.ws_url, origin=f"http://127.0.0.1:{server.ws_port}")
        assert json.loads(await ws.recv())["type"] == "connected"
        await ws.close()
    run(go())


def test_allowed_origins_adds_origins_and_star_needs_tokens(fresh_server, tmp_path):
    srv = fresh_server("--allowed-origins", "https://app.example")
    assert handshake(srv.ws_port, upgrade(extra="Origin: https://app.example\r\n")) \
        .startswith(b"HTTP/1.1 101")
    assert handshake(srv.ws_port, upgrade(extra="Origin: https://evil.example\r\n")) \
        .startswith(b"HTTP/1.1 403")
    out = subprocess.run([BIN, "serve", "--ws-addr", f"127.0.0.1:{free_port()}", "--api-addr",
                          f"127.0.0.1:{free_port()}", "--db", f"sqlite:{tmp_path}/star.db",
                          "--allowed-origins", "*"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 1 and "client tokens" in out.stderr, out.stderr
    srv = fresh_server("--allowed-origins", "*", "--jwt-secret", SECRET)
    head = handshake(srv.ws_port, upgrade(path=f"/api/v1/ws?token={make_token()}",
                                          extra="Origin: https://any.example\r\n"))
    assert head.startswith(b"HTTP/1.1 101"), head


# ---- trusted proxies ----------------------------------------------------------------

def hold_upgrade(port, extra):
    """Opens a WebSocket with extra header lines; returns (status, socket)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(upgrade(extra=extra))
    head = read_until(s, b"\r\n\r\n")
    return status_of(head), s


def test_per_ip_limits_count_the_forwarded_address(fresh_server):
    srv = fresh_server("--api-key", KEY, "--trusted-proxies", "127.0.0.0/8, ::1",
                       "--max-connections-per-ip", "1")
    held = []
    try:
        for extra, expected in [
            ("X-Forwarded-For: 203.0.113.5\r\n", 101),
            ("X-Forwarded-For: 203.0.113.5\r\n", 429),
            # what the client wrote itself is left of the proxy's hop
            ("X-Forwarded-For: 198.51.100.1, 203.0.113.5\r\n", 429),
            ("X-Forwarded-For: 203.0.113.6\r\n", 101),
            ("X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n", 101),  # two proxies
            ('Forwarded: for="[2001:db8::7]:4711";proto=https\r\n', 101),
            ('Forwarded: for="[2001:db8::7]"\r\n', 429),
        ]:
            status, s = hold_upgrade(srv.ws_port, extra)
            held.append(s)
            assert status == expected, (extra, status)
        logs = srv.logs()
        assert "connected from 203.0.113.5 (via a proxy)" in logs
        assert "connected from 203.0.113.7 (via a proxy)" in logs
        assert "connected from 2001:db8::7 (via a proxy)" in logs
    finally:
        for s in held:
            s.close()


def test_forwarding_headers_are_ignored_from_untrusted_peers(fresh_server):
    srv = fresh_server("--max-connections-per-ip", "1", "--trusted-proxies", "10.0.0.0/8")
    held = []
    try:
        status, s = hold_upgrade(srv.ws_port, "X-Forwarded-For: 203.0.113.5\r\n")
        held.append(s)
        assert status == 101
        status, s = hold_upgrade(srv.ws_port, "X-Forwarded-For: 203.0.113.6\r\n")
        held.append(s)
        assert status == 429  # both are 127.0.0.1
        assert "203.0.113" not in srv.logs()
    finally:
        for s in held:
            s.close()


def test_a_proxied_request_is_never_loopback(fresh_server, topic):
    srv = fresh_server("--trusted-proxies", "127.0.0.1")
    body = json.dumps({"topic": topic, "content": "through the proxy"}).encode()
    for extra in ("X-Forwarded-For: 127.0.0.1\r\n", ""):
        resp = raw(srv.api_port, (f"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
                                  f"Content-Type: application/json\r\nContent-Length: {len(body)}"
                                  "\r\nConnection: close\r\n\r\n").encode() + body)
        assert status_of(resp) == 403, resp
        assert body_of(resp)["error"]["code"] == "forbidden"
    assert status_of(get(srv.api_port, "/healthz", "127.0.0.1",
                         "X-Forwarded-For: 203.0.113.5\r\n")) == 200

    async def go():
        ws = await websockets.connect(srv.ws_url, extra_headers={
            "X-Forwarded-For": "127.0.0.1"})
        assert json.loads(await ws.recv())["type"] == "connected"
        await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["type"] == "error" and reply["code"] == "forbidden", reply
        await ws.close()
    run(go())


# ---- no secret in a log line --------------------------------------------------------

def test_no_secret_in_any_log_line(fresh_server):
    srv = fresh_server("--log-level", "debug", "--api-key", KEY, "--jwt-secret", SECRET,
                       "--resume-secret", "resume-secret-" + "r" * 32)
    token = make_token()

    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{srv.ws_port}/api/v1/ws?token={token}")
        hello = json.loads(await ws.recv())
        resume = hello["resumeToken"]
        await ws.close()
        ws = await websockets.connect(f"ws://127.0.0.1:{srv.ws_port}/api/v1/ws?token={token}"
                                      f"&resume={resume}")
        await ws.recv()
        await ws.close()
        # refused ones are logged too
        try:
            await websockets.connect(f"ws://127.0.0.1:{srv.ws_port}/api/v1/ws?token=x{token}")
        except websockets.exceptions.InvalidStatusCode:
            pass
        return resume
    resume = run(go())
    for key in (KEY, "wrong-" + KEY):
        get(srv.api_port, f"/api/v1/messages?topic=x&key={key}", "127.0.0.1",
            f"Authorization: Bearer {key}\r\nX-API-Key: {key}\r\n")
    handshake(srv.ws_port, f"GET /api/v1/sse?token={token}&resume={resume} HTTP/1.1\r\n"
                           "Host: 127.0.0.1\r\n\r\n".encode())
    time.sleep(0.3)
    logs = srv.logs()
    assert "token=***" in logs and "resume=***" in logs, logs[-3000:]
    for secret in (KEY, SECRET, token, token.split(".")[2], resume):
        assert secret not in logs, secret


def test_a_bad_trusted_proxies_list_stops_the_start(tmp_path):
    for env, flags in (({}, ["--trusted-proxies", "10.0.0.0/33"]),
                       ({"HOUSTON_TRUSTED_PROXIES": "127.0.0.1, proxy.internal"}, [])):
        out = subprocess.run([BIN, "serve", "--ws-addr", f"127.0.0.1:{free_port()}",
                              "--api-addr", f"127.0.0.1:{free_port()}", "--db",
                              f"sqlite:{tmp_path}/bad.db", *flags],
                             env={**os.environ, **env}, capture_output=True, text=True,
                             timeout=20)
        assert out.returncode == 1, out.stderr
        assert "--trusted-proxies" in out.stderr and "CIDR" in out.stderr, out.stderr
