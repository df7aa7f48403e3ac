"""Connect, subscribe, publish, receive; fan-out; unsubscribe; notifications."""
import asyncio
import re
import time
from datetime import datetime, timezone

import pytest

from conftest import ahttp, connect, expect_silence, http, recv_json, run

ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_ms(ulid):
    value = 0
    for ch in ulid[:10]:
        value = value * 32 + CROCKFORD.index(ch)
    return value


def test_connect_gives_a_ulid_on_both_paths(server):
    async def go():
        for path in ("/api/v1/ws", "/api/v1/ws/"):
            ws, cid = await connect(server, path)
            assert ULID.match(cid), cid
            await ws.close()
    run(go())


def test_connection_ids_are_unique_and_increasing(server):
    async def go():
        ids = []
        for _ in range(5):
            ws, cid = await connect(server)
            ids.append(cid)
            await ws.close()
        assert ids == sorted(ids) and len(set(ids)) == 5
    run(go())


def test_subscribe_publish_receive(server, topic):
    async def go():
        ws, cid = await connect(server)
        r = await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                        f"connectionID={cid}")
        assert r.status == 201, r
        assert r.json["topic"] == topic and r.json["connectionID"] == cid
        r = await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                        f"connectionID={cid}")
        assert r.status == 200, r

        r = await ahttp("POST", f"{server.api}/api/v1/publish", f"topic={topic}",
                        "content=Hello Houston.", "sender=alice")
        assert r.status == 201, r
        msg = r.json
        assert set(msg) == {"id", "topic", "content", "author", "createdAt"}
        assert ULID.match(msg["id"])
        assert msg["author"] == "alice" and msg["content"] == "Hello Houston."
        created = datetime.strptime(msg["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
        created_ms = int(created.replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", msg["createdAt"])
        assert created_ms == ulid_ms(msg["id"])
        frame = await recv_json(ws)
        assert frame == {"type": "message", "message": msg}

        r = await ahttp("POST", f"{server.api}/api/v1/messages", f"topic={topic}",
                        "content=second", "author=bob")
        assert r.status == 201 and r.json["author"] == "bob"
        assert await recv_json(ws) == {"type": "message", "message": r.json}
        await expect_silence(ws)
        await ws.close()
    run(go())


@pytest.mark.timing_bound("23 HTTPie runs inside run()'s 25 s; test_fanout.py covers the fan-out "
                          "under TSan")
def test_fan_out_two_topics_exactly_once_in_order(server, topic):
    other = topic + "-b"

    async def go():
        a, ca = await connect(server)
        b, cb = await connect(server)
        c, cc = await connect(server)
        for cid, t in ((ca, topic), (cb, topic), (cc, other)):
            r = await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={t}",
                            f"connectionID={cid}")
            assert r.status == 201
        sent = {topic: [], other: []}
        for i in range(20):
            t = topic if i % 3 else other
            r = await ahttp("POST", f"{server.api}/api/v1/messages", f"topic={t}",
                            f"content=m{i}", "author=x")
            assert r.status == 201
            sent[t].append(r.json)
        for ws, t in ((a, topic), (b, topic), (c, other)):
            got = [(await recv_json(ws))["message"] for _ in sent[t]]
            assert got == sent[t]
            await expect_silence(ws)
        for ws in (a, b, c):
            await ws.close()
    run(go())


def test_publish_order_is_kept_under_concurrency(server, topic):
    async def go():
        ws, cid = await connect(server)
        await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                    f"connectionID={cid}")
        results = await asyncio.gather(*[
            ahttp("POST", f"{server.api}/api/v1/messages", f"topic={topic}", f"content=c{i}")
            for i in range(12)])
        ids = sorted(r.json["id"] for r in results)
        got = [(await recv_json(ws))["message"]["id"] for _ in ids]
        assert got == ids  # delivered in id (= commit) order
        await ws.close()
    run(go())


def test_unsubscribe_one_then_all(server, topic):
    other = topic + "-o"

    async def go():
        ws, cid = await connect(server)
        for t in (topic, other):
            await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={t}",
                        f"connectionID={cid}")
        r = await ahttp("DELETE", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                        f"connectionID={cid}")
        assert r.status == 204 and r.text == ""
        await ahttp("POST", f"{server.api}/api/v1/messages", f"topic={topic}", "content=gone")
        r = await ahttp("POST", f"{server.api}/api/v1/messages", f"topic={other}", "content=kept")
        assert (await recv_json(ws))["message"]["content"] == "kept"
        await expect_silence(ws)
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"connectionID=={cid}")
        assert [s["topic"] for s in r.json] == [other]

        r = await ahttp("DELETE", f"{server.api}/api/v1/subscribes", f"connectionID={cid}")
        assert r.status == 204
        await ahttp("POST", f"{server.api}/api/v1/messages", f"topic={other}", "content=gone")
        await expect_silence(ws)
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"connectionID=={cid}")
        assert r.json == []
        await ws.close()
    run(go())


