"""Deletion (issue 17, item 2; docs/api.md "Deletion"): DELETE
/api/v1/messages/{id}?topic=T and DELETE /api/v1/topics/{topic}. A deleted
message is gone from the history, from get-by-id and from every resume;
connected WebSocket and SSE subscribers are told with a "deleted" frame,
after the message itself; a deleted topic loses its history, its settings
and its subscriptions. Runs on SQLite, and on MariaDB with
HOUSTON_TEST_DB_URL (make e2e-mariadb); the scale-out test runs two
notifiers on a throwaway MariaDB and Redis."""
import asyncio
import hashlib
import http.client
import json
import time

import pytest
import websockets

from conftest import call, expect_silence, recv_json, run
from services import have


def publish(srv, topic, content="x"):
    status, body = call(srv, "POST", "/api/v1/messages", {"topic": topic, "content": content})
    assert status == 201, body
    return body["id"]


def subscribe(srv, topic, cid):
    status, body = call(srv, "POST", "/api/v1/subscribes", {"topic": topic, "connectionID": cid})
    assert status in (200, 201), body


def history(srv, topic, **query):
    q = "&".join(f"{k}={v}" for k, v in {"topic": topic, **query}.items())
    status, body = call(srv, "GET", f"/api/v1/messages?{q}")
    assert status == 200, body
    return body


def ids_of(page):
    return [m["id"] for m in page["messages"]]


async def open_ws(srv, query=""):
    ws = await websockets.connect(srv.ws_url + query, max_size=None)
    hello = await recv_json(ws)
    assert hello["type"] == "connected", hello
    return ws, hello


class EventStream:
    """A real HTTP client reading text/event-stream."""

    def __init__(self, port, path="/api/v1/sse"):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", path)
        self.response = self.conn.getresponse()
        assert self.response.status == 200

    def event(self):
        fields = {}
        while True:
            line = self.response.fp.readline().decode()
            assert line, "stream ended"
            line = line.rstrip("\n")
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = fields[name] + "\n" + value if name in fields else value

    def close(self):
        self.conn.close()


def test_deleted_message_is_gone_from_history_and_by_id(server, topic):
    ids = [publish(server, topic, str(i)) for i in range(3)]
    status, body = call(server, "DELETE", f"/api/v1/messages/{ids[1]}?topic={topic}")
    assert status == 204 and body is None, body
    assert ids_of(history(server, topic, forward="true")) == [ids[0], ids[2]]
    assert ids_of(history(server, topic)) == [ids[2], ids[0]]
    status, body = call(server, "GET", f"/api/v1/messages/{ids[1]}")
    assert status == 404 and body["error"]["code"] == "not_found", body
    # A pager whose cursor is the deleted id goes on from it (ids compare,
    # rows need not exist), both ways.
    assert ids_of(history(server, topic, forward="true", lastID=ids[1])) == [ids[2]]
    assert ids_of(history(server, topic, lastID=ids[1])) == [ids[0]]
    # Idempotent in effect: a retry finds nothing and says so.
    status, body = call(server, "DELETE", f"/api/v1/messages/{ids[1]}?topic={topic}")
    assert status == 404 and body["error"]["code"] == "not_found", body
    # The topic has it no longer; another topic never had it.
    status, body = call(server, "DELETE", f"/api/v1/messages/{ids[0]}?topic={topic}-other")
    assert status == 404, body
    assert ids_of(history(server, topic, forward="true")) == [ids[0], ids[2]]
    status, info = call(server, "GET", f"/api/v1/topics/{topic}")
    assert info["messages"] == 2 and info["firstID"] == ids[0], info
    # Later ids stay above the deleted ones (the topic's sequence is kept).
    status, body = call(server, "DELETE", f"/api/v1/messages/{ids[2]}?topic={topic}")
    assert status == 204
    assert publish(server, topic, "after") > ids[2]


@pytest.mark.parametrize("path, status, code", [
    ("/api/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV", 400, "missing_field"),
    ("/api/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV?topic=", 400, "missing_field"),
    ("/api/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV?topic=bad%20topic", 400, "invalid_field"),
    ("/api/v1/messages/not-an-id?topic=t", 400, "invalid_field"),
    ("/api/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV?topic=nothing-here", 404, "not_found"),
    ("/api/v1/topics/bad%20topic", 400, "invalid_field"),
    ("/api/v1/topics/never-used-topic-del", 404, "not_found"),
])
def test_bad_deletions_have_an_error_body(server, path, status, code):
    got, body = call(server, "DELETE", path)
    assert got == status, body
    assert body["error"]["code"] == code and body["error"]["message"], body


