"""Idempotent publish: the Idempotency-Key header of POST /api/v1/messages and
/api/v1/publish (issue 7, item 5)."""
import http.client as httplib
import json
import threading
import time

from conftest import call, connect, expect_silence, http, recv_json, run


def post(srv, body, key=None, path="/api/v1/messages", raw=None):
    """One publish with http.client; returns (status, decoded JSON)."""
    conn = httplib.HTTPConnection("127.0.0.1", srv.api_port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    try:
        conn.request("POST", path, body=raw if raw is not None else json.dumps(body),
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.strip() else None)
    finally:
        conn.close()


def history(srv, topic):
    status, body = call(srv, "GET", f"/api/v1/messages?topic={topic}&limit=100")
    assert status == 200, body
    return body["messages"]


def test_repeat_answers_the_original_and_delivers_once(server, topic):
    async def go():
        ws, cid = await connect(server)
        status, _ = call(server, "POST", "/api/v1/subscribes",
                         {"topic": topic, "connectionID": cid})
        assert status == 201
        # HTTPie, a client no one here wrote, sends the header.
        first = http("POST", f"{server.api}/api/v1/messages", "Idempotency-Key:order-1",
                     f"topic={topic}", "content=paid", "author=shop")
        assert first.status == 201, first
        again = http("POST", f"{server.api}/api/v1/messages", "Idempotency-Key:order-1",
                     f"topic={topic}", "content=paid", "author=shop")
        assert again.status == 200, again
        assert again.json == first.json  # same id, same createdAt
        frame = await recv_json(ws)
        assert frame["type"] == "message" and frame["message"]["id"] == first.json["id"], frame
        await expect_silence(ws, 0.5)  # the repeat announced nothing
        await ws.close()
    run(go())
    assert len(history(server, topic)) == 1


def test_canonical_fields_not_bytes(server, topic):
    body = {"topic": topic, "content": "x\u00e9", "author": "a"}
    status, first = post(server, body, key="canon-" + topic)
    assert status == 201, first
    # Other key order, whitespace and escapes: the same message.
    raw = '{ "author":"a",  "content":"x\\u00e9", "topic":"%s" }' % topic
    status, again = post(server, None, key="canon-" + topic, raw=raw)
    assert status == 200 and again["id"] == first["id"], again
    # /publish names the author "sender": the same canonical fields.
    status, again = post(server, {"topic": topic, "content": "x\u00e9", "sender": "a"},
                         key="canon-" + topic, path="/api/v1/publish")
    assert status == 200 and again["id"] == first["id"], again


def test_same_key_other_body_is_422(server, topic):
    key = "reuse-" + topic
    status, first = post(server, {"topic": topic, "content": "one", "author": "a"}, key=key)
    assert status == 201
    for other in ({"topic": topic, "content": "two", "author": "a"},
                  {"topic": topic, "content": "one", "author": "b"},
                  {"topic": topic + "x", "content": "one", "author": "a"}):
        status, body = post(server, other, key=key)
        assert status == 422, body
        assert body["error"]["code"] == "idempotency_key_reused", body
    assert [m["id"] for m in history(server, topic)] == [first["id"]]
    assert history(server, topic + "x") == []


def test_different_keys_make_different_messages(server, topic):
    body = {"topic": topic, "content": "same", "author": "a"}
    s1, m1 = post(server, body, key="k1-" + topic)
    s2, m2 = post(server, body, key="k2-" + topic)
    s3, m3 = post(server, body)  # no key: a new message each time, as before
    assert (s1, s2, s3) == (201, 201, 201)
    assert len({m1["id"], m2["id"], m3["id"]}) == 3
    assert len(history(server, topic)) == 3


def test_invalid_keys_are_400(server, topic):
    body = {"topic": topic, "content": "c", "author": "a"}
    for key in ("k" * 129, "", "caf\u00e9"):
        raw_key = key.encode("utf-8").decode("latin-1")  # the bytes as sent
        status, err = post(server, body, key=raw_key)
        assert status == 400, (key, err)
        assert err["error"]["code"] == "invalid_field"
        assert "Idempotency-Key" in err["error"]["message"]
    status, _ = post(server, body, key="k" * 128)
    assert status == 201
    status, _ = post(server, body, key="~ !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}")
    assert status == 201
    assert len(history(server, topic)) == 2


def test_concurrent_repeats_store_one_message(server, topic):
    key = "race-" + topic
    body = {"topic": topic, "content": "once", "author": "a"}
    results = []
    barrier = threading.Barrier(12)

    def worker():
        barrier.wait()
        results.append(post(server, body, key=key))

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 11 + [201], results
    assert len({m["id"] for _, m in results}) == 1
    assert len(history(server, topic)) == 1


def test_key_survives_a_restart(fresh_server, topic):
    srv = fresh_server()
    body = {"topic": topic, "content": "durable", "author": "a"}
    status, first = post(srv, body, key="restart")
    assert status == 201
    assert srv.stop() == 0
    srv = fresh_server(db=srv.db)
    status, again = post(srv, body, key="restart")
    assert status == 200 and again == first, again
    status, err = post(srv, dict(body, content="other"), key="restart")
    assert status == 422, err


def test_key_expires_after_the_window(fresh_server, topic):
    srv = fresh_server("--idempotency-window", "1s")
    body = {"topic": topic, "content": "c", "author": "a"}
    status, first = post(srv, body, key="short")
    assert status == 201
    status, again = post(srv, body, key="short")
    assert status == 200 and again["id"] == first["id"]
    time.sleep(1.2)
    status, later = post(srv, dict(body, content="new"), key="short")
    assert status == 201 and later["id"] != first["id"], later
    status, again = post(srv, dict(body, content="new"), key="short")
    assert status == 200 and again["id"] == later["id"]


class _Api:
    """What post() needs of a server: its API port."""

    def __init__(self, port):
        self.api_port = port


def test_scaleout_two_publishers_one_key(tmp_path):
    """Two publisher processes on one MariaDB: concurrent repeats of a key
    through both store one message, and the subscriber gets one frame."""
    import asyncio
    import signal
    import subprocess

    import pytest
    import websockets

    from conftest import BIN, free_port, wait_port
    from services import MariaDB, Redis, have

    if not (have("redis-server") and have("mariadbd")):
        pytest.skip("redis-server and mariadb-server are not installed")
    redis, maria = Redis(tmp_path), MariaDB(tmp_path)
    common = ["--db", maria.url, "--redis", redis.url]
    procs = []

    def role(name, *args):
        log = tmp_path / f"{name}.log"
        proc = subprocess.Popen([BIN, *args, *common], stdout=subprocess.DEVNULL,
                                stderr=open(log, "w"))
        procs.append((name, proc, log))
        return proc, log

    try:
        apis = []
        for name in ("pub1", "pub2"):
            port = free_port()
            proc, log = role(name, "publisher", "--api-addr", f"127.0.0.1:{port}")
            wait_port(port, proc, log)
            apis.append(_Api(port))
        ws_port = free_port()
        proc, log = role("notifier", "notifier", "--node-id", "a",
                         "--ws-addr", f"127.0.0.1:{ws_port}")
        wait_port(ws_port, proc, log)
        role("consumer", "consumer")
        topic = "scaleout-idem"

        async def go():
            ws = await websockets.connect(f"ws://127.0.0.1:{ws_port}/api/v1/ws")
            cid = json.loads(await asyncio.wait_for(ws.recv(), 5))["connectionID"]
            status, _ = await asyncio.to_thread(
                call, apis[0], "POST", "/api/v1/subscribes", {"topic": topic, "connectionID": cid})
            assert status == 201

            async def next_round_frame(timeout):
                while True:  # late warm-up frames are not the test's
                    frame = await recv_json(ws, timeout)
                    if not frame["message"]["content"].startswith("warm-up"):
                        return frame

            # The consumer may still be starting: warm the pipeline up with
            # unkeyed messages until one is delivered.
            for attempt in range(20):
                await asyncio.to_thread(post, apis[0], {"topic": topic,
                                                        "content": f"warm-up {attempt}"})
                try:
                    await recv_json(ws, 0.5)
                    break
                except asyncio.TimeoutError:
                    continue
            for round_ in range(5):
                key = f"scaleout-{round_}"
                body = {"topic": topic, "content": f"r{round_}", "author": "a"}
                results = await asyncio.gather(*[
                    asyncio.to_thread(post, apis[i % 2], body, key) for i in range(8)])
                assert sorted(s for s, _ in results) == [200] * 7 + [201], [(s, m.get("id")) for s, m in results]
                ids = {m["id"] for _, m in results}
                assert len(ids) == 1
                frame = await next_round_frame(10)
                assert frame["message"]["id"] == ids.pop()
            try:
                extra = await next_round_frame(0.5)
                raise AssertionError(f"unexpected frame {extra}")
            except asyncio.TimeoutError:
                pass
            await ws.close()

        run(go())
        assert maria.query(f"SELECT COUNT(*) FROM messages WHERE topic='{topic}' "
                           "AND content NOT LIKE 'warm-up%'").strip() == "5"
        assert maria.query("SELECT COUNT(*) FROM idempotency_keys").strip() == "5"
        for name, proc, log in procs:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, f"{name}:\n{log.read_text()}"
    finally:
        for _, proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
        redis.stop()
        maria.stop()