def test_unsubscribe_through_the_query_string(server, topic):
    async def go():
        ws, cid = await connect(server)
        await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                    f"connectionID={cid}")
        r = await ahttp("DELETE", f"{server.api}/api/v1/subscribes", f"topic=={topic}",
                        f"connectionID=={cid}")
        assert r.status == 204
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"topic=={topic}")
        assert r.json == []
        r = await ahttp("DELETE", f"{server.api}/api/v1/subscribes", f"topic=={topic}")
        assert r.status == 400 and "connectionID" in r.json["error"]["message"]
        await ws.close()
    run(go())


def test_listing_by_connection_and_by_topic(server, topic):
    async def go():
        a, ca = await connect(server)
        b, cb = await connect(server)
        for cid in (ca, cb):
            await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                        f"connectionID={cid}")
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"topic=={topic}")
        assert r.status == 200 and sorted(s["connectionID"] for s in r.json) == sorted([ca, cb])
        assert all(set(s) == {"topic", "connectionID", "createdAt"} for s in r.json)
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"connectionID=={ca.lower()}")
        assert [(s["topic"], s["connectionID"]) for s in r.json] == [(topic, ca)]
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes")
        assert r.status == 400
        await a.close()
        await b.close()
    run(go())


def test_subscribe_unknown_connection_is_404(server, topic):
    r = http("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
             "connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2")
    assert r.status == 404 and r.json["error"]["code"] == "not_found"


def test_clean_close_removes_subscriptions(server, topic):
    async def go():
        ws, cid = await connect(server)
        await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                    f"connectionID={cid}")
        await ws.close()
        for _ in range(50):
            r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"connectionID=={cid}")
            if r.json == []:
                break
            await asyncio.sleep(0.1)
        assert r.json == []
        r = await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                        f"connectionID={cid}")
        assert r.status == 404
    run(go())


def test_abrupt_disconnect_removes_subscriptions_without_a_resume_window(fresh_server, topic):
    # With --resume-window 0 (the behaviour before resumable connections); with
    # a window the subscriptions stay for it (tests/e2e/test_recovery.py).
    server = fresh_server("--resume-window", "0")

    async def go():
        ws, cid = await connect(server)
        await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                    f"connectionID={cid}")
        ws.transport.abort()  # a reset, no close frame
        for _ in range(50):
            r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"topic=={topic}")
            if r.json == []:
                break
            await asyncio.sleep(0.1)
        assert r.json == []
    run(go())


def test_notification_is_sent_as_is(server):
    async def go():
        ws, cid = await connect(server)
        payload = '{"custom": "payload", "n": 1} and text \u00e9'
        r = await ahttp("POST", f"{server.api}/api/v1/notification", f"connectionID={cid}",
                        f"payload={payload}")
        assert r.status == 202
        assert await asyncio.wait_for(ws.recv(), 5) == payload
        await ws.close()
        r = await ahttp("POST", f"{server.api}/api/v1/notification",
                        "connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2", "payload=x")
        assert r.status == 404
        r = await ahttp("POST", f"{server.api}/api/v1/notification", f"connectionID={cid}",
                        "payload:=true")
        assert r.status == 400 and "payload" in r.json["error"]["message"]
    run(go())


