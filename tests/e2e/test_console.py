"""The web console's static files on the WebSocket port, and CORS on the API
port (what lets the console's origin call the API). The page itself is
driven in a real browser by tests/browser/console.spec.mjs."""
import json
import os
import shutil
import subprocess
import time
import types
from http.client import HTTPConnection

import pytest

from conftest import BIN, ROOT, Response, free_port, http, wait_port
from services import Redis, have
from test_scaleout import running_cluster

ULID = "01JDQ3M0Q4Y8W3Q2D6XH0S5A9B"


def web(name):
    return (ROOT / "web" / name).read_text()


# ---- static files --------------------------------------------------------------

def test_page_is_served_at_root_with_cache_and_security_headers(server):
    r = http("GET", f"http://127.0.0.1:{server.ws_port}/")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == web("index.html")
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["etag"].startswith('"') and len(r.headers["etag"]) == 18
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src" in csp


@pytest.mark.parametrize("name,content_type", [
    ("console.js", "text/javascript; charset=utf-8"),
    ("console.css", "text/css; charset=utf-8"),
    ("index.html", "text/html; charset=utf-8"),
])
def test_assets_have_their_content_type_and_are_the_files_of_web(server, name, content_type):
    r = http("GET", f"http://127.0.0.1:{server.ws_port}/console/{name}")
    assert r.status == 200
    assert r.headers["content-type"] == content_type
    assert r.text == web(name)  # compiled in at build time, byte for byte
    assert r.headers["cache-control"] == "no-cache" and "etag" in r.headers


def test_head_and_conditional_get(server):
    url = f"http://127.0.0.1:{server.ws_port}/console/console.js"
    full = http("GET", url)
    head = http("HEAD", url)
    assert head.status == 200 and head.text == ""
    assert head.headers["content-length"] == str(len(web("console.js").encode()))
    assert head.headers["etag"] == full.headers["etag"]
    again = http("GET", url, f"If-None-Match:{full.headers['etag']}")
    assert again.status == 304 and again.text == ""
    assert again.headers["etag"] == full.headers["etag"]
    other = http("GET", url, 'If-None-Match:"0000000000000000"')
    assert other.status == 200 and other.text == web("console.js")


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/..%2fCMakeLists.txt",
                                  "/console/", "/console"])
def test_unknown_asset_is_404_with_the_error_body(server, path):
    r = http("GET", f"http://127.0.0.1:{server.ws_port}{path}")
    assert r.status == 404
    assert r.json["error"]["code"] == "not_found"


def test_console_is_not_on_the_api_port(server):
    assert http("GET", f"{server.api}/").status == 404


# ---- CORS ------------------------------------------------------------------------

def call(srv, method, path, origin=None, headers=None, body=None):
    """One request with Python's http.client (HTTPie costs 0.3 s a call, and
    these tests make many)."""
    conn = HTTPConnection("127.0.0.1", srv.api_port, timeout=10)
    try:
        all_headers = dict(headers or {})
        if origin:
            all_headers["Origin"] = origin
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=all_headers)
        r = conn.getresponse()
        text = r.read().decode()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, text)
    finally:
        conn.close()


def api_routes():
    """Every API route path the binary serves, with {params} filled in."""
    out = subprocess.run([BIN, "routes"], capture_output=True, text=True, check=True).stdout
    paths = {line.split(" ", 2)[2] for line in out.splitlines() if line.startswith("api ")}
    return sorted(p.replace("{id}", ULID) for p in paths)


