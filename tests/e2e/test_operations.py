"""Health, readiness and metrics (Prometheus text, checked by promtool)."""
import re
import subprocess

from conftest import connect, http, run


def test_health_and_readiness_on_both_ports(server):
    for port in (server.api_port, server.ws_port):
        r = http("GET", f"http://127.0.0.1:{port}/healthz")
        assert r.status == 200 and r.json == {"status": "ok"}
        r = http("GET", f"http://127.0.0.1:{port}/readyz")
        assert r.status == 200 and r.json == {"status": "ready"}


def metric(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} missing"
    return float(m.group(1))


def test_metrics_count_what_happened_and_pass_promtool(fresh_server):
    srv = fresh_server()

    async def go():
        ws, cid = await connect(srv)
        http("POST", f"{srv.api}/api/v1/subscribes", "topic=m", f"connectionID={cid}")
        for i in range(3):
            http("POST", f"{srv.api}/api/v1/messages", "topic=m", f"content={i}")
        for _ in range(3):
            await ws.recv()
        http("GET", f"{srv.api}/api/v1/nothing")
        r = http("GET", f"{srv.api}/metrics")
        await ws.close()
        return r
    r = run(go())
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert metric(text, "houston_connections") == 1
    assert metric(text, "houston_subscriptions") == 1
    assert metric(text, "houston_topics") == 1
    assert metric(text, "houston_messages_published_total") == 3
    assert metric(text, "houston_deliveries_total") == 3
    assert metric(text, "houston_publish_commit_seconds_count") == 3
    assert metric(text, "houston_publish_to_socket_seconds_count") == 3
    assert metric(text, 'houston_http_responses_total{status="201"}') == 4
    assert metric(text, 'houston_http_responses_total{status="404"}') == 1
    assert metric(text, "houston_bytes_sent_total") > 0
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_docs_list_exactly_the_metrics_exposed(server):
    """docs/api.md's table of metrics is the exposition's # TYPE lines (which
    come from the one table in core/metrics.c): same names, same types."""
    import pathlib
    text = http("GET", f"{server.api}/metrics").text
    exposed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    api_md = pathlib.Path(__file__).resolve().parents[2] / "docs" / "api.md"
    section = api_md.read_text().split("### `GET /metrics`", 1)[1].split("\n### ", 1)[0]
    documented = {name: kind for name, kind in
                  re.findall(r"^\| `(houston_[a-z_]+)(?:\{[a-z]+\})?` \| (\w+) \|", section, re.M)}
    assert documented == exposed


def test_json_logs_are_one_object_per_line(fresh_server):
    import json
    srv = fresh_server("--log-format", "json")
    http("GET", f"{srv.api}/api/v1/messages", "topic==j")
    srv.stop()
    lines = [line for line in srv.logs().splitlines() if line.strip()]
    assert len(lines) >= 3
    for line in lines:
        entry = json.loads(line)
        assert set(entry) == {"time", "level", "msg"}
        assert entry["level"] in ("debug", "info", "warn", "error")


def test_houston_config_shows_sources_and_masks_secrets(tmp_path):
    from conftest import BIN
    conf = tmp_path / "houston.conf"
    conf.write_text("api_addr = 127.0.0.1:1\ndb = mysql://u:topsecret@h:3306/d\n")
    out = subprocess.run([BIN, "config", "--config", str(conf), "--max-content", "2k"],
                         capture_output=True, text=True, env={"HOUSTON_PING_INTERVAL": "5s"})
    assert out.returncode == 0, out.stderr
    assert "topsecret" not in out.stdout
    assert re.search(r"^api-addr\s+= 127\.0\.0\.1:1\s+# file$", out.stdout, re.M)
    assert re.search(r"^max-content\s+= 2048\s+# flag$", out.stdout, re.M)
    assert re.search(r"^ping-interval\s+= 5000ms\s+# environment$", out.stdout, re.M)
    assert re.search(r"^db\s+= mysql://u:\*\*\*@h:3306/d\s+# file$", out.stdout, re.M)


def test_metrics_addr_serves_metrics_and_health(fresh_server):
    from conftest import free_port
    port = free_port()
    srv = fresh_server("--metrics-addr", f"127.0.0.1:{port}")
    r = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert r.status == 200 and "houston_connections 0" in r.text
    assert http("GET", f"http://127.0.0.1:{port}/readyz").json == {"status": "ready"}
    assert http("GET", f"http://127.0.0.1:{port}/api/v1/messages", "topic==x").status == 404
    assert srv.stop() == 0


def test_metrics_listener_takes_the_http_limits_from_the_settings(fresh_server):
    """--metrics-addr gets the limits of the other listeners (one function
    fills them all); it had the built-in defaults (a 10 s head deadline,
    unlimited keep-alive) whatever the settings said."""
    import socket
    import time
    from conftest import free_port, read_to_eof
    port = free_port()
    fresh_server("--metrics-addr", f"127.0.0.1:{port}", "--header-timeout", "300ms",
                 "--keepalive-requests", "2")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start = time.monotonic()
        data = read_to_eof(s)
        assert time.monotonic() - start < 2
        assert data.startswith(b"HTTP/1.1 408"), data[:100]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2)
        data = read_to_eof(s)
        heads = [h.lower() for h in data.split(b"HTTP/1.1 ")[1:]]
        assert len(heads) == 2, data
        assert b"connection: close" not in heads[0] and b"connection: close" in heads[1]
