"""TLS on both listeners (--tls-cert / --tls-key): https:// and wss:// with real
TLS clients (Python ssl and http.client, HTTPie, websockets) that verify the
server against a throwaway CA made here with the openssl command line."""
import asyncio
import contextlib
import http.client as httplib
import json
import signal
import socket
import ssl
import subprocess
import time

import pytest
import websockets

from conftest import (BIN, Server, free_port, http, publish_requests, read_to_eof, stop_cleanly,
                      upgrade_request)

HEADER_TIMEOUT = 1.0


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, and a server certificate it signed for localhost and 127.0.0.1."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=houston test CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    # A second key that matches no certificate here.
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "other.key", cwd=d)
    return d


@pytest.fixture(scope="module")
def tls(pki, tmp_path_factory):
    """One server with TLS on the WebSocket, API and metrics listeners."""
    metrics_port = free_port()
    srv = Server(tmp_path_factory.mktemp("houston-tls"), "--tls-cert", str(pki / "server.pem"),
                 "--tls-key", str(pki / "server.key"), "--header-timeout", f"{int(HEADER_TIMEOUT * 1000)}ms",
                 "--metrics-addr", f"127.0.0.1:{metrics_port}", "--log-level", "debug",
                 "--max-pending", "64m").start()
    srv.metrics_port = metrics_port
    yield srv
    stop_cleanly(srv)


def client_context(pki, **versions):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    for name, value in versions.items():
        setattr(ctx, name, value)
    return ctx


def https(srv, pki, method, path, body=None, port=None, host="127.0.0.1"):
    conn = httplib.HTTPSConnection(host, port or srv.api_port, timeout=10,
                                       context=client_context(pki))
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"} if body is not None else {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.strip() else None), conn.sock.version()
    finally:
        conn.close()


def healthy(srv, pki):
    return https(srv, pki, "GET", "/healthz")[0] == 200


