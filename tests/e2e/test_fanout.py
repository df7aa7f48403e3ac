"""Fan-out to many connections, with the socket writes shared by helper
threads (--flush-threads) and without: every subscriber gets every message,
in order, exactly once, also when some subscribers stop reading."""
import asyncio
import json
import pytest

from conftest import call, publish_requests, upgrade_request

N = 400  # above the threshold (256) at which an iteration's writes are shared


async def open_clients(srv, n):
    clients = []
    for _ in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", srv.ws_port)
        w.write(upgrade_request())
        await r.readuntil(b"\r\n\r\n")
        clients.append((r, w))
    return clients


async def read_frame(r):
    head = await r.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await r.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await r.readexactly(8), "big")
    return head[0] & 0x0F, await r.readexactly(length)


@pytest.mark.parametrize("threads", ["0", "1", "3"])
def test_every_subscriber_gets_every_message_in_order(fresh_server, threads):
    srv = fresh_server("--flush-threads", threads, "--max-connections-per-ip", "0",
                       "--connect-rate", "0")

    async def go():
        clients = await open_clients(srv, N)
        ids = []
        for r, _ in clients:
            op, payload = await asyncio.wait_for(read_frame(r), 10)
            ids.append(json.loads(payload)["connectionID"])
        for cid in ids:
            status, _ = await asyncio.to_thread(call, srv, "POST", "/api/v1/subscribes",
                                                {"topic": "fan", "connectionID": cid})
            assert status == 201
        sent = []
        for i in range(30):
            status, msg = await asyncio.to_thread(call, srv, "POST", "/api/v1/messages",
                                                  {"topic": "fan", "content": f"m{i}"})
            assert status == 201
            sent.append(msg["id"])
        for r, _ in clients:
            got = []
            while len(got) < len(sent):
                op, payload = await asyncio.wait_for(read_frame(r), 10)
                got.append(json.loads(payload)["message"]["id"])
            assert got == sent
        for _, w in clients:
            w.close()
    asyncio.run(go())


def test_runs_of_one_topic_keep_the_order_across_topics(fresh_server):
    """The notifier sends consecutive messages of one topic as a run (each
    connection touched once per run); a connection subscribed to several
    topics must still get them in publish order, and one subscribed to a
    single topic only its own. The publishes are pipelined on one
    connection, so they commit in one batch and reach the notifier together."""
    srv = fresh_server()

    async def go():
        clients = await open_clients(srv, 2)
        ids = []
        for r, _ in clients:
            op, payload = await asyncio.wait_for(read_frame(r), 10)
            ids.append(json.loads(payload)["connectionID"])
        for cid, topic in ((ids[0], "r1"), (ids[0], "r2"), (ids[1], "r1")):
            status, _ = await asyncio.to_thread(call, srv, "POST", "/api/v1/subscribes",
                                                {"topic": topic, "connectionID": cid})
            assert status == 201
        topics = ["r1", "r1", "r2", "r1", "r2", "r2", "r2", "r1"] * 8
        requests = publish_requests({"topic": topic, "content": f"m{i}"}
                                    for i, topic in enumerate(topics))
        r, w = await asyncio.open_connection("127.0.0.1", srv.api_port)
        w.write(requests)
        sent = []
        for _ in topics:
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 201"), head
            length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")][0])
            msg = json.loads(await r.readexactly(length))
            sent.append((msg["topic"], msg["content"]))
        w.close()
        assert [t for t, _ in sent] == topics
        for (rr, _), wanted in zip(clients, (sent, [m for m in sent if m[0] == "r1"])):
            got = []
            while len(got) < len(wanted):
                op, payload = await asyncio.wait_for(read_frame(rr), 10)
                m = json.loads(payload)["message"]
                got.append((m["topic"], m["content"]))
            assert got == wanted
        for _, cw in clients:
            cw.close()
    asyncio.run(go())
