"""Resumable connections (docs/recovery.md): resume tokens, replay from the
history, acknowledgements, Server-Sent Events. Real binary, real clients:
Python websockets (a TCP reset with transport.abort()), http.client reading
an event stream."""
import asyncio
import http.client
import json
import threading
import time

import websockets

from conftest import call, recv_json, run


def publisher(srv, topic, count, pause=0.0, pad=0):
    """Publishes count messages ("0".."count-1", padded with pad spaces on
    the right) over one keep-alive HTTP connection in a thread; returns the
    thread (started)."""
    def work():
        conn = http.client.HTTPConnection("127.0.0.1", srv.api_port, timeout=10)
        for i in range(count):
            body = json.dumps({"topic": topic, "content": str(i) + " " * pad})
            conn.request("POST", "/api/v1/messages", body,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 201, r.status
            if pause:
                time.sleep(pause)
        conn.close()
    t = threading.Thread(target=work)
    t.start()
    return t


def publish(srv, topic, content):
    status, body = call(srv, "POST", "/api/v1/messages", {"topic": topic, "content": content})
    assert status == 201, body
    return body["id"]


def subscribe(srv, topic, cid):
    status, body = call(srv, "POST", "/api/v1/subscribes", {"topic": topic, "connectionID": cid})
    assert status in (200, 201), body


async def open_ws(srv, query=""):
    ws = await websockets.connect(srv.ws_url + query, max_size=None)
    hello = await recv_json(ws)
    assert hello["type"] == "connected", hello
    return ws, hello


async def read_messages(ws, got, until, timeout=15):
    """Appends (id, content) of message frames to got until len(got) == until."""
    end = time.monotonic() + timeout
    while len(got) < until:
        frame = await recv_json(ws, timeout=max(0.1, end - time.monotonic()))
        if frame["type"] == "message":
            got.append((frame["message"]["id"], frame["message"]["content"]))


def test_reset_mid_burst_then_resume_gets_every_message_once_in_order(fresh_server, topic):
    srv = fresh_server()

    async def scenario():
        ws, hello = await open_ws(srv)
        token, cid = hello["resumeToken"], hello["connectionID"]
        subscribe(srv, topic, cid)
        # Slow enough that the burst is still running when the client comes
        # back: the replay races with live publishes.
        pub = publisher(srv, topic, 1000, pause=0.001)
        got = []
        await read_messages(ws, got, 200)
        ws.transport.abort()  # a reset: no close frame
        await asyncio.sleep(0.3)
        ws, hello = await open_ws(srv, f"?resume={token}&lastID={got[-1][0]}")
        assert hello["resumed"] is True and hello["connectionID"] == cid, hello
        assert hello["replayed"] >= 0 and hello["resumeToken"]
        await read_messages(ws, got, 1000)
        await asyncio.to_thread(pub.join)
        await asyncio.sleep(0.3)
        extra = []
        try:
            await read_messages(ws, extra, 1, timeout=0.3)
        except (asyncio.TimeoutError, TimeoutError):
            pass
        await ws.close()
        return got, extra

    got, extra = run(scenario())
    assert extra == []
    assert [c for _, c in got] == [str(i) for i in range(1000)]
    ids = [i for i, _ in got]
    assert ids == sorted(ids) and len(set(ids)) == 1000


def test_expired_token_gives_a_new_connection_and_the_subscriptions_are_gone(fresh_server, topic):
    srv = fresh_server("--resume-window", "1s")

    async def scenario():
        ws, hello = await open_ws(srv)
        cid, token = hello["connectionID"], hello["resumeToken"]
        subscribe(srv, topic, cid)
        ws.transport.abort()
        await asyncio.sleep(0.3)
        # Within the window the subscriptions are kept.
        subs = call(srv, "GET", f"/api/v1/subscribes?connectionID={cid}")[1]
        assert [s["topic"] for s in subs] == [topic]
        await asyncio.sleep(1.5)
        ws, hello = await open_ws(srv, f"?resume={token}")
        assert hello["resumed"] is False and hello["connectionID"] != cid, hello
        assert "replayed" not in hello
        await ws.close()
        return cid

    cid = run(scenario())
    assert call(srv, "GET", f"/api/v1/subscribes?connectionID={cid}")[1] == []
    assert call(srv, "GET", f"/api/v1/connections/{cid}")[0] == 404


def test_forged_token_is_refused(fresh_server):
    srv = fresh_server()

    async def scenario():
        ws, hello = await open_ws(srv)
        token = hello["resumeToken"]
        ws.transport.abort()
        forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BA")
        ws2, hello2 = await open_ws(srv, f"?resume={forged}")
        assert hello2["resumed"] is False and hello2["connectionID"] != hello["connectionID"]
        await ws2.close()

    run(scenario())


def test_clean_close_removes_at_once(fresh_server, topic):
    srv = fresh_server()

    async def scenario():
        ws, hello = await open_ws(srv)
        cid = hello["connectionID"]
        subscribe(srv, topic, cid)
        await ws.close()  # 1000
        for _ in range(50):
            if call(srv, "GET", f"/api/v1/connections/{cid}")[0] == 404:
                break
            await asyncio.sleep(0.05)
        assert call(srv, "GET", f"/api/v1/subscribes?connectionID={cid}")[1] == []
        ws, hello2 = await open_ws(srv, f"?resume={hello['resumeToken']}")
        assert hello2["resumed"] is False
        await ws.close()

    run(scenario())


def test_acks_then_resume_without_last_id(fresh_server, topic):
    srv = fresh_server()

    async def scenario():
        ws, hello = await open_ws(srv)
        cid, token = hello["connectionID"], hello["resumeToken"]
        subscribe(srv, topic, cid)
        ids = [publish(srv, topic, f"m{i}") for i in range(5)]
        got = []
        await read_messages(ws, got, 5)
        await ws.send(json.dumps({"type": "ack", "id": ids[2]}))
        await ws.send(json.dumps({"type": "ack", "id": ids[1]}))  # lower: ignored
        await asyncio.sleep(1.5)  # acks are written once a second
        info = call(srv, "GET", f"/api/v1/connections/{cid}")[1]
        assert info["lastAck"] == ids[2], info
        ws.transport.abort()
        await asyncio.sleep(0.2)
        ws, hello = await open_ws(srv, f"?resume={token}")
        assert hello["resumed"] is True and hello["replayed"] == 2, hello
        again = []
        await read_messages(ws, again, 2)
        await ws.close()
        return ids, again

    ids, again = run(scenario())
    assert [i for i, _ in again] == ids[3:]


def test_replay_is_bounded_and_says_where_to_page_from(fresh_server, topic):
    srv = fresh_server("--resume-max-replay", "3")

    async def scenario():
        ws, hello = await open_ws(srv)
        subscribe(srv, topic, hello["connectionID"])
        first = publish(srv, topic, "first")
        await read_messages(ws, [], 1)
        ws.transport.abort()
        await asyncio.sleep(0.2)
        ids = [publish(srv, topic, f"m{i}") for i in range(5)]
        ws, hello = await open_ws(srv, f"?resume={hello['resumeToken']}&lastID={first}")
        assert hello["resumed"] and hello["replayed"] == 3 and hello["truncated"] is True
        assert hello["next"] == ids[2]
        got = []
        await read_messages(ws, got, 3)
        await ws.close()
        return ids, got

    ids, got = run(scenario())
    assert [i for i, _ in got] == ids[:3]


class EventStream:
    """A real HTTP client reading text/event-stream."""

    def __init__(self, srv, path, headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.ws_port, timeout=10)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()

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

    def reset(self):
        import socket
        import struct
        sock = self.response.fp.raw._sock if hasattr(self.response.fp, "raw") else None
        sock = sock or self.conn.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.response.close()
        self.conn.close()
        sock.close()


def test_sse_stream_and_resume_with_last_event_id(fresh_server, topic):
    srv = fresh_server()
    stream = EventStream(srv, "/api/v1/sse")
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type") == "text/event-stream"
    assert stream.response.getheader("Cache-Control") == "no-cache"
    hello = stream.event()
    assert hello["event"] == "connected"
    data = json.loads(hello["data"])
    cid, token = data["connectionID"], data["resumeToken"]
    assert data["resumed"] is False
    subscribe(srv, topic, cid)
    ids = [publish(srv, topic, f"line1\nm{i}") for i in range(3)]
    for i in range(3):
        ev = stream.event()
        assert ev["event"] == "message" and ev["id"] == ids[i]
        msg = json.loads(ev["data"])
        assert msg["id"] == ids[i] and msg["content"] == f"line1\nm{i}"
    stream.reset()
    time.sleep(0.2)
    later = [publish(srv, topic, f"later{i}") for i in range(2)]
    stream = EventStream(srv, f"/api/v1/sse?resume={token}",
                         {"Last-Event-ID": ids[-1]})
    data = json.loads(stream.event()["data"])
    assert data["resumed"] is True and data["connectionID"] == cid and data["replayed"] == 2
    assert [stream.event()["id"] for _ in range(2)] == later
    live = publish(srv, topic, "live")
    assert stream.event()["id"] == live
    stream.reset()


def test_a_replay_larger_than_max_pending_is_sent_whole(fresh_server, topic):
    """The replay is bounded by --resume-max-replay, not by --max-pending: a
    client that reads gets it all instead of being closed as slow."""
    srv = fresh_server("--max-pending", "64k")

    async def scenario():
        ws, hello = await open_ws(srv)
        subscribe(srv, topic, hello["connectionID"])
        first = publish(srv, topic, "first")
        await read_messages(ws, [], 1)
        ws.transport.abort()
        await asyncio.sleep(0.2)
        await asyncio.to_thread(publisher(srv, topic, 400, pad=400).join)  # about 200 KB of frames
        ws, hello = await open_ws(srv, f"?resume={hello['resumeToken']}&lastID={first}")
        assert hello["resumed"] and hello["replayed"] == 400, hello
        got = []
        await read_messages(ws, got, 400)
        await ws.close()
        return got

    got = run(scenario())
    assert [c.strip() for _, c in got] == [str(i) for i in range(400)]
