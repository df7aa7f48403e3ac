"""Restart keeps the history; SIGTERM closes clients with 1001 and exits 0;
connections that stop answering pings are dropped. (Handshake and protocol
cases are in test_conformance.py.)"""
import asyncio
import signal
import socket
import time

import websockets

from conftest import connect, http, read_until, recv_json, run, upgrade_request


def test_restart_keeps_history(fresh_server, tmp_path):
    db = tmp_path / "keep.db"
    srv = fresh_server(db=db)
    ids = [http("POST", f"{srv.api}/api/v1/messages", "topic=keep", f"content={i}").json["id"]
           for i in range(3)]
    assert srv.stop() == 0
    srv = fresh_server(db=db)
    r = http("GET", f"{srv.api}/api/v1/messages", "topic==keep", "forward==true")
    assert [m["id"] for m in r.json["messages"]] == ids
    new = http("POST", f"{srv.api}/api/v1/messages", "topic=keep", "content=after").json["id"]
    assert new > ids[-1]


def test_sigterm_closes_clients_with_1001_and_exits_0(fresh_server):
    srv = fresh_server()

    async def go():
        ws, cid = await connect(srv)
        http("POST", f"{srv.api}/api/v1/subscribes", "topic=bye", f"connectionID={cid}")
        srv.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as closed:
            assert closed.code == 1001
        else:
            raise AssertionError("expected a close frame")
    run(go())
    assert srv.proc.wait(10) == 0
    assert "stopped" in srv.logs()


def test_sigint_exits_0_and_later_connections_are_refused(fresh_server):
    srv = fresh_server()
    assert srv.stop(signal.SIGINT) == 0
    try:
        socket.create_connection(("127.0.0.1", srv.api_port), timeout=1).close()
    except OSError:
        return
    raise AssertionError("the API port still accepts connections after shutdown")


def ws_handshake(port, key=None, version="13"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(upgrade_request(key=key, version=version))
    return s


def test_a_client_that_never_answers_pings_is_dropped(fresh_server):
    srv = fresh_server("--ping-interval", "200ms")
    s = ws_handshake(srv.ws_port)
    head = read_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    # read the connected frame to learn the id
    data = head.split(b"\r\n\r\n", 1)[1]
    while len(data) < 2 or len(data) < 2 + data[1]:
        data += s.recv(4096)
    cid = data[2:2 + data[1]].decode().split('"connectionID":"')[1][:26]
    assert http("POST", f"{srv.api}/api/v1/subscribes", "topic=ping",
                f"connectionID={cid}").status == 201
    start = time.monotonic()
    pings = 0
    s.settimeout(3)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            pings += chunk.count(b"\x89\x00")
    except ConnectionResetError:
        pass
    elapsed = time.monotonic() - start
    assert pings >= 2 and elapsed < 2.0, (pings, elapsed)
    for _ in range(30):
        r = http("GET", f"{srv.api}/api/v1/subscribes", "topic==ping")
        if r.json == []:
            break
        time.sleep(0.1)
    assert r.json == []


def test_a_client_that_answers_pings_stays(fresh_server):
    srv = fresh_server("--ping-interval", "200ms")

    async def go():
        ws, cid = await connect(srv)  # websockets answers pings by itself
        await asyncio.sleep(1.2)
        r = await asyncio.to_thread(http, "POST", f"{srv.api}/api/v1/notification",
                                    f"connectionID={cid}", "payload=still here")
        assert r.status == 202
        assert await asyncio.wait_for(ws.recv(), 5) == "still here"
        await ws.close()
    run(go())