def test_keep_alive_serves_several_requests_on_one_connection(server, topic):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.api_port, timeout=5)
    for i in range(3):
        conn.request("POST", "/api/v1/messages", body=f'{{"topic":"{topic}","content":"{i}"}}',
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 201
        resp.read()
    conn.close()


def test_resubscribe_answers_200_with_the_first_subscription(server, topic):
    async def go():
        ws, cid = await connect(server)
        first = await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                            f"connectionID={cid}")
        assert first.status == 201
        assert set(first.json) == {"topic", "connectionID", "createdAt"}
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", first.json["createdAt"])
        again = await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                            f"connectionID={cid.lower()}")
        assert again.status == 200 and again.json == first.json
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"connectionID=={cid}")
        assert r.json == [first.json]  # still one subscription
        await ahttp("POST", f"{server.api}/api/v1/messages", f"topic={topic}", "content=once")
        assert (await recv_json(ws))["message"]["content"] == "once"
        await expect_silence(ws)  # subscribed twice, delivered once
        await ws.close()
    run(go())


def test_unsubscribe_is_idempotent(server, topic):
    async def go():
        ws, cid = await connect(server)
        for args in ([f"topic={topic}", f"connectionID={cid}"],      # never subscribed
                     [f"connectionID={cid}"],                         # has none
                     [f"topic=={topic}", f"connectionID=={cid}"],     # query string
                     ["connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2"]):    # not connected
            r = await ahttp("DELETE", f"{server.api}/api/v1/subscribes", *args)
            assert r.status == 204 and r.text == "", (args, r)
        await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                    f"connectionID={cid}")
        for _ in range(2):
            r = await ahttp("DELETE", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                            f"connectionID={cid}")
            assert r.status == 204
        await ws.close()
    run(go())


def test_unsubscribe_all_through_the_query_string(server, topic):
    async def go():
        ws, cid = await connect(server)
        for t in (topic, topic + "-2", topic + "-3"):
            await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={t}",
                        f"connectionID={cid}")
        r = await ahttp("DELETE", f"{server.api}/api/v1/subscribes", f"connectionID=={cid}")
        assert r.status == 204
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"connectionID=={cid}")
        assert r.status == 200 and r.json == []
        await ahttp("POST", f"{server.api}/api/v1/messages", f"topic={topic}-2", "content=x")
        await expect_silence(ws)
        await ws.close()
    run(go())


def test_listing_by_both_parameters(server, topic):
    async def go():
        a, ca = await connect(server)
        b, cb = await connect(server)
        for cid, t in ((ca, topic), (cb, topic), (ca, topic + "-x")):
            await ahttp("POST", f"{server.api}/api/v1/subscribes", f"topic={t}",
                        f"connectionID={cid}")
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"topic=={topic}",
                        f"connectionID=={ca}")
        assert r.status == 200
        assert [(s["topic"], s["connectionID"]) for s in r.json] == [(topic, ca)]
        r = await ahttp("GET", f"{server.api}/api/v1/subscribes", f"topic=={topic}-none")
        assert r.status == 200 and r.json == []
        await a.close()
        await b.close()
    run(go())


def test_author_is_optional_and_defaults_to_empty(server, topic):
    for path in ("messages", "publish"):
        r = http("POST", f"{server.api}/api/v1/{path}", f"topic={topic}", "content=anonymous")
        assert r.status == 201, r
        assert r.json["author"] == "" and set(r.json) == {"id", "topic", "content", "author",
                                                          "createdAt"}


