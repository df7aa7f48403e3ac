"""Batch publish (issue 17, item 4; docs/api.md "Batch publish"): POST
/api/v1/messages/batch stores its messages in one transaction, all or none,
answers them in order in the single publish's shape, and delivers each as if
published alone; one Idempotency-Key covers the batch; --max-batch bounds it.
Runs on SQLite, and on MariaDB with HOUSTON_TEST_DB_URL (make e2e-mariadb:
every server of the run shares one database, so each test keeps to topics of
its own); the scale-out test runs one publisher and two notifiers on a
throwaway MariaDB and Redis; the CLI test drives `houston pub --batch`."""
import asyncio
import http.client
import json
import os
import subprocess
import uuid

import pytest

from conftest import BIN, call, connect, expect_silence, recv_json, run
from services import have


def post_batch(srv, messages, key=None, raw=None, port=None):
    """POST /api/v1/messages/batch; returns (status, decoded JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port or srv.api_port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    try:
        conn.request("POST", "/api/v1/messages/batch",
                     body=raw if raw is not None else json.dumps({"messages": messages}),
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.strip() else None)
    finally:
        conn.close()


def history(srv, topic, port=None):
    status, body = call(port or srv, "GET", f"/api/v1/messages?topic={topic}&limit=1000&forward=true")
    assert status == 200, body
    return body["messages"]


def subscribe(srv, cid, topic):
    status, body = call(srv, "POST", "/api/v1/subscribes", {"topic": topic, "connectionID": cid})
    assert status == 201, body


def test_batch_of_1000_with_one_bad_element_stores_nothing(server, topic):
    messages = [{"topic": topic, "content": f"m{i}", "author": "a"} for i in range(1000)]
    messages[517]["topic"] = "not a topic!"
    status, body = post_batch(server, messages)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_field" and body["error"]["index"] == 517, body
    assert "messages[517]" in body["error"]["message"] and "topic" in body["error"]["message"]
    assert history(server, topic) == []
    # Every element is checked as a single publish is: same limits, same codes.
    cases = [({"topic": topic}, 400, "missing_field", "content"),
             ({"topic": topic, "content": 5}, 400, "invalid_field", "content"),
             ({"topic": topic, "content": "x", "author": "a" * 257}, 400, "invalid_field", "author"),
             ({"topic": topic, "content": "x" * 65537}, 413, "payload_too_large", "content"),
             ("just a string", 400, "invalid_field", "object")]
    for element, want_status, code, word in cases:
        batch = [{"topic": topic, "content": "ok"}] * 3 + [element]
        status, body = post_batch(server, batch)
        assert (status, body["error"]["code"], body["error"]["index"]) == (want_status, code, 3), body
        assert word in body["error"]["message"], body
    assert history(server, topic) == []
    # The same 1000 without the bad one: all stored, in order.
    messages[517]["topic"] = topic
    status, body = post_batch(server, messages)
    assert status == 201, body
    stored = history(server, topic)
    assert [m["content"] for m in stored] == [f"m{i}" for i in range(1000)]
    assert [m["id"] for m in stored] == [m["id"] for m in body["messages"]]


def test_empty_missing_and_malformed_lists_are_400(server, topic):
    for raw, code in [('{"messages":[]}', "invalid_field"), ('{}', "missing_field"),
                      ('{"messages":{"topic":"x"}}', "invalid_field"), ('[1]', "invalid_json"),
                      ('{"messages":[', "invalid_json")]:
        status, body = post_batch(server, None, raw=raw)
        assert status == 400 and body["error"]["code"] == code, (raw, body)
        assert "index" not in body["error"], body


def test_good_batch_is_delivered_in_order_as_if_published_alone(server, topic):
    a, b = topic + ".a", topic + ".b"

    async def go():
        ws, cid = await connect(server)
        subscribe(server, cid, a)
        subscribe(server, cid, b)
        batch = [{"topic": a if i % 3 else b, "content": f"c{i}", "author": "w"} for i in range(60)]
        status, body = await asyncio.to_thread(post_batch, server, batch)
        assert status == 201, body
        stored = body["messages"]
        assert [m["content"] for m in stored] == [m["content"] for m in batch]
        # Each in the shape POST /api/v1/messages answers with, and as stored.
        status, single = call(server, "POST", "/api/v1/messages", {"topic": a, "content": "single"})
        assert status == 201
        for m in stored:
            assert set(m) == set(single), m
            assert call(server, "GET", f"/api/v1/messages/{m['id']}") == (200, m)
        frames = [await recv_json(ws) for _ in range(61)]
        assert all(f["type"] == "message" for f in frames), frames
        got = [f["message"] for f in frames]
        single_msg = [m for m in got if m["content"] == "single"]
        assert len(single_msg) == 1
        for t in (a, b):  # one frame each, each topic in batch order (then the single)
            ids = [m["id"] for m in stored if m["topic"] == t]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            want = [m for m in stored if m["topic"] == t] + (single_msg if t == a else [])
            assert [m for m in got if m["topic"] == t] == want
            assert [m["id"] for m in history(server, t)] == [m["id"] for m in want]
        await expect_silence(ws, 0.5)
        await ws.close()
    run(go())


def test_repeated_batch_with_its_key(server, topic):
    key = "batch-" + topic
    batch = [{"topic": topic, "content": f"r{i}"} for i in range(5)]

    async def go():
        ws, cid = await connect(server)
        subscribe(server, cid, topic)
        status, first = await asyncio.to_thread(post_batch, server, batch, key)
        assert status == 201, first
        for _ in range(2):
            status, again = await asyncio.to_thread(post_batch, server, batch, key)
            assert status == 200, again  # a repeat, as a single publish's: the original
            assert again == first
        got = [(await recv_json(ws))["message"] for _ in range(5)]
        assert got == first["messages"]
        await expect_silence(ws, 0.5)  # the repeats announced nothing
        await ws.close()
    run(go())
    assert [m["content"] for m in history(server, topic)] == [f"r{i}" for i in range(5)]
    # The same key for another batch, or for a single publish: the conflict a
    # single publish gets; nothing written.
    status, body = post_batch(server, batch[:4], key)
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused", body
    conn = http.client.HTTPConnection("127.0.0.1", server.api_port, timeout=10)
    conn.request("POST", "/api/v1/messages", body=json.dumps(batch[0]),
                 headers={"Content-Type": "application/json", "Idempotency-Key": key})
    resp = conn.getresponse()
    assert resp.status == 422 and json.loads(resp.read())["error"]["code"] == "idempotency_key_reused"
    conn.close()
    status, body = post_batch(server, batch, "bad\u00e9key".encode().decode("latin-1"))
    assert status == 400 and "Idempotency-Key" in body["error"]["message"], body
    assert len(history(server, topic)) == 5


def test_over_max_batch_and_over_the_body_limit_are_413(fresh_server, topic):
    srv = fresh_server("--max-batch", "5", "--max-body", "64k")
    status, body = post_batch(srv, [{"topic": topic, "content": "x"}] * 6)
    assert status == 413 and body["error"]["code"] == "payload_too_large", body
    assert "--max-batch" in body["error"]["message"] and "index" not in body["error"], body
    status, body = post_batch(srv, [{"topic": topic, "content": "y" * 20000}] * 4)
    assert status == 413 and body["error"]["code"] == "payload_too_large", body
    assert history(srv, topic) == []
    status, body = post_batch(srv, [{"topic": topic, "content": str(i)} for i in range(5)])
    assert status == 201 and len(body["messages"]) == 5, body
    status, info = call(srv, "GET", "/api/v1/info")
    assert info["limits"]["maxBatch"] == 5


def test_mixed_topics_keep_each_topics_order_after_other_publishes(server, topic):
    topics = [f"{topic}.{n}" for n in range(4)]
    before = {t: call(server, "POST", "/api/v1/messages", {"topic": t, "content": "before"})[1]["id"]
              for t in topics}
    batch = [{"topic": topics[(i * 7) % 4], "content": str(i)} for i in range(40)]
    status, body = post_batch(server, batch)
    assert status == 201, body
    for t in topics:
        stored = history(server, t)
        assert stored[0]["id"] == before[t]
        assert [m["content"] for m in stored[1:]] == [m["content"] for m in batch if m["topic"] == t]
        assert [m["id"] for m in stored] == sorted(m["id"] for m in stored)


# ---- scale-out -------------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                    reason="redis-server and mariadb-server are not installed")
@pytest.mark.skipif(bool(os.environ.get("HOUSTON_TEST_DB_URL")),
                    reason="runs its own MariaDB: once, in the SQLite pass")
def test_scaleout_batch_is_delivered_in_order_on_two_notifiers(tmp_path):
    from test_scaleout import connect_to, running_cluster

    with running_cluster(tmp_path) as cluster:
        port = cluster["api_port"]
        t, u = "batch-t", "batch-u"

        async def go():
            clients = []
            try:
                for node in ("a", "b"):
                    ws, cid = await connect_to(cluster["ws"][node])
                    clients.append((ws, cid))
                await asyncio.sleep(0.3)  # the notifiers register the connections in Redis
                for ws, cid in clients:
                    for tp in (t, u):
                        status, body = await asyncio.to_thread(
                            call, port, "POST", "/api/v1/subscribes", {"topic": tp, "connectionID": cid})
                        assert status == 201, body
                # The consumers may still be starting: warm up until one arrives everywhere.
                for attempt in range(40):
                    status, _ = await asyncio.to_thread(call, port, "POST", "/api/v1/messages",
                                                        {"topic": t, "content": f"warm-up {attempt}"})
                    assert status == 201
                    try:
                        for ws, _ in clients:
                            await recv_json(ws, 0.5)
                        break
                    except asyncio.TimeoutError:
                        continue

                def real(frame):
                    return not frame["message"]["content"].startswith("warm-up")
                batch = [{"topic": t if i % 4 else u, "content": f"s{i}"} for i in range(300)]
                status, body = await asyncio.to_thread(post_batch, None, batch, None, None, port)
                assert status == 201, body
                stored = body["messages"]
                for ws, _ in clients:
                    got = []
                    while len(got) < 300:
                        frame = await recv_json(ws, 15)
                        if real(frame):
                            got.append(frame["message"])
                    for tp in (t, u):  # each topic in batch order, each message once
                        assert [m["id"] for m in got if m["topic"] == tp] == \
                            [m["id"] for m in stored if m["topic"] == tp]
                    while True:
                        try:
                            frame = await recv_json(ws, 0.5)
                        except asyncio.TimeoutError:
                            break
                        assert not real(frame), f"duplicate or stray frame {frame}"
            finally:
                for ws, _ in clients:
                    await ws.close()
        run(go(), timeout=90)
        maria = cluster["maria"]
        assert maria.query(f"SELECT COUNT(*) FROM messages WHERE topic IN ('{t}','{u}') "
                           "AND content NOT LIKE 'warm-up%'").strip() == "300"


# ---- the CLI ----------------------------------------------------------------------------------

def cli(srv, *args, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSTON_")}
    env["HOUSTON_URL"] = srv.api
    return subprocess.run([BIN, *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=60)


def test_cli_pub_batch_splits_a_long_file_at_the_servers_max(fresh_server, tmp_path, topic):
    srv = fresh_server("--max-batch", "100")
    lines = [json.dumps({"topic": topic, "content": f"l{i}", "author": "cli"}) for i in range(250)]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines[:150]) + "\n\n" + "\n".join(lines[150:]) + "\n")
    r = cli(srv, "pub", "--batch", str(path))
    assert r.returncode == 0, r.stderr
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    stored = history(srv, topic)
    assert printed == stored and [m["content"] for m in stored] == [f"l{i}" for i in range(250)]
    # From stdin ("-").
    other = topic + ".stdin"
    r = cli(srv, "pub", "--batch", "-",
            stdin="".join(json.dumps({"topic": other, "content": str(i)}) + "\n" for i in range(3)))
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["content"] for line in r.stdout.splitlines()] == ["0", "1", "2"]
    # A bad line: nothing sent, its line named; the server's refusal of an
    # element is printed with its index.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n{not json\n")
    r = cli(srv, "pub", "--batch", str(bad))
    assert r.returncode == 1 and "line 2" in r.stderr, r.stderr
    bad.write_text(json.dumps({"topic": "bad topic!", "content": "x"}) + "\n")
    r = cli(srv, "pub", "--batch", str(bad))
    assert r.returncode == 1 and "messages[0]" in r.stderr, r.stderr
    assert len(history(srv, topic)) == 250
    # --batch takes no TOPIC TEXT; without it both are needed.
    assert cli(srv, "pub", "--batch", str(path), topic, "x").returncode == 2
    assert cli(srv, "pub", topic).returncode == 2
