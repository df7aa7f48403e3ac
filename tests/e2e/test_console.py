"""The web console's static files on the WebSocket port, and CORS on the API
port (what lets the console's origin call the API). The page itself is
driven in a real browser by tests/browser/console.spec.mjs."""
import json
import subprocess
from http.client import HTTPConnection

import pytest

from conftest import BIN, ROOT, Response, http

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