def test_https_healthz_publish_and_keep_alive(tls, pki):
    status, body, version = https(tls, pki, "GET", "/healthz", host="localhost")
    assert (status, body) == (200, {"status": "ok"})
    assert version == "TLSv1.3"
    # Several requests on one TLS connection.
    conn = httplib.HTTPSConnection("127.0.0.1", tls.api_port, timeout=10,
                                       context=client_context(pki))
    for i in range(3):
        conn.request("POST", "/api/v1/messages",
                     body=json.dumps({"topic": "tls-a", "content": f"m{i}"}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        msg = json.loads(resp.read())
        assert resp.status == 201 and msg["content"] == f"m{i}"
    conn.close()


def test_tls_1_2_is_accepted(tls, pki):
    ctx = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", tls.api_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() == "TLSv1.2"
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert read_to_eof(s).startswith(b"HTTP/1.1 200")


def test_httpie_verifies_the_server_against_the_ca(tls, pki):
    r = http(f"--verify={pki / 'ca.pem'}", "POST",
             f"https://127.0.0.1:{tls.api_port}/api/v1/messages", "topic=tls-b",
             "content=over https")
    assert r.status == 201 and r.json["content"] == "over https"


def test_metrics_listener_speaks_tls_too(tls, pki):
    status, body, _ = https(tls, pki, "GET", "/healthz", port=tls.metrics_port)
    assert (status, body) == (200, {"status": "ok"})


def test_wss_connect_subscribe_receive_fragments_and_ping(tls, pki):
    async def go():
        ws = await websockets.connect(f"wss://localhost:{tls.ws_port}/api/v1/ws",
                                      ssl=client_context(pki))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["type"] == "connected"
        cid = hello["connectionID"]
        status, _, _ = await asyncio.to_thread(https, tls, pki, "POST", "/api/v1/subscribes",
                                               {"topic": "tls-c", "connectionID": cid})
        assert status == 201
        # One small message, one larger than a TLS record, then a burst.
        sent = []
        for content in ["hello wss", "x" * 40000] + [f"burst {i}" for i in range(50)]:
            status, msg, _ = await asyncio.to_thread(https, tls, pki, "POST",
                                                     "/api/v1/messages",
                                                     {"topic": "tls-c", "content": content})
            assert status == 201
            sent.append(msg)
        for msg in sent:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert frame == {"type": "message", "message": msg}
        # A fragmented message (houston answers any client message it does
        # not know with an error frame) and a ping.
        await ws.send(iter(["{\"type\":", "\"nothing\"", "}"]))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer["type"] == "error"
        await asyncio.wait_for(await ws.ping(b"tls"), 5)
        await ws.close()
        assert ws.close_code == 1000
    asyncio.run(asyncio.wait_for(go(), 20))


def read_frame(sock, buf):
    """One server frame (never masked) from an SSL socket: (opcode, payload, rest)."""
    while True:
        if len(buf) >= 2:
            n, pos = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, pos = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127 and len(buf) >= 10:
                n, pos = int.from_bytes(buf[2:10], "big"), 10
            if n < 126 or pos > 2:
                if len(buf) >= pos + n:
                    return buf[0] & 0x0F, buf[pos:pos + n], buf[pos + n:]
        chunk = sock.recv(1 << 20)
        assert chunk, "closed"
        buf += chunk


@contextlib.contextmanager
def late_wss_subscriber(tls, pki, topic):
    """A wss client with a small receive window, subscribed to topic, that
    reads nothing until the test calls its read_ids(n): the n message ids it
    then receives, in order."""
    ctx = client_context(pki)
    with socket.socket() as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a small window
        raw.settimeout(10)
        raw.connect(("127.0.0.1", tls.ws_port))
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(upgrade_request())
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(4096)
            head, _, buf = buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            _, payload, buf = read_frame(s, buf)
            cid = json.loads(payload)["connectionID"]
            assert https(tls, pki, "POST", "/api/v1/subscribes",
                         {"topic": topic, "connectionID": cid})[0] == 201

            def read_ids(n):
                nonlocal buf
                got = []
                while len(got) < n:
                    opcode, payload, buf = read_frame(s, buf)
                    assert opcode == 1
                    got.append(json.loads(payload)["message"]["id"])
                return got
            yield read_ids


def test_a_client_that_reads_late_gets_every_byte_in_order(tls, pki):
    """4 MiB for a wss client that does not read for a while: the socket
    fills, the rest goes through uv_write while more is encrypted behind it."""
    with late_wss_subscriber(tls, pki, "tls-late") as read_ids:
        sent = []
        for i in range(70):  # not reading meanwhile
            status, msg, _ = https(tls, pki, "POST", "/api/v1/messages",
                                   {"topic": "tls-late", "content": f"{i:04d}" + "y" * 60000})
            assert status == 201
            sent.append(msg["id"])
        assert read_ids(len(sent)) == sent


def test_a_run_of_messages_reaches_a_late_wss_reader_in_order(tls, pki):
    """Publishes pipelined on one https connection commit together and reach
    the notifier in one pass: the subscriber's queue gets them as one vector
    of frames, which the TLS flush encrypts across the frames' boundaries
    while the client does not read."""
    with late_wss_subscriber(tls, pki, "tls-run") as read_ids:
        requests = publish_requests({"topic": "tls-run", "content": f"{i:04d}" + "r" * (i * 997)}
                                    for i in range(40))
        sent = []
        with socket.create_connection(("127.0.0.1", tls.api_port), timeout=10) as api_raw:
            with client_context(pki).wrap_socket(api_raw, server_hostname="localhost") as api:
                api.sendall(requests)
                answers = b""
                while len(sent) < 40:
                    chunk = api.recv(1 << 20)
                    assert chunk, "closed"
                    answers += chunk
                    while b"\r\n\r\n" in answers:
                        head, _, rest = answers.partition(b"\r\n\r\n")
                        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                        if len(rest) < length:
                            break
                        assert head.startswith(b"HTTP/1.1 201"), head
                        sent.append(json.loads(rest[:length])["id"])
                        answers = rest[length:]
        assert read_ids(len(sent)) == sent


def test_request_sent_with_the_client_finished(tls, pki):
    """The client's first request travels in the same segment as its
    Finished message; the server must not lose it."""
    ctx = client_context(pki)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", tls.api_port), timeout=5) as s:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    s.sendall(outgoing.read())
                data = s.recv(65536)
                assert data, "server closed during the handshake"
                incoming.write(data)
        obj.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        s.sendall(outgoing.read())  # Finished + the request, one send
        reply = b""
        while b"\r\n\r\n" not in reply:
            try:
                reply += obj.read(65536)
            except ssl.SSLWantReadError:
                data = s.recv(65536)
                assert data, "server closed without answering"
                incoming.write(data)
        assert reply.startswith(b"HTTP/1.1 200")


def test_server_sends_close_notify(tls, pki):
    ctx = client_context(pki)
    with socket.create_connection(("127.0.0.1", tls.api_port), timeout=5) as raw:
        # Without suppress_ragged_eofs a TCP close without close_notify is
        # an SSLEOFError; a clean TLS close reads as b"".
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_1_0_and_1_1_are_refused(tls, pki, version):
    ctx = client_context(pki, minimum_version=ssl.TLSVersion.TLSv1,
                         maximum_version=getattr(ssl.TLSVersion, version))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer them at all
    with socket.create_connection(("127.0.0.1", tls.api_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    assert healthy(tls, pki)
    assert "unsupported protocol" in tls.logs()


@pytest.mark.parametrize("port_name", ["api_port", "ws_port"])
def test_plain_http_on_a_tls_port_is_closed(tls, pki, port_name):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", getattr(tls, port_name)), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" if port_name == "api_port"
                  else upgrade_request())
        reply = read_to_eof(s)
    assert b"HTTP/1.1" not in reply and b"ok" not in reply
    assert time.monotonic() - start < HEADER_TIMEOUT  # closed at once, not timed out
    assert healthy(tls, pki)
    assert "http request" in tls.logs()


@pytest.mark.parametrize("first_bytes", [b"", b"\x16\x03\x01\x02\x00\x01"])
def test_unfinished_handshake_is_closed_after_the_header_timeout(tls, pki, first_bytes):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls.ws_port), timeout=5) as s:
        s.sendall(first_bytes)  # nothing, or the start of a ClientHello
        assert read_to_eof(s) == b""
    took = time.monotonic() - start
    assert HEADER_TIMEOUT * 0.8 < took < HEADER_TIMEOUT + 2, took
    assert healthy(tls, pki)


def run_houston(tmp_path, *args):
    out = subprocess.run([BIN, "serve", "--ws-addr", f"127.0.0.1:{free_port()}", "--api-addr",
                          f"127.0.0.1:{free_port()}", "--db", f"sqlite:{tmp_path / 'h.db'}",
                          *args], capture_output=True, text=True, timeout=10)
    return out.returncode, out.stderr


def test_start_up_errors(pki, tmp_path):
    cert, key = str(pki / "server.pem"), str(pki / "server.key")
    code, err = run_houston(tmp_path, "--tls-cert", cert)
    assert code != 0 and "--tls-key" in err, err
    code, err = run_houston(tmp_path, "--tls-key", key)
    assert code != 0 and "--tls-cert" in err, err
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    code, err = run_houston(tmp_path, "--tls-cert", str(tmp_path / "junk.pem"), "--tls-key", key)
    assert code != 0 and "--tls-cert" in err and "junk.pem" in err, err
    code, err = run_houston(tmp_path, "--tls-cert", cert, "--tls-key", str(tmp_path / "nope.key"))
    assert code != 0 and "--tls-key" in err and "nope.key" in err, err
    code, err = run_houston(tmp_path, "--tls-cert", cert, "--tls-key", str(pki / "other.key"))
    assert code != 0 and "does not match" in err, err
    code, err = run_houston(tmp_path, "--tls-cert", cert, "--tls-key", key,
                            "--tls-min-version", "1.1")
    assert code != 0 and "--tls-min-version" in err, err
    assert not (tmp_path / "h.db").exists()  # refused before anything was opened


def test_min_version_1_3_refuses_1_2(pki, fresh_server):
    srv = fresh_server("--tls-cert", str(pki / "server.pem"), "--tls-key",
                       str(pki / "server.key"), "--tls-min-version", "1.3")
    ctx = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", srv.api_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    assert https(srv, pki, "GET", "/healthz")[2] == "TLSv1.3"


def test_sighup_loads_a_renewed_certificate(pki, fresh_server, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes((pki / "server.pem").read_bytes())
    key.write_bytes((pki / "server.key").read_bytes())
    srv = fresh_server("--tls-cert", str(cert), "--tls-key", str(key))

    def serial():
        ctx = client_context(pki)
        with socket.create_connection(("127.0.0.1", srv.api_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                return s.getpeercert()["serialNumber"]

    first = serial()
    # A renewed certificate: same key, new serial.
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", str(cert), "-days", "3", "-extfile", "ext.cnf", cwd=pki)
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "loaded again" not in srv.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert serial() != first
    # A broken file on the next SIGHUP: logged, the certificate in use stays.
    second = serial()
    cert.write_text("broken\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "keeping the previous certificate" not in srv.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "keeping the previous certificate" in srv.logs()
    assert serial() == second and healthy(srv, pki)
