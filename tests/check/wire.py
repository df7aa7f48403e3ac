"""The checker's own minimal clients on asyncio streams: HTTP/1.1 requests,
a WebSocket client and a Server-Sent Events reader. Written on raw sockets
(not python3-websockets) because the checker must misbehave in ways a
library hides: reset the TCP connection (SO_LINGER 0), stop answering pings,
stop reading, leave a close frame unanswered. Loopback only."""
import asyncio
import base64
import json
import os
import socket
import struct

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 5.0


def reset(writer):
    """Closes the TCP connection with a RST (SO_LINGER 0), no FIN."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def request_bytes(method, path, body=None, headers=None, close=True):
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if close:
        head += "Connection: close\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    head += f"Content-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def read_response(reader):
    """(status, headers, body bytes) of one HTTP/1.1 answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read()
    return status, headers, body


async def http(port, method, path, body=None, headers=None, timeout=10.0):
    """One request on its own connection. Returns (status, JSON or None);
    (None, error text) when the connection failed or timed out (the request
    may or may not have been processed)."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=1 << 22), CONNECT_TIMEOUT)
        writer.write(request_bytes(method, path, body, headers))
        status, _, data = await asyncio.wait_for(read_response(reader), timeout)
        try:
            parsed = json.loads(data) if data.strip() else None
        except ValueError:
            parsed = data.decode("utf-8", "replace")
        return status, parsed
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
            asyncio.LimitOverrunError) as e:
        return None, f"{type(e).__name__}: {e}"
    finally:
        if writer is not None:
            writer.transport.abort()


async def pipelined(port, requests, timeout=20.0):
    """Writes the requests (bytes) at once on one keep-alive connection and
    yields (status, JSON) per answer as it is read; stops at the first
    failure (the rest may or may not have been processed)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=1 << 22), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        return
    try:
        writer.write(b"".join(requests))
        for _ in requests:
            status, _, data = await asyncio.wait_for(read_response(reader), timeout)
            yield status, (json.loads(data) if data.strip() else None)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
            asyncio.LimitOverrunError):
        return
    finally:
        writer.transport.abort()


async def http_lost_answer(port, method, path, body, headers, delay):
    """Sends a request and resets the connection after delay seconds without
    reading the answer: the server may or may not have processed it."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port),
                                                CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        return
    writer.write(request_bytes(method, path, body, headers))
    try:
        await asyncio.wait_for(writer.drain(), 2)
    except (OSError, asyncio.TimeoutError):
        pass
    await asyncio.sleep(delay)
    reset(writer)


class HandshakeError(Exception):
    def __init__(self, status, body):
        super().__init__(f"upgrade answered {status}: {body[:200]!r}")
        self.status = status


class Closed(Exception):
    """The peer closed: code is the close frame's code, None without one."""

    def __init__(self, code):
        super().__init__(f"closed {code}")
        self.code = code


class WebSocket:
    """A WebSocket client frame codec on asyncio streams. answer_pings and
    echo_close can be turned off to play a half-open or rude client."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.answer_pings = True
        self.echo_close = True
        self.close_sent = False

    @classmethod
    async def connect(cls, port, path):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=1 << 16), CONNECT_TIMEOUT)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
            status = int(head.split()[1])
            if status != 101:
                raise HandshakeError(status, head)
        except BaseException:
            writer.transport.abort()
            raise
        return cls(reader, writer)

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self.writer.write(head + mask + masked)
        except (OSError, RuntimeError):
            pass

    def send_json(self, obj):
        self.send(1, json.dumps(obj).encode())

    def close(self, code=1000):
        if not self.close_sent:
            self.close_sent = True
            self.send(8, struct.pack("!H", code))

    async def frame(self):
        """The next data frame as (opcode, payload); answers pings; raises
        Closed on a close frame or end of stream."""
        while True:
            try:
                b1, b2 = await self.reader.readexactly(2)
                n = b2 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                if b2 & 0x80:
                    raise Closed(None)  # a server must not mask
                payload = await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, OSError):
                raise Closed(None)
            opcode = b1 & 0x0F
            if opcode == 9:
                if self.answer_pings:
                    self.send(10, payload)
                continue
            if opcode == 10:
                continue
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if self.echo_close:
                    self.close(code if code not in (1005, 1006) else 1000)
                raise Closed(code)
            if not b1 & 0x80:
                # Fragmented data frames: gather the continuation frames.
                parts = [payload]
                while True:
                    op2, more, fin = await self._raw()
                    parts.append(more)
                    if fin:
                        break
                payload = b"".join(parts)
            return opcode, payload

    async def _raw(self):
        b1, b2 = await self.reader.readexactly(2)
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b1 & 0x0F, await self.reader.readexactly(n), bool(b1 & 0x80)

    def reset(self):
        reset(self.writer)

    def abort(self):
        self.writer.transport.abort()

    def abort(self):
        self.writer.transport.abort()


class EventStream:
    """GET /api/v1/sse: the answer's events one by one."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port, path, headers=None):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=1 << 20), CONNECT_TIMEOUT)
        try:
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            for name, value in (headers or {}).items():
                head += f"{name}: {value}\r\n"
            writer.write((head + "\r\n").encode())
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
            status = int(answer.split()[1])
            if status != 200:
                raise HandshakeError(status, answer)
        except BaseException:
            writer.transport.abort()
            raise
        return cls(reader, writer)

    async def event(self):
        """(event name, id or None, data) of the next event; raises Closed at
        the end of the stream."""
        name, ident, data = "message", None, []
        while True:
            try:
                line = (await self.reader.readuntil(b"\n")).decode().rstrip("\r\n")
            except (asyncio.IncompleteReadError, OSError, asyncio.LimitOverrunError):
                raise Closed(None)
            if line == "":
                if data or ident is not None:
                    return name, ident, "\n".join(data)
                name, ident, data = "message", None, []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)

    def reset(self):
        reset(self.writer)

    def abort(self):
        self.writer.transport.abort()