def preflight(srv, path, origin, method="POST"):
    return call(srv, "OPTIONS", path, origin, {
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type"})


def test_preflight_is_answered_on_every_api_route(server):
    origin = f"http://127.0.0.1:{server.ws_port}"
    for path in api_routes():
        r = preflight(server, path, origin)
        assert r.status == 204, path
        assert r.headers["access-control-allow-origin"] == origin, path
        assert "OPTIONS" in r.headers["allow"], path
        allowed_headers = r.headers["access-control-allow-headers"].lower()
        for name in ("authorization", "content-type", "idempotency-key"):
            assert name in allowed_headers, (path, name)
        assert int(r.headers["access-control-max-age"]) > 0
        assert r.headers["vary"] == "Origin"
    r = preflight(server, "/api/v1/subscribes", origin, "DELETE")
    methods = [m.strip() for m in r.headers["access-control-allow-methods"].split(",")]
    assert {"POST", "DELETE", "GET"} <= set(methods)


def test_answers_to_the_consoles_origins_carry_allow_origin_errors_too(server, topic):
    for host in ("127.0.0.1", "localhost", "[::1]"):
        origin = f"http://{host}:{server.ws_port}"
        ok = call(server, "GET", f"/api/v1/messages?topic={topic}", origin)
        assert ok.status == 200 and ok.headers["access-control-allow-origin"] == origin
        created = call(server, "POST", "/api/v1/messages", origin,
                       body={"topic": topic, "content": "x"})
        assert created.status == 201
        assert created.headers["access-control-allow-origin"] == origin
        for r in (call(server, "GET", "/api/v1/messages", origin),  # 400
                  call(server, "GET", "/nothing/here", origin),  # 404
                  call(server, "PUT", "/api/v1/messages", origin),  # 405
                  call(server, "POST", "/api/v1/messages", origin, body=[1])):  # 400
            assert r.status >= 400 and r.json["error"]
            assert r.headers["access-control-allow-origin"] == origin, r


def test_disallowed_or_absent_origin_gets_no_cors_headers(server, topic):
    for origin in ("http://evil.example", f"http://127.0.0.1:{server.api_port}",
                   f"https://127.0.0.1:{server.ws_port}"):
        r = call(server, "GET", f"/api/v1/messages?topic={topic}", origin)
        assert r.status == 200 and "access-control-allow-origin" not in r.headers
        p = preflight(server, "/api/v1/messages", origin)
        assert p.status == 204
        assert "access-control-allow-origin" not in p.headers
        assert "access-control-allow-methods" not in p.headers
    r = call(server, "GET", f"/api/v1/messages?topic={topic}")
    assert "access-control-allow-origin" not in r.headers and "vary" not in r.headers


def test_cors_origins_setting(fresh_server, topic):
    path = f"/api/v1/messages?topic={topic}"
    srv = fresh_server("--cors-origins", "https://app.example, http://other.example:8080/")
    for origin in ("https://app.example", "http://other.example:8080"):
        assert call(srv, "GET", path, origin).headers["access-control-allow-origin"] == origin
    # The list replaces the defaults.
    r = call(srv, "GET", path, f"http://127.0.0.1:{srv.ws_port}")
    assert "access-control-allow-origin" not in r.headers
    srv.stop()

    srv = fresh_server("--cors-origins", "*")
    r = call(srv, "GET", path, "http://any.example")
    assert r.headers["access-control-allow-origin"] == "*" and "vary" not in r.headers
    srv.stop()

    srv = fresh_server("--cors-origins", "none")
    r = call(srv, "GET", path, f"http://127.0.0.1:{srv.ws_port}")
    assert "access-control-allow-origin" not in r.headers


# ---- the Operations tab's numbers ---------------------------------------------------

def test_stats_is_the_json_twin_of_metrics(server, topic):
    http("POST", f"{server.api}/api/v1/messages", f"topic={topic}", "content=x")
    r = http("GET", f"{server.api}/api/v1/stats")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    stats = r.json
    assert abs(stats["at"] - time.time() * 1000) < 60000
    text = http("GET", f"{server.api}/metrics").text
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert list(stats["metrics"]) == names  # the same table, in the same order
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines()
                   if line and not line.startswith("#") and "{" not in line)
    m = stats["metrics"]
    # Counters move on between the two reads; these do not here.
    for name in ("houston_connections", "houston_resumes_total",
                 "houston_slow_client_disconnects_total"):
        assert m[name] == int(samples[name]), name
    assert 1 <= m["houston_messages_published_total"] <= int(
        samples["houston_messages_published_total"])
    h = m["houston_publish_commit_seconds"]
    assert len(h["le"]) == 13 and len(h["buckets"]) == 14 and h["le"][-1] == 5
    assert h["buckets"] == sorted(h["buckets"]) and h["buckets"][-1] == h["count"] >= 1
    assert m["houston_http_responses_total"]["201"] >= 1


def test_stats_and_nodes_want_the_api_key(fresh_server):
    srv = fresh_server("--api-key", "k1")
    for path in ("/api/v1/stats", "/api/v1/nodes"):
        r = http("GET", f"{srv.api}{path}")
        assert r.status == 401 and r.json["error"]["code"] == "unauthorized"
        assert http("GET", f"{srv.api}{path}", "Authorization:Bearer k1").status == 200


def test_nodes_in_the_embedded_mode_are_empty(server):
    r = http("GET", f"{server.api}/api/v1/nodes")
    assert r.status == 200
    assert r.json["mode"] == "embedded"
    assert r.json["notifiers"] == [] and r.json["consumers"] == []


@pytest.mark.skipif(not have("redis-server"), reason="redis-server is not installed")
def test_nodes_while_redis_is_away_is_503(tmp_path):
    """A scale-out publisher (its store may be SQLite) whose Redis went away."""
    redis = Redis(tmp_path)
    api = free_port()
    log = tmp_path / "publisher.log"
    proc = subprocess.Popen([BIN, "publisher", "--db", f"sqlite:{tmp_path}/h.db", "--redis",
                             redis.url, "--api-addr", f"127.0.0.1:{api}"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        wait_port(api, proc, log)
        srv = types.SimpleNamespace(api_port=api)
        deadline = time.time() + 10
        while True:  # once the bus is up: an answer from Redis, nobody in it
            r = call(srv, "GET", "/api/v1/nodes")
            if r.status == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert r.status == 200 and r.json["mode"] == "scale-out", r
        assert r.json["notifiers"] == [] and r.json["consumers"] == []
        assert r.json["partitions"] == 16
        redis.kill()
        r = call(srv, "GET", "/api/v1/nodes")
        assert r.status == 503 and r.json["error"]["code"] == "unavailable", r
        assert "Redis does not answer" in r.json["error"]["message"]
    finally:
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()[-3000:]
        redis.stop()


BROWSER = ROOT / "tests" / "browser"


@pytest.mark.timeout(180)
@pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                    reason="redis-server and mariadb-server are not installed")
@pytest.mark.skipif(not os.environ.get("HOUSTON_BROWSER"),
                    reason="a browser test: make browser runs it (HOUSTON_BROWSER=1)")
@pytest.mark.skipif(not (shutil.which("node") and os.path.exists("/usr/bin/chromium")
                         and (BROWSER / "node_modules" / "playwright-core").exists()),
                    reason="node, chromium and tests/browser/node_modules (make browser) are needed")
def test_operations_tab_in_the_scale_out_mode(tmp_path, monkeypatch):
    """The browser part is tests/browser/nodes.spec.mjs; it kills notifier b."""
    beat_ms = 1000
    # The page comes from notifier a's port, another origin than the
    # publisher's defaults allow (each role inherits the environment).
    monkeypatch.setenv("HOUSTON_CORS_ORIGINS", "*")
    with running_cluster(tmp_path, ("--heartbeat-interval", f"{beat_ms}ms")) as c:
        b = c["roles"].pop("b")  # killed by the page's test: not stopped cleanly
        try:
            out = subprocess.run(
                ["node", "--test", str(BROWSER / "nodes.spec.mjs")], cwd=ROOT,
                capture_output=True, text=True, timeout=150,
                env={**os.environ, "HOUSTON_OPS_WS": str(c["ws"]["a"]),
                     "HOUSTON_OPS_API": str(c["api_port"]), "HOUSTON_OPS_KILL": str(b.proc.pid),
                     "HOUSTON_OPS_BEAT_MS": str(beat_ms),
                     "HOUSTON_TEST_OUTPUT": os.environ.get("HOUSTON_TEST_OUTPUT",
                                                           str(ROOT / "build" / "test-output"))})
            print(out.stdout)
            assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
        finally:
            if b.proc.poll() is None:
                b.proc.kill()
            b.proc.wait(10)