def test_live_websocket_and_sse_subscribers_get_deleted_after_the_message(server, topic):
    async def scenario():
        ws, hello = await open_ws(server)
        subscribe(server, topic, hello["connectionID"])
        sse = EventStream(server.ws_port)
        hello_sse = json.loads(sse.event()["data"])
        subscribe(server, topic, hello_sse["connectionID"])
        ids = [publish(server, topic, str(i)) for i in range(2)]
        status, _ = call(server, "DELETE", f"/api/v1/messages/{ids[0]}?topic={topic}")
        assert status == 204
        frames = [await recv_json(ws) for _ in range(3)]
        assert [f["type"] for f in frames] == ["message", "message", "deleted"], frames
        assert frames[2] == {"type": "deleted", "topic": topic, "id": ids[0]}
        events = [await asyncio.to_thread(sse.event) for _ in range(3)]
        assert [e["event"] for e in events] == ["message", "message", "deleted"], events
        assert json.loads(events[2]["data"]) == {"type": "deleted", "topic": topic, "id": ids[0]}
        assert "id" not in events[2]  # Last-Event-ID stays the last message's
        await expect_silence(ws)
        await ws.close()
        sse.close()
    run(scenario())


def test_a_resume_never_replays_a_deleted_message(fresh_server, topic):
    srv = fresh_server("--resume-window", "30s")

    async def scenario():
        ws, hello = await open_ws(srv)
        token = hello["resumeToken"]
        subscribe(srv, topic, hello["connectionID"])
        first = publish(srv, topic, "seen")
        assert (await recv_json(ws))["message"]["id"] == first
        ws.transport.abort()
        await asyncio.sleep(0.3)
        ids = [publish(srv, topic, str(i)) for i in range(3)]
        status, _ = call(srv, "DELETE", f"/api/v1/messages/{ids[1]}?topic={topic}")
        assert status == 204
        # The cursor before the deleted id: the rest, without it.
        ws, hello = await open_ws(srv, f"?resume={token}&lastID={first}")
        assert hello["resumed"] is True and hello["replayed"] == 2, hello
        assert "pruned" not in hello or hello["pruned"] is False, hello
        got = [(await recv_json(ws))["message"]["id"] for _ in range(2)]
        assert got == [ids[0], ids[2]]
        await expect_silence(ws)
        token = hello["resumeToken"]
        ws.transport.abort()
        await asyncio.sleep(0.3)
        # The cursor IS the deleted id: it resumes after it.
        ws, hello = await open_ws(srv, f"?resume={token}&lastID={ids[1]}")
        assert hello["resumed"] is True and hello["replayed"] == 1, hello
        assert (await recv_json(ws))["message"]["id"] == ids[2]
        live = publish(srv, topic, "live")
        assert (await recv_json(ws))["message"]["id"] == live
        await ws.close()
    run(scenario())


def test_deleting_a_topic_removes_history_settings_and_subscriptions(server, topic):
    async def scenario():
        status, _ = call(server, "PUT", f"/api/v1/topics/{topic}", {"retentionCount": 100})
        assert status == 200
        ws, hello = await open_ws(server)
        cid = hello["connectionID"]
        subscribe(server, topic, cid)
        subscribe(server, topic + ".kept", cid)
        ids = [publish(server, topic, str(i)) for i in range(3)]
        for i in ids:
            assert (await recv_json(ws))["message"]["id"] == i
        status, _ = call(server, "DELETE", f"/api/v1/topics/{topic}")
        assert status == 204
        assert await recv_json(ws) == {"type": "deleted", "topic": topic}
        status, body = call(server, "GET", f"/api/v1/topics/{topic}")
        assert status == 404, body
        status, subs = call(server, "GET", f"/api/v1/subscribes?topic={topic}")
        assert status == 200 and subs == [], subs
        status, conn = call(server, "GET", f"/api/v1/connections/{cid}")
        assert conn["topics"] == [topic + ".kept"], conn
        page = history(server, topic, forward="true")
        assert page["messages"] == [] and page["pruned"] is True, page
        status, body = call(server, "DELETE", f"/api/v1/topics/{topic}")
        assert status == 404 and body["error"]["code"] == "not_found", body
        # The connection no longer gets the topic; its other topic goes on.
        later = publish(server, topic, "after")
        assert later > ids[-1]
        kept = publish(server, topic + ".kept", "kept")
        assert (await recv_json(ws))["message"]["id"] == kept
        await expect_silence(ws)
        # The topic starts again with the default retention.
        status, info = call(server, "GET", f"/api/v1/topics/{topic}")
        assert info["messages"] == 1 and info["overrides"] == [], info
        await ws.close()
    run(scenario())


