"""Resource limits: connections, subscriptions per connection, keep-alive
requests, slow subscribers, and memory that does not grow with rejected
requests."""
import asyncio
import http.client as httplib
import json
import os
import socket
import struct
import time

import pytest
import websockets

from conftest import connect, http, read_to_eof, read_until, recv_json, run, upgrade_request


def test_connection_limit_gives_503(fresh_server):
    srv = fresh_server("--max-connections", "3")

    async def go():
        held = [await connect(srv) for _ in range(3)]
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            await websockets.connect(srv.ws_url)
        assert refused.value.status_code == 503
        await held[0][0].close()
        await asyncio.sleep(0.3)
        ws, _ = await connect(srv)  # room again
        await ws.close()
        for ws, _ in held[1:]:
            await ws.close()
    run(go())


def test_subscription_limit_gives_429(fresh_server):
    srv = fresh_server("--max-subscriptions", "2")

    async def go():
        ws, cid = await connect(srv)
        for t in ("a", "b"):
            assert http("POST", f"{srv.api}/api/v1/subscribes", f"topic={t}",
                        f"connectionID={cid}").status == 201
        r = http("POST", f"{srv.api}/api/v1/subscribes", "topic=c", f"connectionID={cid}")
        assert r.status == 429 and r.json["error"]["code"] == "too_many_subscriptions"
        assert http("POST", f"{srv.api}/api/v1/subscribes", "topic=a",
                    f"connectionID={cid}").status == 200
        r = http("GET", f"{srv.api}/api/v1/subscribes", f"connectionID=={cid}")
        assert sorted(s["topic"] for s in r.json) == ["a", "b"]  # the refused one left nothing
        await ws.close()
    run(go())


def test_keepalive_request_limit(fresh_server):
    srv = fresh_server("--keepalive-requests", "2")
    conn = httplib.HTTPConnection("127.0.0.1", srv.api_port, timeout=5)
    conn.request("GET", "/api/v1/messages?topic=k")
    first = conn.getresponse()
    first.read()
    assert first.getheader("Connection") is None
    conn.request("GET", "/api/v1/messages?topic=k")
    second = conn.getresponse()
    second.read()
    assert second.getheader("Connection") == "close"
    conn.close()


def server_frames(data):
    """Splits unmasked server frames: [(opcode, payload)], rest."""
    frames = []
    while len(data) >= 2:
        n = data[1] & 0x7F
        pos = 2
        if n == 126:
            if len(data) < 4:
                break
            n, pos = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            if len(data) < 10:
                break
            n, pos = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < pos + n:
            break
        frames.append((data[0] & 0x0F, data[pos:pos + n]))
        data = data[pos + n:]
    return frames, data


@pytest.mark.timing_bound("the slow reader reads only after 300 publishes; a closing connection "
                          "has 5 s to flush its close frame, which the publishes outlast under TSan")
def test_a_subscriber_that_stops_reading_is_closed_with_1008(fresh_server):
    srv = fresh_server("--max-pending", "64k")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", srv.ws_port))
    slow.sendall(upgrade_request())
    data = read_until(slow, b"connectionID")
    slow_id = data.split(b'"connectionID":"')[1][:26].decode()
    assert http("POST", f"{srv.api}/api/v1/subscribes", "topic=flood",
                f"connectionID={slow_id}").status == 201

    async def go():
        fast, fast_id = await connect(srv)
        assert http("POST", f"{srv.api}/api/v1/subscribes", "topic=flood",
                    f"connectionID={fast_id}").status == 201
        content = "x" * 32768
        count = 300

        def publish():
            conn = httplib.HTTPConnection("127.0.0.1", srv.api_port, timeout=10)
            for i in range(count):
                conn.request("POST", "/api/v1/messages",
                             body=json.dumps({"topic": "flood", "content": content}),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 201
        started = time.monotonic()
        publisher = asyncio.create_task(asyncio.to_thread(publish))
        for _ in range(count):  # the fast subscriber gets everything, while the slow one stalls
            await recv_json(fast, timeout=10)
        await publisher
        assert time.monotonic() - started < 20
        await fast.close()
    run(go())

    # Now the slow client reads: some messages, then a close frame with 1008.
    slow.settimeout(10)
    frames, _ = server_frames(read_to_eof(slow))
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    assert closes, f"no close frame among {len(frames)} frames"
    assert struct.unpack("!H", closes[0][:2])[0] == 1008
    assert len([f for f in frames if f[0] == 0x1]) < 300
    assert "does not read" in srv.logs()
    for _ in range(30):  # both are gone, so are their subscriptions
        r = http("GET", f"{srv.api}/api/v1/subscribes", "topic==flood")
        if r.json == []:
            break
        time.sleep(0.1)
    assert r.json == []


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])


@pytest.mark.skipif(os.environ.get("HOUSTON_SANITIZED") == "1",
                    reason="AddressSanitizer keeps freed memory in quarantine; RSS says nothing")
