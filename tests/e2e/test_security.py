"""Security (docs/security.md): API keys on the API port, client tokens on the
WebSocket port, client-side subscribe within the token's grant, connection
info and disconnect, the secure-by-default API address, the abuse limits.

Tokens are made here the way a backend would: HS256 with hmac/hashlib, RS256
and ES256 with python3-cryptography. Everything runs against the real binary
with real clients (HTTPie, http.client, Python websockets)."""
import asyncio
import base64
import hashlib
import hmac
import http.client as httplib
import json
import signal
import socket
import subprocess
import time

import pytest
import websockets
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import BIN, free_port, http, recv_json, run, wait_port

KEY1, KEY2 = "k1-" + "a" * 40, "k2-" + "b" * 40
SECRET = "s3cret-for-tests-only-0123456789abcdef"
ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


# ---- tokens -------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, alg="HS256", secret=SECRET, key=None, header=None):
    head = {"alg": alg, "typ": "JWT", **(header or {})}
    signing_input = (b64url(json.dumps(head).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    if alg == "HS256":
        sig = hmac.new(secret.encode() if isinstance(secret, str) else secret, signing_input,
                       hashlib.sha256).digest()
    elif alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:  # "none"
        sig = b""
    return signing_input.decode() + "." + b64url(sig)


def claims(sub="alice", ttl=300, **more):
    now = int(time.time())
    out = {"sub": sub, "iat": now, "exp": now + ttl, "topics": ["news", "chat.*"]}
    out.update(more)
    return {k: v for k, v in out.items() if v is not None}


def pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


# ---- servers ------------------------------------------------------------------

class Houston:
    """houston serve with the given flags on free loopback ports."""

    def __init__(self, tmp, *flags, api_host="127.0.0.1", ws_host="127.0.0.1"):
        self.ws_port, self.api_port = free_port(), free_port()
        self.log = tmp / f"houston-{self.api_port}.log"
        self.stderr = open(self.log, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--ws-addr", f"{ws_host}:{self.ws_port}", "--api-addr",
             f"{api_host}:{self.api_port}", "--db", f"sqlite:{tmp}/h-{self.api_port}.db", *flags],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        if ws_host == "127.0.0.1":
            wait_port(self.ws_port, self.proc, self.log)
        wait_port(self.api_port, self.proc, self.log)

    @property
    def api(self):
        return f"http://127.0.0.1:{self.api_port}"

    def ws_url(self, token=None):
        return f"ws://127.0.0.1:{self.ws_port}/api/v1/ws" + (f"?token={token}" if token else "")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(15)
        self.stderr.close()
        assert code == 0, self.log.read_text()


@pytest.fixture
def start(tmp_path):
    servers = []

    def make(*flags, **kw):
        srv = Houston(tmp_path, *flags, **kw)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        if srv.proc.poll() is None:
            srv.stop()


def request(srv, method, path, headers=None, body=None, port=None):
    conn = httplib.HTTPConnection("127.0.0.1", port or srv.api_port, timeout=10)
    try:
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        try:
            parsed = json.loads(data) if data.strip() else None
        except ValueError:
            parsed = None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed
    finally:
        conn.close()


def api_routes():
    out = subprocess.run([BIN, "routes"], capture_output=True, text=True, check=True).stdout
    routes = []
    for line in out.splitlines():
        port, method, path = line.split()
        if port == "api":
            routes.append((method, path.replace("{id}", ULID)))
    return routes


def ws_status(srv, path):
    """The HTTP status of an upgrade attempt (raw socket: no client retries)."""
    key = base64.b64encode(b"0123456789abcdef").decode()
    with socket.create_connection(("127.0.0.1", srv.ws_port), timeout=5) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split()[1]), data


async def ws_connect(srv, token=None, headers=None):
    url = f"ws://127.0.0.1:{srv.ws_port}/api/v1/ws" + (f"?token={token}" if token else "")
    ws = await websockets.connect(url, extra_headers=headers or {})
    hello = await recv_json(ws)
    assert hello["type"] == "connected"
    return ws, hello["connectionID"]


async def expect_rejected(srv, token):
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
        await websockets.connect(srv.ws_url(token))
    assert info.value.status_code == 401


# ---- API keys -------------------------------------------------------------------

def test_every_api_route_needs_a_key(start):
    srv = start("--api-key", KEY1, "--api-key", KEY2)
    routes = api_routes()
    assert ("GET", f"/api/v1/connections/{ULID}") in routes
    for method, path in routes:
        body = {} if method == "POST" else None
        status, headers, _ = request(srv, method, path, body=body)
        if path in ("/healthz", "/readyz"):  # load balancers probe without credentials
            assert status == 200, (method, path, status)
            continue
        assert status == 401, (method, path, status)
        assert headers["www-authenticate"].startswith("Bearer")
        status, _, err = request(srv, method, path, {"Authorization": "Bearer wrong"}, body)
        assert status == 401 and err["error"]["code"] == "unauthorized", (method, path)
        status, _, _ = request(srv, method, path, {"X-API-Key": KEY1[:-1]}, body)
        assert status == 401, (method, path)
        for good in ({"Authorization": f"Bearer {KEY1}"}, {"X-API-Key": KEY2}):
            status, _, _ = request(srv, method, path, good, body)
            assert status not in (401, 405), (method, path, good, status)


def test_api_key_with_httpie_and_preflight_without_key(start, topic):
    srv = start("--api-key", f"{KEY1},{KEY2}", "--cors-origins", "http://console.example")
    r = http("POST", f"{srv.api}/api/v1/publish", f"topic={topic}", "content=hi", "sender=me")
    assert r.status == 401 and r.json["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    r = http("POST", f"{srv.api}/api/v1/publish", f"topic={topic}", "content=hi", "sender=me",
             f"Authorization:Bearer {KEY2}")
    assert r.status == 201, r
    r = http("GET", f"{srv.api}/api/v1/messages", f"topic=={topic}", f"X-API-Key:{KEY1}")
    assert r.status == 200 and r.json["messages"][0]["content"] == "hi"
    # A browser's preflight carries no credentials; it must still be answered.
    status, headers, _ = request(srv, "OPTIONS", "/api/v1/publish", {
        "Origin": "http://console.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204 and headers["access-control-allow-origin"] == "http://console.example"
    assert KEY1 not in srv.log.read_text() and KEY2 not in srv.log.read_text()


def test_key_file_reloaded_on_sighup_and_config_masks_keys(start, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"# backend A\n{KEY1}\n\n")
    srv = start("--api-key-file", str(keys))
    auth = {"Authorization": f"Bearer {KEY1}"}
    assert request(srv, "GET", "/metrics", auth)[0] == 200
    assert request(srv, "GET", "/metrics")[0] == 401  # /metrics needs the key too
    keys.write_text(f"{KEY2}\n")  # rotation: the new key in, the old one out
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while request(srv, "GET", "/metrics", auth)[0] != 401 and time.time() < deadline:
        time.sleep(0.05)
    assert request(srv, "GET", "/metrics", auth)[0] == 401
    assert request(srv, "GET", "/metrics", {"X-API-Key": KEY2})[0] == 200
    out = subprocess.run([BIN, "config", "--api-key", KEY1, "--jwt-secret", SECRET],
                         capture_output=True, text=True, check=True).stdout
    assert KEY1 not in out and SECRET not in out and "api-key" in out


PASSWORD = "Hunter2-s3cret"


@pytest.mark.parametrize("flags", [
    ["--db", f"mysql://houston:{PASSWORD}@"],                 # no host, no database
    ["--db", f"mysql://houston:{PASSWORD}@db"],               # no database
    ["--db", f"mariadb://houston:p@{PASSWORD}@db:99999/x"],   # '@' in it, bad port
    ["--db", f"postgres://houston:{PASSWORD}@db/x"],          # unsupported scheme
    ["--db", f"houston:{PASSWORD}@db/x"],                     # no scheme
    ["--db", f"mysql:/houston:{PASSWORD}@db/x"],              # a malformed scheme
    ["--redis", f"redis://:{PASSWORD}@cache:6379"],           # no host to redis.c
    ["--redis", f"redis://u:{PASSWORD}@cache:6379"],          # a bad port to redis.c
    [f"mysql://houston:{PASSWORD}@db/x"],                     # the URL without its flag
])
def test_a_bad_database_or_redis_url_is_shown_without_its_password(tmp_path, flags):
    """Start-up refuses each of these with an error naming the URL, its
    password masked; `houston config` shows it masked too."""
    args = [BIN, "serve", "--ws-addr", f"127.0.0.1:{free_port()}", "--api-addr",
            f"127.0.0.1:{free_port()}"]
    if "--db" not in flags:
        args += ["--db", f"sqlite:{tmp_path}/h.db"]
    done = subprocess.run(args + flags, capture_output=True, text=True, timeout=20)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "URL" in output or "unexpected argument" in output, output
    assert "***" in output, output
    assert PASSWORD not in output and PASSWORD[:6] not in output, output
    if flags[0].startswith("--"):
        shown = subprocess.run([BIN, "config", *flags], capture_output=True, text=True,
                               timeout=10)
        assert shown.returncode == 0 and "***" in shown.stdout, shown.stdout + shown.stderr
        assert PASSWORD not in shown.stdout + shown.stderr


def test_non_loopback_api_without_key_is_refused_unless_insecure(tmp_path, start):
    port, ws = free_port(), free_port()
    args = [BIN, "serve", "--api-addr", f"0.0.0.0:{port}", "--ws-addr", f"127.0.0.1:{ws}",
            "--db", f"sqlite:{tmp_path}/r.db"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=20)
    assert out.returncode == 1
    assert "--api-key" in out.stderr and "--insecure" in out.stderr
    srv = start("--insecure", api_host="0.0.0.0")
    assert request(srv, "GET", "/api/v1/messages?topic=x")[0] == 200
    srv = start("--api-key", KEY1, api_host="0.0.0.0")
    assert request(srv, "GET", "/api/v1/messages?topic=x")[0] == 401


def test_default_api_address_is_loopback_only(tmp_path):
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", 9002))
        except OSError:
            pytest.skip("port 9002 is in use on this machine")
    ws = free_port()
    log = tmp_path / "default.log"
    proc = subprocess.Popen([BIN, "serve", "--ws-addr", f"127.0.0.1:{ws}", "--db",
                             f"sqlite:{tmp_path}/d.db"], stderr=open(log, "w"))
    try:
        wait_port(9002, proc, log)
        listening = subprocess.run(["ss", "-Hltn", "sport = :9002"], capture_output=True,
                                   text=True).stdout
        assert "127.0.0.1:9002" in listening and "0.0.0.0:9002" not in listening
        assert "*:9002" not in listening and "[::]:9002" not in listening
        assert "loopback only" in log.read_text()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ---- tokens -----------------------------------------------------------------------

def test_websocket_needs_a_valid_token(start):
    srv = start("--api-key", KEY1, "--jwt-secret", SECRET, "--jwt-issuer", "https://issuer",
                "--jwt-audience", "houston")
    good = dict(iss="https://issuer", aud=["other", "houston"])
    status, raw = ws_status(srv, "/api/v1/ws")
    assert status == 401 and b"unauthorized" in raw and b"101" not in raw.split(b"\r\n")[0]
    assert ws_status(srv, "/healthz")[0] == 200

    async def scenario():
        ws, _ = await ws_connect(srv, make_token(claims(**good)))
        await ws.close()
        ws, _ = await ws_connect(srv, headers={
            "Authorization": "Bearer " + make_token(claims(**good))})
        await ws.close()
        now = int(time.time())
        bad = [
            make_token(claims(ttl=-120, **good)),                          # expired
            make_token(claims(nbf=now + 600, **good)),                     # not yet valid
            make_token(claims(iat=now + 600, **good)),                     # issued in the future
            make_token(claims(**good), secret="another secret"),           # wrong signature
            make_token(claims(**good), alg="none"),                        # alg none
            make_token(claims(**good), alg="HS512"),                       # unknown algorithm
            make_token(claims(sub=None, **good)),                          # no sub
            make_token(claims(iss="https://evil", aud="houston")),         # wrong issuer
            make_token(claims(iss="https://issuer", aud="nobody")),        # wrong audience
            make_token(claims(**good))[:-3] + "AAA",                       # tampered signature
            "not.a.token",
        ]
        for token in bad:
            await expect_rejected(srv, token)
        huge = make_token(claims(pad="x" * 9000, **good))  # over the 8 KiB token limit
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
            await websockets.connect(srv.ws_url(), extra_headers={"Authorization": "Bearer " + huge})
        assert info.value.status_code == 401

    run(scenario())
    assert SECRET not in srv.log.read_text()


def test_rs256_and_es256_and_algorithm_confusion(start, tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "rsa.pem").write_bytes(pem(rsa_key.public_key()))
    (tmp_path / "ec.pem").write_bytes(pem(ec_key.public_key()))
    rs = start("--jwt-public-key", str(tmp_path / "rsa.pem"))
    es = start("--jwt-public-key", str(tmp_path / "ec.pem"))

    async def scenario():
        ws, _ = await ws_connect(rs, make_token(claims(), alg="RS256", key=rsa_key))
        await ws.close()
        ws, _ = await ws_connect(es, make_token(claims(), alg="ES256", key=ec_key))
        await ws.close()
        # The classic confusion: HS256 "signed" with the public key's bytes.
        await expect_rejected(rs, make_token(claims(), secret=pem(rsa_key.public_key())))
        await expect_rejected(es, make_token(claims(), secret=pem(ec_key.public_key())))
        await expect_rejected(rs, make_token(claims(), alg="ES256", key=ec_key))
        await expect_rejected(es, make_token(claims(), alg="RS256", key=rsa_key))
        await expect_rejected(rs, make_token(claims(), alg="none"))
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        await expect_rejected(rs, make_token(claims(), alg="RS256", key=other))

    run(scenario())


def test_refresh_before_expiry_keeps_the_connection(start):
    srv = start("--jwt-secret", SECRET)

    async def scenario():
        ws, _ = await ws_connect(srv, make_token(claims(ttl=2)))
        await ws.send(json.dumps({"type": "refresh", "token": make_token(claims(sub="mallory"))}))
        assert (await recv_json(ws))["code"] == "invalid_token"  # another user
        later = claims(ttl=60)
        await ws.send(json.dumps({"type": "refresh", "token": make_token(later)}))
        reply = await recv_json(ws)
        assert reply == {"type": "refreshed", "exp": later["exp"]}
        await asyncio.sleep(3)  # past the first token's exp
        await ws.send(json.dumps({"type": "subscribe", "topic": "news"}))
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.close()

    run(scenario())


def test_expired_connection_is_closed_with_4001(start):
    srv = start("--jwt-secret", SECRET)

    async def scenario():
        ws, _ = await ws_connect(srv, make_token(claims(ttl=1)))
        started = time.monotonic()
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4001 and ws.close_reason == "token expired"
        assert time.monotonic() - started < 3
        # A refresh after expiry is too late: a new connection is needed.
        await expect_rejected(srv, make_token(claims(ttl=-60)))

    run(scenario())


def test_exp_beyond_year_9999_is_bounded_not_overflowed(start):
    """exp = 2^63-1: the connection lives (the expiry timer's exp * 1000 used
    to overflow: UBSan under `make sanitize`, an immediate 4001 otherwise) and
    a refresh with it is answered with the bound, the end of year 9999."""
    srv = start("--jwt-secret", SECRET)
    huge = 2**63 - 1

    async def scenario():
        ws, _ = await ws_connect(srv, make_token(claims(exp=huge)))
        await ws.send(json.dumps({"type": "subscribe", "topic": "news"}))
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send(json.dumps({"type": "refresh", "token": make_token(claims(exp=huge))}))
        assert await recv_json(ws) == {"type": "refreshed", "exp": 253402300799}
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"type": "unsubscribe", "topic": "news"}))
        assert (await recv_json(ws))["type"] == "unsubscribed"
        await ws.close()

    run(scenario())
    assert srv.proc.poll() is None
    assert "runtime error" not in srv.log.read_text()


