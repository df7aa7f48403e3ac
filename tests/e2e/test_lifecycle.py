"""Restart keeps the history; SIGTERM closes clients with 1001 and exits 0;
connections that stop answering pings are dropped; handshake checks."""
import asyncio
import base64
import os
import signal
import socket
import struct
import time

import websockets

from conftest import connect, http, recv_json, run


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


def ws_handshake(port, path="/api/v1/ws", key=None, version="13", extra=b""):
    key = key or base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n".encode()
              + extra + b"\r\n")
    return s


def read_until(s, marker):
    data = b""
    while marker not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


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


def test_handshake_is_validated(server):
    s = ws_handshake(server.ws_port, key="dGhlIHNhbXBsZSBub25jZQ==")
    head = read_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    s.close()
    s = ws_handshake(server.ws_port, version="8")
    resp = read_until(s, b"}")
    assert resp.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13" in resp
    s.close()
    s = ws_handshake(server.ws_port, key="short")
    assert read_until(s, b"}").startswith(b"HTTP/1.1 400")
    s.close()


def masked(opcode, payload, fin=True):
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_raw(server):
    s = ws_handshake(server.ws_port)
    data = read_until(s, b"\r\n\r\n").split(b"\r\n\r\n", 1)[1]
    while len(data) < 2 or len(data) < 2 + data[1]:
        data += s.recv(4096)
    return s, data[2 + data[1]:]


def read_close(s, rest=b""):
    data = rest
    s.settimeout(5)
    while True:
        i = data.find(b"\x88")
        if i >= 0 and len(data) >= i + 4:
            return struct.unpack("!H", data[i + 2:i + 4])[0]
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError(f"closed without a close frame: {data!r}")
        data += chunk


def test_protocol_errors_get_their_close_codes(server):
    s, rest = open_raw(server)
    s.sendall(b"\x81\x02hi")  # unmasked
    assert read_close(s, rest) == 1002
    s, rest = open_raw(server)
    s.sendall(masked(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"))
    assert read_close(s, rest) == 1007
    s, rest = open_raw(server)
    s.sendall(masked(0x1, b"x" * 70000))
    assert read_close(s, rest) == 1009
    s, rest = open_raw(server)
    s.sendall(bytes([0xC1, 0x80]) + b"\0\0\0\0")  # RSV1 set
    assert read_close(s, rest) == 1002
    s, rest = open_raw(server)
    s.sendall(masked(0x8, struct.pack("!H", 1000) + b"bye"))
    assert read_close(s, rest) == 1000


def test_ping_is_answered_with_the_same_payload(server):
    s, rest = open_raw(server)
    s.sendall(masked(0x9, b"are you there"))
    data = rest
    while b"\x8a\x0dare you there" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    s.close()
