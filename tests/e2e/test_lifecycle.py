"""Restart keeps the history; SIGTERM closes clients with 1001 and exits 0;
connections that stop answering pings are dropped. (Handshake and protocol
cases are in test_conformance.py.)"""
import asyncio
import concurrent.futures
import json
import os
import signal
import socket
import time

import pytest
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


def server_frames(buf):
    """Splits whole unmasked server frames (payloads under 126 bytes) off the
    front of buf: returns [(opcode, payload)] and the bytes left over."""
    frames = []
    while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
        assert buf[1] & 0x7F < 126, buf[:16]
        n = buf[1] & 0x7F
        frames.append((buf[0] & 0x0F, buf[2:2 + n]))
        buf = buf[2 + n:]
    return frames, buf


def test_a_client_that_never_answers_pings_is_dropped(fresh_server):
    # --resume-window 0: dropped means removed (with a window it is detached
    # for it, test_recovery.py); the connected frame then fits in 125 bytes.
    srv = fresh_server("--ping-interval", "200ms", "--resume-window", "0")
    s = ws_handshake(srv.ws_port)
    head = read_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    buf = head.split(b"\r\n\r\n", 1)[1]
    s.settimeout(0.05)
    # Until it is subscribed (an HTTPie process: a second or more on a busy
    # machine, longer than the three intervals a silent client lives) the
    # client answers every ping, so the subscribe cannot race the drop it is
    # there to observe. A pong resets the count of missed ones.
    cid = None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        subscribe = None
        while subscribe is None or not subscribe.done():
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                chunk = b""
            else:
                assert chunk, "dropped while it answered pings"
            frames, buf = server_frames(buf + chunk)
            for opcode, payload in frames:
                if opcode == 0x9:
                    s.sendall(b"\x8a\x80" + os.urandom(4))  # a masked, empty pong
                elif cid is None:
                    cid = json.loads(payload)["connectionID"]
                    subscribe = pool.submit(http, "POST", f"{srv.api}/api/v1/subscribes",
                                            "topic=ping", f"connectionID={cid}")
        assert subscribe.result().status == 201
    # From now on it never answers: two pings go unanswered, the third
    # interval drops it (about 600 ms; the bound, 25 intervals, is slack for
    # a busy machine; the server's log says why it went).
    start = time.monotonic()
    pings = 0
    try:
        while True:
            left = start + 5 - time.monotonic()
            assert left > 0, f"not dropped within 5 s ({pings} pings unanswered)"
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
            pings = buf.count(b"\x89\x00")
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"not dropped within 5 s ({pings} pings unanswered)")
    assert pings >= 2, pings
    assert "missed 2 pongs; dropping it" in srv.logs()
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


def test_restart_keeps_messages_but_not_connections(fresh_server, tmp_path):
    db = tmp_path / "again.db"
    srv = fresh_server(db=db)

    async def before():
        ws, cid = await connect(srv)
        assert http("POST", f"{srv.api}/api/v1/subscribes", "topic=again",
                    f"connectionID={cid}").status == 201
        r = http("POST", f"{srv.api}/api/v1/publish", "topic=again", "content=kept",
                 "sender=s")
        assert (await recv_json(ws))["message"] == r.json
        await ws.close()
        return cid, r.json
    cid, msg = run(before())
    assert srv.stop() == 0, srv.logs()
    srv = fresh_server(db=db)
    r = http("GET", f"{srv.api}/api/v1/messages/{msg['id']}", "topic==again")
    assert r.status == 200 and r.json == msg
    r = http("GET", f"{srv.api}/api/v1/subscribes", "topic==again")
    assert r.status == 200 and r.json == []  # connections do not outlive the process
    r = http("POST", f"{srv.api}/api/v1/subscribes", "topic=again", f"connectionID={cid}")
    assert r.status == 404


def test_sigterm_closes_every_client_with_1001(fresh_server):
    srv = fresh_server()

    async def go():
        clients = [await connect(srv) for _ in range(5)]
        srv.proc.send_signal(signal.SIGTERM)
        codes = []
        for ws, _ in clients:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                codes.append(closed.code)
        assert codes == [1001] * 5
    run(go())
    assert srv.proc.wait(10) == 0, srv.logs()


def test_sigterm_finishes_a_request_in_flight(fresh_server, tmp_path):
    """A publish whose head has arrived and whose body is still arriving when
    SIGTERM comes is completed and answered, and the message is stored."""
    db = tmp_path / "inflight.db"
    srv = fresh_server(db=db)
    body = b'{"topic":"inflight","content":"finished"}'
    with socket.create_connection(("127.0.0.1", srv.api_port), timeout=5) as s:
        s.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                  b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.2)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            s.sendall(body[10:])
            answer = read_until(s, b'"}')
        except ConnectionResetError:
            answer = b"(connection reset)"
    assert answer.startswith(b"HTTP/1.1 201"), answer
    assert srv.proc.wait(10) == 0, srv.logs()
    srv = fresh_server(db=db)
    r = http("GET", f"{srv.api}/api/v1/messages", "topic==inflight")
    assert [m["content"] for m in r.json["messages"]] == ["finished"]


def test_after_shutdown_both_ports_are_closed(fresh_server):
    srv = fresh_server()
    assert srv.stop() == 0, srv.logs()
    for port in (srv.ws_port, srv.api_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_ping_interval_is_honoured(fresh_server):
    """A raw client that answers pings by hand sees them about every
    --ping-interval and stays connected."""
    import os
    import struct
    srv = fresh_server("--ping-interval", "200ms")
    s = ws_handshake(srv.ws_port)
    data = read_until(s, b'"}')
    assert data.startswith(b"HTTP/1.1 101")
    start = time.monotonic()
    pings = 0
    s.settimeout(0.1)
    buf = b""
    while time.monotonic() - start < 1.5:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        assert chunk, "the server closed a connection that answered its pings"
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
            opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
            payload, buf = buf[2:2 + n], buf[2 + n:]
            if opcode == 0x9:
                pings += 1
                key = os.urandom(4)
                s.sendall(bytes([0x8A, 0x80 | len(payload)]) + key
                          + bytes(b ^ key[i % 4] for i, b in enumerate(payload)))
    assert 4 <= pings <= 10, pings
    s.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", 1000))
    s.close()
