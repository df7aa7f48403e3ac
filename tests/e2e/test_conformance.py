"""RFC 6455 conformance, case by case, in the spirit of the Autobahn TestSuite
server cases (sections 1-7 and 9), with a raw-socket client: each case sends
exact bytes and asserts the exact frames the server answers with.

houston does not echo: every complete message a client sends is answered
with one text frame {"type":"error","code":"unsupported",...}, which is how
these cases see that a message was accepted."""
import os
import socket
import struct
import time

import pytest

from conftest import Server, read_to_eof, read_until, stop_cleanly, upgrade_request

MAX = 65536  # --max-ws-message default


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Peer:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.sendall(upgrade_request())
        head, _, self.buf = read_until(self.s, b"\r\n\r\n").partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        opcode, payload = self.next_frame()
        assert opcode == 0x1 and b'"connected"' in payload

    def send(self, *frames, pause=0.0):
        for f in frames:
            self.s.sendall(f)
            if pause:
                time.sleep(pause)

    def next_frame(self, timeout=5):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, pos = self.buf[1] & 0x7F, 2
                assert not self.buf[1] & 0x80, "server frames are never masked"
                if n == 126 and len(self.buf) >= 4:
                    n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
                if n < 126 or pos > 2:
                    if len(self.buf) >= pos + n:
                        assert self.buf[0] & 0x80 and not self.buf[0] & 0x70
                        opcode, payload = self.buf[0] & 0x0F, self.buf[pos:pos + n]
                        self.buf = self.buf[pos + n:]
                        return opcode, payload
            chunk = self.s.recv(65536)
            if not chunk:
                return None, None
            self.buf += chunk

    def expect_accepted(self):
        opcode, payload = self.next_frame()
        assert opcode == 0x1 and b'"unsupported"' in payload, (opcode, payload)

    def expect_pong(self, payload):
        assert self.next_frame() == (0xA, payload)

    def expect_close(self, code):
        opcode, payload = self.next_frame()
        while opcode == 0x1:  # replies to messages accepted before the error
            opcode, payload = self.next_frame()
        assert opcode == 0x8, (opcode, payload)
        if code is None:
            assert payload == b""
        else:
            assert struct.unpack("!H", payload[:2])[0] == code
            payload[2:].decode("utf-8")  # a reason, if any, is valid UTF-8
        # then the server closes the TCP connection
        assert self.next_frame() == (None, None)

    def alive(self):
        """The connection still works: a ping is answered."""
        self.send(frame(0x9, b"alive?"))
        self.expect_pong(b"alive?")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's server, without the inbound message rate limit: these
    cases test the codec with bursts of messages (200 at once below)."""
    srv = Server(tmp_path_factory.mktemp("houston"), "--ping-interval", "30s",
                 "--client-message-rate", "0").start()
    yield srv
    stop_cleanly(srv)


@pytest.fixture
def peer(server):
    p = Peer(server.ws_port)
    yield p
    p.s.close()


# ---- 1: framing ----------------------------------------------------------

@pytest.mark.parametrize("length", [0, 125, 126, 127, 128, 65535, MAX])
def test_1_text_lengths(peer, length):
    peer.send(frame(0x1, b"*" * length))
    peer.expect_accepted()


@pytest.mark.parametrize("length", [0, 125, 65535])
def test_1_binary_lengths(peer, length):
    peer.send(frame(0x2, b"\xfe" * length))
    peer.expect_accepted()


def test_1_frame_sent_byte_by_byte(peer):
    for b in frame(0x1, b"Hello"):
        peer.s.sendall(bytes([b]))
    peer.expect_accepted()


# ---- 2: ping / pong --------------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"Hello, world!", bytes(range(125))])
def test_2_ping_is_answered_with_its_payload(peer, payload):
    peer.send(frame(0x9, payload))
    peer.expect_pong(payload)


def test_2_ping_over_125_bytes_is_1002(peer):
    peer.send(frame(0x9, b"x" * 126))
    peer.expect_close(1002)


def test_2_unsolicited_pong_is_ignored(peer):
    peer.send(frame(0xA, b"unsolicited"))
    peer.alive()


def test_2_ten_pings_answered_up_to_the_last(peer):
    """RFC 6455 5.5.3: pings that arrive before the pong of an earlier one is
    sent may be answered only by the pong of the most recent; houston keeps at
    most one pong waiting. So: pongs in order, none twice, the last one's
    payload last."""
    peer.send(b"".join(frame(0x9, b"p%d" % i) for i in range(10)))
    seen = []
    while not seen or seen[-1] != 9:
        opcode, payload = peer.next_frame()
        assert opcode == 0xA, (opcode, payload)
        seen.append(int(payload[1:]))
    assert seen == sorted(set(seen)) and seen[0] == 0
    peer.alive()  # and nothing else was waiting


# ---- 3: reserved bits -------------------------------------------------------

@pytest.mark.parametrize("rsv", [1, 2, 3, 4, 5, 6, 7])
def test_3_reserved_bits_are_1002(peer, rsv):
    peer.send(frame(0x1, b"x", rsv=rsv))
    peer.expect_close(1002)


def test_3_reserved_bit_on_ping_is_1002(peer):
    peer.send(frame(0x9, b"x", rsv=4))
    peer.expect_close(1002)


# ---- 4: opcodes --------------------------------------------------------------

@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_4_reserved_opcodes_are_1002(peer, opcode):
    peer.send(frame(opcode, b"x"))
    peer.expect_close(1002)


def test_4_reserved_opcode_after_a_valid_message(peer):
    peer.send(frame(0x1, b"ok"), frame(0x5, b""))
    peer.expect_accepted()
    peer.expect_close(1002)


# ---- 5: fragmentation ----------------------------------------------------------

def test_5_fragmented_ping_is_1002(peer):
    peer.send(frame(0x9, b"frag", fin=False), frame(0x0, b"ment"))
    peer.expect_close(1002)


def test_5_fragmented_close_is_1002(peer):
    peer.send(frame(0x8, close_payload(1000), fin=False))
    peer.expect_close(1002)


def test_5_text_in_fragments(peer):
    peer.send(frame(0x1, b"frag", fin=False), frame(0x0, b"men", fin=False), frame(0x0, b"t"))
    peer.expect_accepted()


def test_5_ping_between_fragments_is_answered_first(peer):
    peer.send(frame(0x1, b"frag", fin=False), frame(0x9, b"in between"), frame(0x0, b"ment"))
    peer.expect_pong(b"in between")
    peer.expect_accepted()


def test_5_fragments_sent_slowly(peer):
    peer.send(frame(0x1, b"a", fin=False), frame(0x9, b"p"), frame(0x0, b"b", fin=False),
              frame(0x0, b"c"), pause=0.05)
    peer.expect_pong(b"p")
    peer.expect_accepted()


def test_5_continuation_without_a_message_is_1002(peer):
    peer.send(frame(0x0, b"orphan"))
    peer.expect_close(1002)


def test_5_new_message_inside_a_fragmented_one_is_1002(peer):
    peer.send(frame(0x1, b"first", fin=False), frame(0x1, b"second"))
    peer.expect_close(1002)


def test_5_empty_fragments(peer):
    peer.send(frame(0x1, b"", fin=False), frame(0x0, b"", fin=False), frame(0x0, b""))
    peer.expect_accepted()


def test_5_unmasked_frame_is_1002(peer):
    peer.send(frame(0x1, b"plain", mask=False))
    peer.expect_close(1002)


# ---- 6: UTF-8 --------------------------------------------------------------------

KOSME = "κόσμε".encode()


def test_6_valid_utf8(peer):
    peer.send(frame(0x1, KOSME + "\U0010ffff".encode()))
    peer.expect_accepted()


@pytest.mark.parametrize("bad", [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
                                 b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xed\xa0\x80", b"\xff",
                                 b"\xce", b"ok\x80"])
def test_6_invalid_utf8_is_1007(peer, bad):
    peer.send(frame(0x1, bad))
    peer.expect_close(1007)


def test_6_code_point_split_across_fragments(peer):
    peer.send(frame(0x1, KOSME[:3], fin=False), frame(0x0, KOSME[3:]))
    peer.expect_accepted()


def test_6_invalid_in_the_first_fragment_fails_before_the_rest(peer):
    peer.send(frame(0x1, b"\xed\xa0\x80", fin=False))  # no more fragments are sent
    peer.expect_close(1007)


def test_6_invalid_at_the_start_of_a_frame_still_arriving_fails_fast(peer):
    whole = frame(0x1, b"\xc0\xaf" + b"x" * 60000)
    peer.send(whole[:200])  # the rest never arrives
    peer.expect_close(1007)


def test_6_binary_is_not_utf8_checked(peer):
    peer.send(frame(0x2, b"\xff\xfe\xc0"))
    peer.expect_accepted()


# ---- 7: closing --------------------------------------------------------------------

def test_7_close_without_payload_is_echoed_empty(peer):
    peer.send(frame(0x8))
    peer.expect_close(None)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
                                  3999, 4000, 4999])
def test_7_valid_close_codes_are_echoed(peer, code):
    peer.send(frame(0x8, close_payload(code, b"bye")))
    peer.expect_close(code)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
                                  65535])
def test_7_invalid_close_codes_are_1002(peer, code):
    peer.send(frame(0x8, close_payload(code)))
    peer.expect_close(1002)


def test_7_close_with_one_byte_payload_is_1002(peer):
    peer.send(frame(0x8, b"\x03"))
    peer.expect_close(1002)


def test_7_close_reason_of_invalid_utf8_is_1007(peer):
    peer.send(frame(0x8, close_payload(1000, b"\xce\xba\xed\xa0\x80")))
    peer.expect_close(1007)


def test_7_data_after_close_is_ignored(peer):
    peer.send(frame(0x8, close_payload(1000)) + frame(0x1, b"too late") + frame(0x9, b"late"))
    peer.expect_close(1000)


def test_7_close_reason_of_123_bytes(peer):
    peer.send(frame(0x8, close_payload(1000, b"r" * 123)))
    peer.expect_close(1000)


# ---- 9: limits ---------------------------------------------------------------------

def test_9_message_at_the_limit(peer):
    peer.send(frame(0x2, b"\0" * MAX))
    peer.expect_accepted()


def test_9_frame_over_the_limit_is_1009(peer):
    peer.send(frame(0x1, b"x" * (MAX + 1)))
    peer.expect_close(1009)


def test_9_fragments_over_the_limit_are_1009(peer):
    part = b"x" * (MAX // 2)
    peer.send(frame(0x1, part, fin=False), frame(0x0, part, fin=False), frame(0x0, b"!"))
    peer.expect_close(1009)


def test_9_frame_header_announcing_too_much_fails_before_the_payload(peer):
    peer.send(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 40) + b"\0\0\0\0")
    peer.expect_close(1009)


def test_9_many_small_messages(peer):
    peer.send(b"".join(frame(0x1, b"m%d" % i) for i in range(200)))
    for _ in range(200):
        peer.expect_accepted()
    peer.alive()


# ---- handshake -----------------------------------------------------------------------

def handshake(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        return read_until(s, b"\r\n\r\n")


KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize("request_bytes,status", [
    (f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
     f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n", b"101"),
    (f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
     f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n", b"426"),
    (f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
     f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n", b"400"),
    (f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
     f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n", b"400"),
    (f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\n\r\n", b"426"),
    ("GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: not-base64-16\r\nSec-WebSocket-Version: 13\r\n\r\n", b"400"),
    ("GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n", b"400"),
    (f"POST /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n", b"405"),
])
def test_handshake_validation(server, request_bytes, status):
    resp = handshake(server.ws_port, request_bytes.encode())
    assert resp.split(b" ")[1] == status, resp
    if status == b"101":
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in resp
    if status == b"426" and b"Version: 8" in request_bytes.encode():
        assert b"Sec-WebSocket-Version: 13\r\n" in resp


def test_handshake_deadline_drops_a_slow_client(fresh_server):
    srv = fresh_server("--header-timeout", "300ms")
    with socket.create_connection(("127.0.0.1", srv.ws_port), timeout=5) as s:
        s.sendall(b"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start = time.monotonic()
        data = read_to_eof(s)
        assert time.monotonic() - start < 2
        assert data.startswith(b"HTTP/1.1 408")


def test_slowloris_is_dropped_while_others_are_served(fresh_server):
    srv = fresh_server("--header-timeout", "1s")
    slow = socket.create_connection(("127.0.0.1", srv.api_port), timeout=5)
    slow.sendall(b"GET /api/v1/messages?topic=x HTTP/1.1\r\n")
    start = time.monotonic()
    closed = False
    while time.monotonic() - start < 3:
        try:
            slow.sendall(b"X-a: b\r\n")  # one header line at a time, never finishing
        except OSError:
            closed = True
            break
        from conftest import http
        assert http("GET", f"{srv.api}/api/v1/messages", "topic==x").status == 200
        time.sleep(0.25)
        slow.settimeout(0.01)
        try:
            if slow.recv(4096).startswith(b"HTTP/1.1 408"):
                closed = True
                break
        except (socket.timeout, BlockingIOError):
            pass
    assert closed, "the slow client was not dropped"
    assert time.monotonic() - start < 2.5


def test_allowed_origins(fresh_server):
    srv = fresh_server("--allowed-origins", "https://app.example, http://localhost:3000")
    def origin(value):
        extra = f"Origin: {value}\r\n" if value else ""
        return handshake(srv.ws_port, upgrade_request(extra=extra))
    assert origin("https://app.example").startswith(b"HTTP/1.1 101")
    assert origin("http://localhost:3000").startswith(b"HTTP/1.1 101")
    assert origin("https://evil.example").startswith(b"HTTP/1.1 403")
    assert origin(None).startswith(b"HTTP/1.1 101")  # not a browser
