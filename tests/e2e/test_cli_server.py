"""The CLI finds its server (issue 19 item 4): GET /api/v1/info says where the
WebSocket is, `houston sub --server` asks it, https:// and wss:// with a
private CA (--ca-file), --insecure, and client tokens (--token,
HOUSTON_TOKEN). Every server here runs on free ports, never 9001/9002."""
import base64
import hashlib
import hmac
import http.client as httplib
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import BIN, free_port

SECRET = "cli-test-secret-" + "s" * 32
KEY = "k-cli-" + "a" * 40


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSTON_")}
    env.update(extra)
    return env


def cli(*args, timeout=20, **extra):
    return subprocess.run([BIN, *args], env=clean_env(**extra), capture_output=True, text=True,
                          timeout=timeout)


class Sub:
    """houston sub in the background, its stdout lines collected."""

    def __init__(self, *args, **env):
        self.proc = subprocess.Popen([BIN, "sub", *args], env=clean_env(**env),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def wait_lines(self, count, deadline=15):
        end = time.monotonic() + deadline
        while len(self.lines) < count and time.monotonic() < end and self.proc.poll() is None:
            time.sleep(0.02)
        return self.lines

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(10)
        self.reader.join(5)
        return code, self.proc.stderr.read()


def get(port, path, headers=None, context=None):
    cls = httplib.HTTPSConnection if context else httplib.HTTPConnection
    kwargs = {"context": context} if context else {}
    conn = cls("127.0.0.1", port, timeout=10, **kwargs)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(body) if body.strip() else None
    finally:
        conn.close()


def wait_subscribed(api_port, topic, headers=None, context=None, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status, _, body = get(api_port, f"/api/v1/subscribes?topic={topic}", headers, context)
        if status == 200 and body:
            return
        time.sleep(0.05)
    raise AssertionError(f"no subscription on {topic}")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(exp_in=300):
    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": "alice", "iat": now, "exp": now + exp_in,
                              "topics": ["*"]}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def subscribe_and_receive(api_url, topic, sub_args=(), pub_args=(), sub_env=None, pub_env=None):
    """houston sub on topic, one houston pub, the line sub prints."""
    sub = Sub("--server", api_url, *sub_args, topic, **(sub_env or {}))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sub.proc.poll() is None:
            # Subscribed once the API lists it; pub goes through the same CLI.
            r = cli("pub", "--server", api_url, *pub_args, topic, "probe-" + topic,
                    **(pub_env or {}))
            assert r.returncode == 0, r.stderr
            if sub.wait_lines(1, deadline=0.5):
                break
        lines = sub.wait_lines(1)
    finally:
        code, err = sub.stop()
    return lines, code, err


# ---- GET /api/v1/info ---------------------------------------------------------

def test_info_says_where_the_websocket_is(fresh_server):
    srv = fresh_server()
    status, headers, info = get(srv.api_port, "/api/v1/info")
    assert status == 200, info
    assert headers.get("Cache-Control") == "no-store"
    assert info["wsURL"] == f"ws://127.0.0.1:{srv.ws_port}/api/v1/ws"
    assert info["sseURL"] == f"http://127.0.0.1:{srv.ws_port}/api/v1/sse"
    assert info["mode"] == "embedded" and info["tls"] is False
    assert info["roles"] == ["publisher", "notifier", "consumer"]
    assert isinstance(info["version"], str) and info["version"]
    assert info["auth"] == {"apiKey": False, "clientToken": False}
    assert info["limits"] == {"maxBody": 1048576, "maxContent": 65536, "maxSubscriptions": 1000,
                              "maxWsMessage": 65536, "historyPageMax": 1000, "topicMax": 128,
                              "maxBatch": 1000}
    # The host the client used, on the WebSocket port.
    _, _, info = get(srv.api_port, "/api/v1/info", {"Host": f"localhost:{srv.api_port}"})
    assert info["wsURL"] == f"ws://localhost:{srv.ws_port}/api/v1/ws"


def test_info_honours_public_ws_url_and_needs_the_key(fresh_server):
    srv = fresh_server("--api-key", KEY, "--public-ws-url", "wss://push.example/houston",
                       "--jwt-secret", SECRET, "--max-subscriptions", "7")
    status, _, body = get(srv.api_port, "/api/v1/info")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, _, info = get(srv.api_port, "/api/v1/info", {"Authorization": f"Bearer {KEY}"})
    assert status == 200, info
    assert info["wsURL"] == "wss://push.example/houston/api/v1/ws"
    assert info["sseURL"] == "https://push.example/houston/api/v1/sse"
    assert info["auth"] == {"apiKey": True, "clientToken": True}
    assert info["limits"]["maxSubscriptions"] == 7


def test_info_behind_a_trusted_proxy_is_the_proxy_origin(fresh_server):
    srv = fresh_server("--api-key", KEY, "--trusted-proxies", "127.0.0.1")
    headers = {"Authorization": f"Bearer {KEY}", "Host": "houston.example",
               "X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
    _, _, info = get(srv.api_port, "/api/v1/info", headers)
    assert info["wsURL"] == "wss://houston.example/api/v1/ws"
    assert info["sseURL"] == "https://houston.example/api/v1/sse"
    # Not relayed: X-Forwarded-Proto from anyone else means nothing.
    srv2 = fresh_server("--api-key", KEY)
    _, _, info = get(srv2.api_port, "/api/v1/info", headers)
    assert info["wsURL"] == f"ws://houston.example:{srv2.ws_port}/api/v1/ws"


def test_bad_public_ws_url_is_refused_at_start(tmp_path):
    r = subprocess.run([BIN, "serve", "--db", f"sqlite:{tmp_path}/x.db", "--ws-addr",
                        f"127.0.0.1:{free_port()}", "--api-addr", f"127.0.0.1:{free_port()}",
                        "--public-ws-url", "http://x.example/?a=b"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1 and "--public-ws-url" in r.stderr, r.stderr


# ---- houston sub --server ------------------------------------------------------

def test_sub_with_only_server_on_custom_ports_prints_messages(fresh_server, topic):
    """The issue's acceptance: houston sub --server http://127.0.0.1:PORT TOPIC
    with the WebSocket not on 9001."""
    srv = fresh_server()
    assert srv.ws_port != 9001 and srv.api_port != 9002
    lines, code, err = subscribe_and_receive(srv.api, topic)
    assert lines and lines[0]["topic"] == topic and lines[0]["content"] == "probe-" + topic, err
    assert code == 0, err


def test_ws_server_still_overrides_the_api(fresh_server, topic):
    srv = fresh_server()
    dead = free_port()
    r = cli("sub", "--server", srv.api, "--ws-server", f"ws://127.0.0.1:{dead}", topic)
    assert r.returncode == 1 and f"port {dead}" in r.stderr, r.stderr
    r = cli("sub", "--server", srv.api, topic, HOUSTON_WS_URL=f"ws://127.0.0.1:{dead}")
    assert r.returncode == 1 and f"port {dead}" in r.stderr, r.stderr
    lines, code, err = subscribe_and_receive(srv.api, topic,
                                             sub_args=("--ws-server", srv.ws_url))
    assert lines and lines[0]["topic"] == topic and code == 0, err


def test_an_older_server_without_info_falls_back_to_9001_with_a_note(topic):
    asked = []

    class Old(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = b'{"error":{"code":"not_found","message":"no route"}}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    old = HTTPServer(("127.0.0.1", 0), Old)
    threading.Thread(target=old.serve_forever, daemon=True).start()
    try:
        r = cli("sub", "--server", f"http://127.0.0.1:{old.server_port}", topic, timeout=30)
    finally:
        old.shutdown()
    assert asked[0] == "/api/v1/info"
    assert "no GET /api/v1/info" in r.stderr and "ws://127.0.0.1:9001/api/v1/ws" in r.stderr
    assert "--ws-server" in r.stderr and r.returncode == 1, r.stderr


# ---- https:// and wss:// -------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a certificate it signed for localhost and 127.0.0.1."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=houston cli test CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d


def test_info_over_tls_names_wss(fresh_server, pki):
    srv = fresh_server("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    _, _, info = get(srv.api_port, "/api/v1/info", context=ctx)
    assert info["wsURL"] == f"wss://127.0.0.1:{srv.ws_port}/api/v1/ws" and info["tls"] is True
    assert info["sseURL"] == f"https://127.0.0.1:{srv.ws_port}/api/v1/sse"


def test_https_and_wss_with_ca_file(fresh_server, pki, topic):
    srv = fresh_server("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    api = f"https://127.0.0.1:{srv.api_port}"
    ca = ("--ca-file", str(pki / "ca.pem"))
    lines, code, err = subscribe_and_receive(api, topic, sub_args=ca, pub_args=ca)
    assert lines and lines[0]["content"] == "probe-" + topic and code == 0, err
    assert "warning" not in err
    # By name too (the certificate's DNS entry), and HOUSTON_CA_FILE.
    r = cli("history", "--server", f"https://localhost:{srv.api_port}", topic,
            HOUSTON_CA_FILE=str(pki / "ca.pem"))
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["topic"] == topic, r.stderr
    r = cli("status", "--server", api, *ca)
    assert r.returncode == 0 and f"houston at {api}: ready" in r.stdout, r.stderr


def test_tls_without_ca_file_is_a_clear_verification_error(fresh_server, pki, topic):
    srv = fresh_server("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    api = f"https://127.0.0.1:{srv.api_port}"
    plain = fresh_server()
    # The last: the API is plain, the WebSocket (--ws-server) is the one
    # that fails verification.
    for args in (("pub", "--server", api, topic, "x"), ("sub", "--server", api, topic),
                 ("status", "--server", api),
                 ("sub", "--server", plain.api, "--ws-server", f"wss://127.0.0.1:{srv.ws_port}",
                  topic)):
        r = cli(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert "certificate" in r.stderr and "not accepted" in r.stderr, r.stderr
        assert "--ca-file" in r.stderr and "--insecure" in r.stderr, r.stderr
        assert "is houston running" not in r.stderr, r.stderr
    r = cli("status", "--server", api, "--ca-file", str(pki / "missing.pem"))
    assert r.returncode == 1 and "missing.pem" in r.stderr, r.stderr
    assert "No such file or directory" in r.stderr, r.stderr
    # A TLS client at a plain port says so.
    r = cli("pub", "--server", f"https://127.0.0.1:{plain.api_port}", topic, "x")
    assert r.returncode == 1 and "TLS handshake" in r.stderr, r.stderr


def test_insecure_skips_verification_with_a_warning(fresh_server, pki, topic):
    srv = fresh_server("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    api = f"https://127.0.0.1:{srv.api_port}"
    lines, code, err = subscribe_and_receive(api, topic, sub_args=("--insecure",),
                                             pub_args=("--insecure",))
    assert lines and lines[0]["content"] == "probe-" + topic and code == 0, err
    assert err.count("warning: --insecure") == 1, err
    r = cli("pub", "--server", api, "--insecure", topic, "y")
    assert r.returncode == 0 and "warning: --insecure" in r.stderr


# ---- client tokens ---------------------------------------------------------------

def test_token_is_sent_where_the_server_wants_one(fresh_server, topic):
    srv = fresh_server("--jwt-secret", SECRET)
    token = make_token()
    lines, code, err = subscribe_and_receive(srv.api, topic, sub_args=("--token", token))
    assert lines and lines[0]["topic"] == topic and code == 0, err
    lines, code, err = subscribe_and_receive(srv.api, topic + "e", sub_env={"HOUSTON_TOKEN": token})
    assert lines and code == 0, err
    # Without one: the server's reason, exit 1.
    r = cli("sub", "--server", srv.api, topic)
    assert r.returncode == 1 and "401" in r.stderr and "token is required" in r.stderr, r.stderr
    assert "--token or HOUSTON_TOKEN" in r.stderr and "is the notifier" not in r.stderr
    # A bad one is refused, and never shown.
    expired = make_token(exp_in=-600)
    r = cli("sub", "--server", srv.api, "--token", expired, topic)
    assert r.returncode == 1 and "401" in r.stderr, r.stderr
    assert expired not in r.stderr and expired.split(".")[2] not in r.stderr
    assert expired not in srv.logs()
    r = cli("sub", "--server", srv.api, "--token", "a\r\nX-Evil: 1", topic)
    assert r.returncode == 2 and "--token" in r.stderr and "X-Evil" not in r.stderr