def test_a_large_topic_is_deleted_in_steps(fresh_server, topic):
    srv = fresh_server()
    count = 1300  # three steps of the store's 500 rows
    conn = http.client.HTTPConnection("127.0.0.1", srv.api_port, timeout=10)
    for i in range(count):
        conn.request("POST", "/api/v1/messages", json.dumps({"topic": topic, "content": str(i)}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 201
    conn.request("DELETE", f"/api/v1/topics/{topic}")
    r = conn.getresponse()
    r.read()
    assert r.status == 204
    conn.close()
    assert call(srv, "GET", f"/api/v1/topics/{topic}")[0] == 404
    logs = srv.logs()
    assert f"deleted topic {topic}: {count} messages" in logs, logs[-2000:]


def test_deletion_needs_the_api_key_and_is_audited(fresh_server, topic):
    key = "del-test-key-0123456789"
    srv = fresh_server("--api-key", key)

    def request(method, path, with_key):
        conn = http.client.HTTPConnection("127.0.0.1", srv.api_port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if with_key:
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps({"topic": topic, "content": "x"}) if method == "POST" else None
        conn.request(method, path, body, headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, json.loads(data) if data.strip() else None

    status, msg = request("POST", "/api/v1/messages", True)
    assert status == 201
    for path in (f"/api/v1/messages/{msg['id']}?topic={topic}", f"/api/v1/topics/{topic}"):
        status, body = request("DELETE", path, False)
        assert status == 401 and body["error"]["code"] == "unauthorized", body
    assert request("DELETE", f"/api/v1/messages/{msg['id']}?topic={topic}", True)[0] == 204
    status, msg = request("POST", "/api/v1/messages", True)
    assert request("DELETE", f"/api/v1/topics/{topic}", True)[0] == 204
    logs = srv.logs()
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:8]
    assert key not in logs
    audit = [line for line in logs.splitlines() if "audit:" in line]
    assert len(audit) == 2, audit
    assert "from 127.0.0.1" in audit[0] and f"API key {fingerprint}" in audit[0], audit
    assert f"of topic {topic}" in audit[0]
    assert f"deleted topic {topic}: 1 messages" in audit[1] and "0 subscriptions" in audit[1]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                    reason="redis-server and mariadb-server are not installed")
def test_scaleout_both_notifiers_get_the_deletions(tmp_path):
    from test_scaleout import connect_to, running_cluster

    with running_cluster(tmp_path) as cluster:
        api = cluster["api_port"]

        async def scenario():
            clients = []
            for node in ("a", "b"):
                ws, cid = await connect_to(cluster["ws"][node])
                clients.append(ws)
                await asyncio.sleep(0.3)  # registered in the directory
                subscribe(api, "del.t", cid)
            ids = [publish(api, "del.t", str(i)) for i in range(3)]
            status, _ = call(api, "DELETE", f"/api/v1/messages/{ids[1]}?topic=del.t")
            assert status == 204
            for ws in clients:
                frames = [await recv_json(ws, timeout=10) for _ in range(4)]
                assert [f.get("message", {}).get("id") for f in frames[:3]] == ids, frames
                assert frames[3] == {"type": "deleted", "topic": "del.t", "id": ids[1]}, frames
            status, body = call(api, "GET", f"/api/v1/messages/{ids[1]}")
            assert status == 404, body
            status, _ = call(api, "DELETE", "/api/v1/topics/del.t")
            assert status == 204
            for ws in clients:
                assert await recv_json(ws, timeout=10) == {"type": "deleted", "topic": "del.t"}
            status, subs = call(api, "GET", "/api/v1/subscribes?topic=del.t")
            assert subs == [], subs
            publish(api, "del.t", "after")
            for ws in clients:
                await expect_silence(ws, timeout=1.0)
                await ws.close()
        run(scenario(), timeout=60)
