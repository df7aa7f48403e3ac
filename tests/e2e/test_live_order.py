"""Live order in the embedded mode (docs/scaling.md, "Live order"): one
process, the in-process bus, events in commit order - the notifier's order
check runs but never holds a message. Publishes from several threads at
once to one topic; two WebSocket clients (one subscribed through the API,
one by itself) get every message once, in id order, and
houston_live_gaps_total stays 0."""
import asyncio
import http.client
import json
import threading

import websockets

from conftest import call

PUBLISHES = 600
THREADS = 6


def publish_many(port, topic, first, count, ids, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for i in range(first, first + count):
            conn.request("POST", "/api/v1/messages",
                         body=json.dumps({"topic": topic, "content": f"e{i}", "author": "t"}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = json.loads(r.read())
            if r.status != 201:
                errors.append((r.status, body))
                return
            ids[i] = body["id"]
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))
    finally:
        conn.close()


def counter(srv, name):
    conn = http.client.HTTPConnection("127.0.0.1", srv.api_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_embedded_mode_never_holds(fresh_server, topic):
    srv = fresh_server()

    async def go():
        api_ws = await websockets.connect(srv.ws_url, max_queue=None)
        hello = json.loads(await api_ws.recv())
        status, body = await asyncio.to_thread(
            call, srv, "POST", "/api/v1/subscribes",
            {"topic": topic, "connectionID": hello["connectionID"]})
        assert status == 201, body
        own_ws = await websockets.connect(srv.ws_url, max_queue=None)
        json.loads(await own_ws.recv())
        await own_ws.send(json.dumps({"type": "subscribe", "topic": topic}))
        assert json.loads(await own_ws.recv())["type"] == "subscribed"

        ids, errors = [None] * PUBLISHES, []
        per = PUBLISHES // THREADS
        threads = [threading.Thread(target=publish_many,
                                    args=(srv.api_port, topic, n * per, per, ids, errors))
                   for n in range(THREADS)]
        for t in threads:
            t.start()
        got = [[], []]

        async def receive(ws, out):
            while len(out) < PUBLISHES:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if frame.get("type") == "message":
                    out.append(frame["message"]["id"])

        await asyncio.gather(receive(api_ws, got[0]), receive(own_ws, got[1]))
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        await api_ws.close()
        await own_ws.close()
        return ids, got, errors

    ids, got, errors = asyncio.run(go())
    assert not errors, errors[:3]
    for received in got:
        assert sorted(received) == sorted(ids)
        assert all(a < b for a, b in zip(received, received[1:])), "out of id order"
    assert counter(srv, "houston_live_gaps_total") == 0
    assert counter(srv, "houston_live_gap_closes_total") == 0