def test_get_by_id_returns_what_the_publish_answered(server, topic):
    content = 'caf\u00e9 \U0001F680 "quoted" \\ back\\slash\nnew line \u0001'
    r = http("POST", f"{server.api}/api/v1/publish", f"topic={topic}", f"content={content}",
             "sender=\u00e9milie")
    assert r.status == 201 and r.json["content"] == content and r.json["author"] == "\u00e9milie"
    got = http("GET", f"{server.api}/api/v1/messages/{r.json['id']}", f"topic=={topic}")
    assert got.status == 200 and got.json == r.json


def test_message_ids_are_monotonic_in_publish_order(server, topic):
    import http.client as httplib
    import json
    conn = httplib.HTTPConnection("127.0.0.1", server.api_port, timeout=5)
    ids = []
    for i in range(100):  # several fall in one millisecond: the ids must still increase
        conn.request("POST", "/api/v1/messages",
                     body=json.dumps({"topic": topic, "content": str(i)}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 201
        assert body["createdAt"][:23] == datetime.fromtimestamp(
            ulid_ms(body["id"]) / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]
        ids.append(body["id"])
    conn.close()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    r = http("GET", f"{server.api}/api/v1/messages", f"topic=={topic}", "forward==true",
             "limit==1000")
    assert [m["id"] for m in r.json["messages"]] == ids


def test_notification_reaches_only_its_connection(server, topic):
    async def go():
        a, ca = await connect(server)
        b, cb = await connect(server)
        for i in range(3):
            r = await ahttp("POST", f"{server.api}/api/v1/notification", f"connectionID={ca}",
                            f"payload=n{i}")
            assert r.status == 202
        assert [await asyncio.wait_for(a.recv(), 5) for _ in range(3)] == ["n0", "n1", "n2"]
        await expect_silence(b)
        await expect_silence(a)
        await a.close()
        await b.close()
    run(go())


def test_notification_payload_may_be_empty_or_json_text(server):
    async def go():
        ws, cid = await connect(server)
        for payload in ("", '{"type":"message","fake":true}', "x" * 70000):
            r = await ahttp("POST", f"{server.api}/api/v1/notification", f"connectionID={cid}",
                            f"payload={payload}")
            if len(payload) > 65536:  # over --max-content
                assert r.status == 413, r
                continue
            assert r.status == 202, r
            assert await asyncio.wait_for(ws.recv(), 5) == payload
        await expect_silence(ws)
        await ws.close()
    run(go())


def test_abrupt_reset_and_plain_eof_remove_subscriptions(fresh_server, topic):
    """Two raw clients go away without a close frame: one with a TCP reset,
    one with a plain FIN (with --resume-window 0; with a window they are
    detached instead: test_recovery.py)."""
    server = fresh_server("--resume-window", "0")
    import socket
    import struct

    from conftest import read_until, upgrade_request

    def open_raw():
        s = socket.create_connection(("127.0.0.1", server.ws_port), timeout=5)
        s.sendall(upgrade_request())
        data = read_until(s, b'"}')
        return s, data.split(b'"connectionID":"')[1][:26].decode()

    reset, reset_id = open_raw()
    eof, eof_id = open_raw()
    for cid in (reset_id, eof_id):
        assert http("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                    f"connectionID={cid}").status == 201
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    reset.close()
    eof.shutdown(socket.SHUT_WR)
    for _ in range(50):
        r = http("GET", f"{server.api}/api/v1/subscribes", f"topic=={topic}")
        if r.json == []:
            break
        time.sleep(0.1)
    assert r.json == []
    eof.close()
    for cid in (reset_id, eof_id):
        assert http("POST", f"{server.api}/api/v1/subscribes", f"topic={topic}",
                    f"connectionID={cid}").status == 404


def test_other_paths_on_the_websocket_port_are_404_json(server):
    # "/" is the web console (test_console.py).
    for path in ("/index.html", "/api/v1/wss", "/api/v1/messages", "/api/v1/ws/extra"):
        r = http("GET", f"http://127.0.0.1:{server.ws_port}{path}")
        assert r.status == 404, path
        assert r.headers["content-type"] == "application/json"
        assert r.json["error"]["code"] == "not_found"