# ---- client-side subscribe, connection info -----------------------------------

def test_client_subscribe_within_the_grant_and_connection_info(start, topic):
    srv = start("--api-key", KEY1, "--jwt-secret", SECRET)
    key = {"X-API-Key": KEY1}
    token = make_token(claims(sub="alice", topics=[topic, "chat.*"]))

    async def scenario():
        ws, conn = await ws_connect(srv, token)
        for t in (topic, "chat.room1"):
            await ws.send(json.dumps({"type": "subscribe", "topic": t}))
            assert await recv_json(ws) == {"type": "subscribed", "topic": t}
        for t, code in (("secret", "forbidden"), ("chat", "forbidden"),
                        ("bad topic!", "invalid_topic")):
            await ws.send(json.dumps({"type": "subscribe", "topic": t}))
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["code"] == code, (t, reply)
        await ws.send("hello")
        assert (await recv_json(ws))["code"] == "unsupported"
        # Pushed like an API-made subscription; a topic not granted never arrives.
        for t in ("secret", "chat.room1"):
            assert request(srv, "POST", "/api/v1/publish", key,
                           {"topic": t, "content": t, "sender": "b"})[0] == 201
        got = await recv_json(ws)
        assert got["type"] == "message" and got["message"]["topic"] == "chat.room1"
        status, _, subs = request(srv, "GET", f"/api/v1/subscribes?connectionID={conn}", key)
        assert status == 200 and sorted(s["topic"] for s in subs) == sorted([topic, "chat.room1"])
        status, _, info = request(srv, "GET", f"/api/v1/connections/{conn}", key)
        assert status == 200, info
        assert info["id"] == conn and info["user"] == "alice" and info["node"] == "local"
        assert sorted(info["topics"]) == sorted([topic, "chat.room1"])
        assert info["connectedAt"].endswith("Z")
        await ws.send(json.dumps({"type": "unsubscribe", "topic": topic}))
        assert await recv_json(ws) == {"type": "unsubscribed", "topic": topic}
        assert request(srv, "GET", f"/api/v1/connections/{conn}", key)[2]["topics"] == [
            "chat.room1"]
        # The API may remove a client-made subscription like its own.
        assert request(srv, "DELETE", f"/api/v1/subscribes?topic=chat.room1&connectionID={conn}",
                       key)[0] == 204
        assert request(srv, "GET", f"/api/v1/connections/{conn}", key)[2]["topics"] == []
        assert request(srv, "DELETE", f"/api/v1/connections/{conn}")[0] == 401
        assert request(srv, "DELETE", f"/api/v1/connections/{conn}", key)[0] == 204
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4000 and ws.close_reason == "disconnected by server"
        deadline = time.time() + 5
        while request(srv, "GET", f"/api/v1/connections/{conn}", key)[0] != 404:
            assert time.time() < deadline
            await asyncio.sleep(0.05)
        assert request(srv, "DELETE", f"/api/v1/connections/{conn}", key)[0] == 404

    run(scenario())