def test_memory_does_not_grow_with_rejected_requests_and_closed_connections(fresh_server):
    # 1,200 connections from one address in a few seconds: far over the
    # per-IP connect rate, which is not what this test is about.
    srv = fresh_server("--connect-rate", "0")

    def reject(n):
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", srv.api_port)) as s:
                s.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          b"application/json\r\nContent-Length: 9\r\n\r\n{\"topic\":")
                s.recv(4096)

    async def churn(n):
        for _ in range(n):
            ws, _ = await connect(srv)
            await ws.close()

    reject(1000)
    run(churn(300))
    time.sleep(0.5)
    before = rss_kib(srv.proc.pid)
    reject(3000)
    run(churn(900))
    time.sleep(0.5)
    after = rss_kib(srv.proc.pid)
    assert after - before < 2048, (before, after)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_descriptors_does_not_spin(tmp_path):
    """With 64 descriptors, 150 clients: the ones beyond are dropped, the loop
    does not spin, and service resumes when descriptors free up."""
    import resource
    import subprocess
    from conftest import BIN, free_port, wait_port
    ws_port, api_port = free_port(), free_port()
    log = tmp_path / "emfile.log"
    proc = subprocess.Popen(
        [BIN, "serve", "--ws-addr", f"127.0.0.1:{ws_port}", "--api-addr",
         f"127.0.0.1:{api_port}", "--db", f"sqlite:{tmp_path}/e.db"],
        stderr=open(log, "w"),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    try:
        wait_port(api_port, proc, log)
        clients = []
        for _ in range(150):
            try:
                clients.append(socket.create_connection(("127.0.0.1", ws_port), timeout=2))
            except OSError:
                pass
        before = cpu_seconds(proc.pid)
        time.sleep(1.0)
        spent = cpu_seconds(proc.pid) - before
        assert spent < 0.3, f"the loop spent {spent:.2f} s of CPU in 1 s while out of descriptors"
        assert proc.poll() is None
        for c in clients:
            c.close()
        time.sleep(0.5)
        assert http("GET", f"http://127.0.0.1:{api_port}/api/v1/messages",
                    "topic==t").status == 200
        assert "open file descriptors" in log.read_text()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ---- incoming frames and control frames (issue 13, findings 5 and 6a) ----

def ws_peer(srv):
    from test_conformance import Peer
    return Peer(srv.ws_port)


def test_many_small_frames_behind_a_partial_frame_are_not_1009(fresh_server):
    """The limit is each frame's declared length (and a fragmented message's
    total), never the size of what one read brought: a frame left incomplete
    by one read, then one write of many small frames ending in the first
    bytes of another, far more bytes than --max-ws-message, is all valid."""
    from test_conformance import frame
    srv = fresh_server("--max-ws-message", "1k", "--client-message-rate", "0")
    peer = ws_peer(srv)
    count = 1000
    frames = [frame(0x1, b"%04d" % i + b"m" * 96) for i in range(count + 1)]
    peer.send(frames[0][:50])  # the server reads this alone: a partial frame
    time.sleep(0.2)
    burst = frames[0][50:] + b"".join(frames[1:count]) + frames[count][:20]
    assert len(burst) > 100 * 1024
    peer.send(burst)
    for _ in range(count):
        peer.expect_accepted()
    peer.send(frames[count][20:])
    peer.expect_accepted()
    peer.alive()
    # The same without the partial frame first: one write, ending mid-frame.
    peer.send(b"".join(frames[1:count]) + frames[count][:7])
    for _ in range(count - 1):
        peer.expect_accepted()
    peer.send(frames[count][7:])
    peer.expect_accepted()
    peer.alive()
    peer.s.close()


def test_one_frame_declaring_more_than_the_limit_is_1009(fresh_server):
    from test_conformance import frame
    srv = fresh_server("--max-ws-message", "1k", "--client-message-rate", "0")
    peer = ws_peer(srv)
    peer.send(frame(0x1, b"x" * 1024))  # at the limit
    peer.expect_accepted()
    big = frame(0x2, b"x" * 1025)
    peer.send(big[:3])  # a partial header, then the rest of it: no payload yet
    time.sleep(0.1)
    peer.send(big[3:8])
    peer.expect_close(1009)
    peer.s.close()
    # Fragments: each below the limit, together above it.
    peer = ws_peer(srv)
    peer.send(frame(0x1, b"x" * 600, fin=False), frame(0x0, b"y" * 600)[:10])
    peer.expect_close(1009)
    peer.s.close()


@pytest.mark.skipif(os.environ.get("HOUSTON_SANITIZED") == "1",
                    reason="AddressSanitizer keeps freed memory in quarantine; RSS says nothing")
def test_a_ping_flood_from_a_client_that_does_not_read_costs_one_pong(fresh_server):
    """300,000 pings of 125 bytes without reading: the server does not queue
    300,000 pongs (it keeps at most one waiting, RFC 6455 5.5.3), its memory
    stays flat, it still serves, and the client that reads at last gets the
    pong of its last ping."""
    from test_conformance import frame
    srv = fresh_server("--client-message-rate", "0")
    peer = ws_peer(srv)
    peer.alive()
    time.sleep(0.2)
    before = rss_kib(srv.proc.pid)
    count = 300_000
    key = b"\0\0\0\0"  # a zero mask: the bytes are the payload

    def ping(i):
        return b"\x89\xfd" + key + (b"%06d" % i).ljust(125, b".")
    chunk = 1000
    for start in range(0, count, chunk):
        peer.s.sendall(b"".join(ping(i) for i in range(start, start + chunk)))
    peer.s.sendall(frame(0x1, b"done"))  # answered once every ping was read
    time.sleep(0.5)
    after = rss_kib(srv.proc.pid)
    assert after - before < 8 * 1024, (before, after)
    assert http("GET", f"{srv.api}/healthz").status == 200
    other = ws_peer(srv)
    other.alive()
    other.s.close()
    # Now it reads: pongs in order up to the last ping's, and the answer to
    # "done" (before or after that last pong, which may have waited).
    last, answered = -1, False
    while last != count - 1 or not answered:
        opcode, payload = peer.next_frame(timeout=10)
        if opcode == 0x1:
            assert b'"unsupported"' in payload and not answered
            answered = True
            continue
        assert opcode == 0xA, (opcode, payload[:20])
        i = int(payload[:6])
        assert i > last
        last = i
    peer.alive()
    peer.s.close()
