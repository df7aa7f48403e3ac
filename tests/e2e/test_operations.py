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