def test_client_subscribe_without_tokens(start, server, topic):
    async def scenario():
        # The loopback development default (the shared test server): any topic.
        ws, conn = await ws_connect(server)
        await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
        assert await recv_json(ws) == {"type": "subscribed", "topic": topic}
        status, _, info = request(server, "GET", f"/api/v1/connections/{conn}")
        assert status == 200 and info["user"] is None and info["topics"] == [topic]
        await ws.close()
        # With API keys but no tokens, a client cannot pick its own topics.
        srv = start("--api-key", KEY1)
        ws, _ = await ws_connect(srv)
        await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
        assert (await recv_json(ws))["code"] == "forbidden"
        await ws.close()

    run(scenario())


def non_loopback_address():
    """An address of this machine other than loopback, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


def test_open_client_subscribe_is_for_this_machine_only(start, topic):
    """In the development default (no key, no tokens) a client may subscribe to
    any topic by itself only from a loopback address: the WebSocket port
    listens on every interface, and a network peer must not read every
    topic by asking."""
    ip = non_loopback_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback address")
    srv = start(ws_host="0.0.0.0")
    wait_for_port(srv.ws_port)

    async def scenario():
        # Under its own address the network peer does not even get an
        # upgrade: the keyless server answers loopback names only (421).
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
            await websockets.connect(f"ws://{ip}:{srv.ws_port}/api/v1/ws")
        assert refused.value.status_code == 421
        # Claiming a loopback Host, it connects, but may not subscribe.
        for host, answer in ((ip, "forbidden"), ("127.0.0.1", None)):
            ws = await websockets.connect(f"ws://127.0.0.1:{srv.ws_port}/api/v1/ws", host=host,
                                          port=srv.ws_port)
            assert (await recv_json(ws))["type"] == "connected"
            await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
            reply = await recv_json(ws)
            if answer:
                assert reply["type"] == "error" and reply["code"] == answer, reply
            else:
                assert reply == {"type": "subscribed", "topic": topic}
            await ws.close()

    run(scenario())


def wait_for_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} did not open")


# ---- abuse limits ----------------------------------------------------------------

def test_per_ip_connection_cap_and_connect_rate(start):
    srv = start("--max-connections-per-ip", "2", "--connect-rate", "1000")

    async def scenario():
        held = [await ws_connect(srv) for _ in range(2)]
        status, raw = ws_status(srv, "/api/v1/ws")
        assert status == 429 and b"too_many_requests" in raw
        await held[0][0].close()
        await asyncio.sleep(0.2)
        ws, _ = await ws_connect(srv)  # a slot is free again
        for w in (ws, held[1][0]):
            await w.close()

    run(scenario())
    srv = start("--connect-rate", "1")  # 1 a second, bursts of 2
    assert [ws_status(srv, "/api/v1/ws")[0] for _ in range(3)] == [101, 101, 429]
    time.sleep(1.1)
    assert ws_status(srv, "/api/v1/ws")[0] == 101


def test_client_message_rate_and_subscription_cap(start):
    srv = start("--client-message-rate", "2", "--max-subscriptions", "2")

    async def scenario():
        ws, _ = await ws_connect(srv)
        for t in ("a", "b", "c"):
            await ws.send(json.dumps({"type": "subscribe", "topic": t}))
        replies = [await recv_json(ws) for _ in range(3)]
        # The refusal needs no store round trip, so it may come first.
        assert sorted(r.get("code") or r["type"] for r in replies) == [
            "subscribed", "subscribed", "too_many_subscriptions"]
        for _ in range(20):  # a burst far over 2/s
            await ws.send("x")
        codes = []
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            while True:
                codes.append((await recv_json(ws))["code"])
        assert "rate_limited" in codes
        assert ws.close_code == 1008

    run(scenario())
