"""Bad input gets a clear JSON error with the right status, and changes nothing."""
import socket

import pytest

from conftest import http, read_to_eof

TOPIC = "bad-input"


def post_raw(server, path, body, content_type="application/json", extra=""):
    req = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
           + (f"Content-Type: {content_type}\r\n" if content_type else "")
           + extra + "Connection: close\r\n\r\n").encode() + body
    return raw(server.api_port, req)


def raw(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_to_eof(s)


def status_of(response):
    return int(response.split(b" ", 2)[1])


def history_count(server):
    r = http("GET", f"{server.api}/api/v1/messages", f"topic=={TOPIC}", "limit==1000")
    return len(r.json["messages"])


def error_of(r):
    assert r.headers["content-type"] == "application/json"
    err = r.json["error"]
    assert set(err) == {"code", "message"}
    return err


@pytest.mark.parametrize("args,field,code", [
    (["content=x"], "topic", "missing_field"),
    ([f"topic={TOPIC}"], "content", "missing_field"),
    (["topic:=5", "content=x"], "topic", "invalid_field"),
    ([f"topic={TOPIC}", "content:={}"], "content", "invalid_field"),
    ([f"topic={TOPIC}", "content=x", "author:=[]"], "author", "invalid_field"),
    (["topic=bad topic", "content=x"], "topic", "invalid_field"),
    (["topic=a/b", "content=x"], "topic", "invalid_field"),
    (["topic=", "content=x"], "topic", "invalid_field"),
    (["topic=" + "x" * 129, "content=x"], "topic", "invalid_field"),
])
def test_publish_field_errors(server, args, field, code):
    before = history_count(server)
    r = http("POST", f"{server.api}/api/v1/messages", *args)
    assert r.status == 400, r
    err = error_of(r)
    assert err["code"] == code and field in err["message"]
    assert history_count(server) == before


def test_sender_type_is_checked_on_publish(server):
    r = http("POST", f"{server.api}/api/v1/publish", f"topic={TOPIC}", "content=x", "sender:=1")
    assert r.status == 400 and "sender" in error_of(r)["message"]


@pytest.mark.parametrize("args,field", [
    ([f"topic={TOPIC}"], "connectionID"),
    ([f"topic={TOPIC}", "connectionID:=12"], "connectionID"),
    ([f"topic={TOPIC}", "connectionID=nope"], "connectionID"),
    (["connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2"], "topic"),
    (["topic:=[1]", "connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2"], "topic"),
])
def test_subscribe_field_errors(server, args, field):
    r = http("POST", f"{server.api}/api/v1/subscribes", *args)
    assert r.status == 400, r
    assert field in error_of(r)["message"]


def test_malformed_json(server):
    before = history_count(server)
    for body in (b"{", b"not json", b"[1,2]", b'{"topic": "a",}', b""):
        resp = post_raw(server, "/api/v1/messages", body)
        assert status_of(resp) == 400, resp
        assert b'"invalid_json"' in resp
    assert history_count(server) == before


def test_content_limit(server):
    before = history_count(server)
    ok = http("POST", f"{server.api}/api/v1/messages", f"topic={TOPIC}", "content=" + "a" * 65536)
    assert ok.status == 201
    r = http("POST", f"{server.api}/api/v1/messages", f"topic={TOPIC}", "content=" + "a" * 65537)
    assert r.status == 413 and "content" in error_of(r)["message"]
    assert history_count(server) == before + 1


def test_body_limit(server):
    body = b'{"topic":"x","content":"' + b"a" * (1024 * 1024 + 10) + b'"}'
    resp = post_raw(server, "/api/v1/messages", body)
    assert status_of(resp) == 413 and b"payload_too_large" in resp


def test_wrong_content_type_is_415(server):
    resp = post_raw(server, "/api/v1/messages", b"topic=x&content=y",
                    "application/x-www-form-urlencoded")
    assert status_of(resp) == 415 and b"unsupported_media_type" in resp
    resp = post_raw(server, "/api/v1/messages", b'{"topic":"bad-input","content":"y"}', None)
    assert status_of(resp) == 201  # no Content-Type: read as JSON


def test_unknown_path_and_method(server):
    r = http("GET", f"{server.api}/api/v1/nothing")
    assert r.status == 404 and error_of(r)["code"] == "not_found"
    r = http("PUT", f"{server.api}/api/v1/messages")
    assert r.status == 405 and error_of(r)["code"] == "method_not_allowed"
    assert set(m.strip() for m in r.headers["allow"].split(",")) == {"GET", "HEAD", "POST"}
    r = http("GET", f"http://127.0.0.1:{server.ws_port}/elsewhere")
    assert r.status == 404


def test_huge_header_is_431(server):
    resp = raw(server.api_port, b"GET /api/v1/messages?topic=x HTTP/1.1\r\nHost: x\r\nX-Big: "
               + b"a" * 70000 + b"\r\n\r\n")
    assert status_of(resp) == 431 and b"header_fields_too_large" in resp
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    resp = raw(server.api_port, b"GET /api/v1/messages?topic=x HTTP/1.1\r\nHost: x\r\n" + many
               + b"\r\n")
    assert status_of(resp) == 431


def test_garbage_request_line_is_400(server):
    resp = raw(server.api_port, b"\x00\x01garbage\r\n\r\n")
    assert status_of(resp) == 400 and b'"error"' in resp


def test_head_has_no_body(server):
    resp = raw(server.api_port, b"HEAD /api/v1/messages?topic=bad-input HTTP/1.1\r\nHost: x\r\n"
               b"Connection: close\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert status_of(resp) == 200 and b"Content-Length:" in head and body == b""


def test_pipelined_requests_are_answered_in_order(server):
    reqs = b"".join(
        b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in [b'{"topic":"pipe","content":"%d"}' % i for i in range(5)])
    reqs += b"GET /api/v1/messages?topic=pipe&forward=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = raw(server.api_port, reqs)
    assert resp.count(b"HTTP/1.1 201 Created") == 5
    assert resp.rfind(b"HTTP/1.1 200 OK") > resp.rfind(b"HTTP/1.1 201")
    contents = [int(x) for x in __import__("re").findall(rb'"content":"(\d)"', resp)]
    assert contents[:5] == [0, 1, 2, 3, 4]


def test_chunked_body_and_expect_continue(server):
    body = b'{"topic":"bad-input","content":"chunked"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    resp = raw(server.api_port, b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunked)
    assert status_of(resp) == 201 and b'"content":"chunked"' in resp
    with socket.create_connection(("127.0.0.1", server.api_port), timeout=5) as s:
        s.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                  % len(body))
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        assert b"201 Created" in s.recv(4096)


def test_server_still_serves_after_all_that(server):
    r = http("POST", f"{server.api}/api/v1/messages", f"topic={TOPIC}", "content=alive")
    assert r.status == 201


def test_keep_alive_goes_on_after_an_immediate_answer(server):
    """Errors are answered without waiting for the store; the connection must
    keep reading after them."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.api_port, timeout=5)
    for path, status in [("/nope", 404), ("/api/v1/messages", 400),
                         ("/api/v1/messages?topic=bad-input", 200), ("/nope", 404)]:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == status, path
    conn.close()


def test_long_request_line_is_431(server):
    resp = raw(server.api_port, b"GET /api/v1/messages?topic=" + b"a" * 9000 + b" HTTP/1.1\r\n"
               b"Host: x\r\n\r\n")
    assert status_of(resp) == 431 and b"request_line_too_large" in resp
