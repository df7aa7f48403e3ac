"""Fan-out to many connections, with the socket writes shared by helper
threads (--flush-threads) and without: every subscriber gets every message,
in order, exactly once, also when some subscribers stop reading."""
import asyncio
import json
import pytest

from conftest import call, upgrade_request

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
