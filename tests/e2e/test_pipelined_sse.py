"""A request that takes the connection over, pipelined behind requests still
waiting for their answers, on the WebSocket port (issue 19, item 5).

GET /readyz asks the store before it answers, so a request written in the
same packet behind it is parsed while /readyz is still in flight. An event
stream (GET /api/v1/sse) and a WebSocket upgrade there are held until the
answers before them are out, then served: the first answer, then the stream's
head and its events (or the 101 and its frames), on the one connection."""
import json
import socket

from conftest import call, upgrade_request

READYZ = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
SSE = b"GET /api/v1/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


def read_until(sock, marker):
    """Reads until marker has arrived, the peer closed or 5 s passed; a
    failing assertion then shows what came instead."""
    data = b""
    try:
        while marker not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def answers(data):
    """Splits the start of data into HTTP answers with a Content-Length
    (status, body) and returns them with the rest (what follows the last)."""
    out = []
    while data.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if "content-length" not in headers:
            break
        n = int(headers["content-length"])
        if len(rest) < n:
            break
        out.append((int(lines[0].split()[1]), rest[:n]))
        data = rest[n:]
    return out, data


def sse_events(sock, data, count):
    """Reads count events after the bytes already read (data); returns them
    as dicts of their fields and what was read past them."""
    events = []
    while len(events) < count:
        while b"\n\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the stream ended after {events}"
            data += chunk
        block, _, data = data.partition(b"\n\n")
        fields = {}
        for line in block.decode().split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            events.append(fields)
    return events, data


def test_event_stream_pipelined_behind_unanswered_requests_is_served(server, topic):
    sock = socket.create_connection(("127.0.0.1", server.ws_port), timeout=5)
    try:
        sock.sendall(READYZ + READYZ + SSE)  # one write
        data = read_until(sock, b"text/event-stream")
        got, rest = answers(data)
        assert [status for status, _ in got] == [200, 200] and rest, data
        assert json.loads(got[0][1]) == {"status": "ready"}
        while b"\r\n\r\n" not in rest:
            chunk = sock.recv(65536)
            assert chunk, rest
            rest += chunk
        head, _, rest = rest.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
        assert b"Content-Type: text/event-stream" in head
        (hello,), rest = sse_events(sock, rest, 1)
        assert hello["event"] == "connected", hello
        cid = json.loads(hello["data"])["connectionID"]
        status, body = call(server, "POST", "/api/v1/subscribes",
                            {"topic": topic, "connectionID": cid})
        assert status in (200, 201), body
        status, body = call(server, "POST", "/api/v1/messages",
                            {"topic": topic, "content": "behind the pipeline"})
        assert status == 201, body
        (event,), _ = sse_events(sock, rest, 1)
        assert event["event"] == "message" and event["id"] == body["id"], event
        assert json.loads(event["data"])["content"] == "behind the pipeline"
    finally:
        sock.close()


def test_upgrade_pipelined_as_the_last_bytes_behind_an_unanswered_request(server):
    """The upgrade is the last thing written: nothing is kept behind it, and
    it is still dispatched once /readyz is answered (it used to wait for
    bytes that never came)."""
    sock = socket.create_connection(("127.0.0.1", server.ws_port), timeout=5)
    try:
        sock.sendall(READYZ + upgrade_request())
        data = read_until(sock, b'"connected"')
        got, rest = answers(data)
        assert [status for status, _ in got] == [200], data
        assert rest.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), rest
    finally:
        sock.close()
