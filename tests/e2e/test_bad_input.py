"""Bad input gets a clear JSON error with the right status, and changes nothing."""
import socket

import pytest

from conftest import call, http, read_to_eof

TOPIC = "bad-input"


def post_raw(server, path, body, content_type="application/json", extra=""):
    req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
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
    status, page = call(server, "GET", f"/api/v1/messages?topic={TOPIC}&limit=1000")
    assert status == 200
    return len(page["messages"])


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
    before = history_count(server)
    body = b'{"topic":"bad-input","content":"y"}'
    # What a page may send anywhere without a preflight: no Content-Type (a
    # Blob), text/plain, a form; and JSON look-alikes. None is read as JSON.
    for content_type in (None, "text/plain", "text/plain;charset=UTF-8",
                         "multipart/form-data; boundary=x", "application/merge-patch+json",
                         "application/jsonp", ""):
        resp = post_raw(server, "/api/v1/messages", body, content_type)
        assert status_of(resp) == 415, (content_type, resp)
        assert b'"code":"unsupported_media_type"' in resp
    for path in ("/api/v1/publish", "/api/v1/subscribes", "/api/v1/notification"):
        resp = post_raw(server, path, body, None)
        assert status_of(resp) == 415 and b"unsupported_media_type" in resp, (path, resp)
    assert history_count(server) == before
    # Parameters are fine.
    resp = post_raw(server, "/api/v1/messages", body, "Application/JSON; charset=utf-8")
    assert status_of(resp) == 201


def test_unknown_path_and_method(server):
    r = http("GET", f"{server.api}/api/v1/nothing")
    assert r.status == 404 and error_of(r)["code"] == "not_found"
    r = http("PUT", f"{server.api}/api/v1/messages")
    assert r.status == 405 and error_of(r)["code"] == "method_not_allowed"
    assert set(m.strip() for m in r.headers["allow"].split(",")) == {"GET", "HEAD", "POST"}
    r = http("GET", f"http://127.0.0.1:{server.ws_port}/elsewhere")
    assert r.status == 404


def test_huge_header_is_431(server):
    resp = raw(server.api_port, b"GET /api/v1/messages?topic=x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
               + b"a" * 70000 + b"\r\n\r\n")
    assert status_of(resp) == 431 and b"header_fields_too_large" in resp
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    resp = raw(server.api_port, b"GET /api/v1/messages?topic=x HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many
               + b"\r\n")
    assert status_of(resp) == 431


def test_garbage_request_line_is_400(server):
    resp = raw(server.api_port, b"\x00\x01garbage\r\n\r\n")
    assert status_of(resp) == 400 and b'"error"' in resp


def test_head_has_no_body(server):
    resp = raw(server.api_port, b"HEAD /api/v1/messages?topic=bad-input HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Connection: close\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert status_of(resp) == 200 and b"Content-Length:" in head and body == b""


def test_pipelined_requests_are_answered_in_order(server):
    reqs = b"".join(
        b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in [b'{"topic":"pipe","content":"%d"}' % i for i in range(5)])
    reqs += b"GET /api/v1/messages?topic=pipe&forward=true HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    resp = raw(server.api_port, reqs)
    assert resp.count(b"HTTP/1.1 201 Created") == 5
    assert resp.rfind(b"HTTP/1.1 200 OK") > resp.rfind(b"HTTP/1.1 201")
    contents = [int(x) for x in __import__("re").findall(rb'"content":"(\d)"', resp)]
    assert contents[:5] == [0, 1, 2, 3, 4]


def test_chunked_body_and_expect_continue(server):
    body = b'{"topic":"bad-input","content":"chunked"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    resp = raw(server.api_port, b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunked)
    assert status_of(resp) == 201 and b'"content":"chunked"' in resp
    with socket.create_connection(("127.0.0.1", server.api_port), timeout=5) as s:
        s.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
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
               b"Host: 127.0.0.1\r\n\r\n")
    assert status_of(resp) == 431 and b"request_line_too_large" in resp


@pytest.mark.parametrize("args,field", [
    (["--raw", "{}"], "connectionID"),
    (["payload=x"], "connectionID"),
    (["connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2"], "payload"),
    (["connectionID:=12", "payload=x"], "connectionID"),
    (["connectionID=nope", "payload=x"], "connectionID"),
    (["connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2", "payload:=true"], "payload"),
    (["connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2", "payload:={}"], "payload"),
])
def test_notification_field_errors(server, args, field):
    r = http("POST", f"{server.api}/api/v1/notification", *args)
    assert r.status == 400, r
    err = error_of(r)
    assert err["code"] in ("missing_field", "invalid_field") and field in err["message"]


@pytest.mark.parametrize("args,field", [
    ([f"topic={TOPIC}"], "connectionID"),
    (["connectionID:=12"], "connectionID"),
    (["connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2x"], "connectionID"),
    (["connectionID==nope"], "connectionID"),
    (["topic:=5", "connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2"], "topic"),
    (["topic=a b", "connectionID=01GYZ8RAHSE45A2JCVNVA6BTJ2"], "topic"),
])
def test_unsubscribe_field_errors(server, args, field):
    r = http("DELETE", f"{server.api}/api/v1/subscribes", *args)
    assert r.status == 400, r
    assert field in error_of(r)["message"]


@pytest.mark.parametrize("path,args,field", [
    ("subscribes", ["connectionID==nope"], "connectionID"),
    ("subscribes", ["topic==a b"], "topic"),
    ("subscribes", ["topic==" + "t" * 129], "topic"),
    ("messages", ["topic==a/b"], "topic"),
    ("messages", ["topic=="], "topic"),
    ("messages/01GY1AZN62M9PDQDWGYG3VW6DJ", ["topic==a b"], "topic"),
])
def test_query_parameter_errors(server, path, args, field):
    r = http("GET", f"{server.api}/api/v1/{path}", *args)
    assert r.status == 400, r
    err = error_of(r)
    assert err["code"] == "invalid_field" and field in err["message"]


@pytest.mark.parametrize("id_", ["not-a-ulid", "01GY1AZN62M9PDQDWGYG3VW6D",
                                 "01GY1AZN62M9PDQDWGYG3VW6DJX", "01GY1AZN62M9PDQDWGYG3VW6DU",
                                 "81GY1AZN62M9PDQDWGYG3VW6DJ"])
def test_message_id_must_be_a_ulid(server, id_):
    """Too short, too long, a U (not Crockford), over 48 bits of time."""
    r = http("GET", f"{server.api}/api/v1/messages/{id_}")
    assert r.status == 400, (id_, r)
    assert error_of(r)["code"] == "invalid_field"


@pytest.mark.parametrize("args,field", [
    ([f"topic={TOPIC}", "content:=null"], "content"),
    ([f"topic={TOPIC}", "content:=5"], "content"),
    ([f"topic={TOPIC}", "content:=[\"x\"]"], "content"),
    ([f"topic={TOPIC}", "content=x", "author:=5"], "author"),
    ([f"topic={TOPIC}", "content=x", "author:={}"], "author"),
    (["topic:=null", "content=x"], "topic"),
    (["topic:={}", "content=x"], "topic"),
])
def test_more_wrong_types_on_publish(server, args, field):
    before = history_count(server)
    r = http("POST", f"{server.api}/api/v1/messages", *args)
    assert r.status == 400, r
    assert field in error_of(r)["message"]
    assert history_count(server) == before


@pytest.mark.parametrize("args,field", [
    (["content=x", "sender=a"], "topic"),
    ([f"topic={TOPIC}", "sender=a"], "content"),
    ([f"topic={TOPIC}", "content:=5"], "content"),
    ([f"topic={TOPIC}", "content=x", "sender:=[]"], "sender"),
])
def test_publish_alias_field_errors(server, args, field):
    r = http("POST", f"{server.api}/api/v1/publish", *args)
    assert r.status == 400, r
    assert field in error_of(r)["message"]


def test_malformed_json_of_other_kinds(server):
    before = history_count(server)
    for body in (b'{"topic":"bad-input","topic":"bad-input","content":"x"}',  # duplicate key
                 b'{"topic":"bad-input","content":"\xff\xfe"}',  # not UTF-8
                 b'{"topic":"bad-input","content":"x"} trailing',
                 b'"just a string"', b"null", b"{" * 5000):
        resp = post_raw(server, "/api/v1/messages", body)
        assert status_of(resp) == 400, (body[:40], resp)
        assert b'"invalid_json"' in resp
    for path in ("/api/v1/subscribes", "/api/v1/notification", "/api/v1/publish"):
        resp = post_raw(server, path, b"{not json")
        assert status_of(resp) == 400 and b'"invalid_json"' in resp, path
    assert history_count(server) == before


def test_content_limit_counts_utf8_bytes(server):
    before = history_count(server)
    ok = http("POST", f"{server.api}/api/v1/messages", f"topic={TOPIC}",
              "content=" + "\u00e9" * 32768)  # 32768 characters, 65536 bytes
    assert ok.status == 201, ok
    r = http("POST", f"{server.api}/api/v1/messages", f"topic={TOPIC}",
             "content=" + "\u00e9" * 32768 + "x")  # 65537 bytes
    assert r.status == 413 and error_of(r)["code"] == "payload_too_large"
    assert history_count(server) == before + 1


def test_limits_follow_the_flags(fresh_server):
    srv = fresh_server("--max-content", "16", "--max-body", "1k")
    ok = http("POST", f"{srv.api}/api/v1/messages", "topic=small", "content=" + "a" * 16)
    assert ok.status == 201
    r = http("POST", f"{srv.api}/api/v1/messages", "topic=small", "content=" + "a" * 17)
    assert r.status == 413 and error_of(r)["code"] == "payload_too_large"
    resp = post_raw(srv, "/api/v1/messages",
                    b'{"topic":"small","content":"a","author":"' + b"b" * 1000 + b'"}')
    assert status_of(resp) == 413 and b"payload_too_large" in resp
    r = http("GET", f"{srv.api}/api/v1/messages", "topic==small")
    assert [m["content"] for m in r.json["messages"]] == ["a" * 16]


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/api/v1/messages", {"GET", "POST"}),
    ("DELETE", "/api/v1/messages", {"GET", "POST"}),
    ("PATCH", "/api/v1/subscribes", {"GET", "POST", "DELETE"}),
    ("POST", "/api/v1/messages/01GY1AZN62M9PDQDWGYG3VW6DJ", {"GET", "DELETE"}),
    ("GET", "/api/v1/notification", {"POST"}),
    ("GET", "/api/v1/publish", {"POST"}),
])
def test_405_names_the_allowed_methods(server, method, path, allowed):
    r = http(method, f"{server.api}{path}")
    assert r.status == 405, r
    assert error_of(r)["code"] == "method_not_allowed"
    listed = {m.strip() for m in r.headers["allow"].split(",")}
    assert allowed <= listed and listed <= allowed | {"HEAD", "OPTIONS"}, listed


def test_unknown_paths_are_404_for_every_method(server):
    for method in ("GET", "POST", "DELETE"):
        r = http(method, f"{server.api}/api/v2/messages")
        assert r.status == 404 and error_of(r)["code"] == "not_found", method
    r = http("GET", f"{server.api}/api/v1/ws")  # the WebSocket lives on the other port
    assert r.status == 404


def test_bad_content_length_and_truncated_bodies(server):
    resp = raw(server.api_port, b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Length: abc\r\n\r\n{}")
    assert status_of(resp) == 400
    # a body cut short by the client: no answer is owed, nothing is stored
    before = history_count(server)
    with socket.create_connection(("127.0.0.1", server.api_port), timeout=5) as s:
        s.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                  b"\r\nContent-Length: 100\r\n\r\n{\"topic\":\"bad-input\",\"content\":\"x\"}")
        s.shutdown(socket.SHUT_WR)
        read_to_eof(s)
    assert history_count(server) == before


def test_rejected_requests_stored_nothing(server):
    """Runs last in this module: every request above that carried content "x"
    (or 65537 bytes) to the bad-input topic was refused, so none is stored."""
    r = http("GET", f"{server.api}/api/v1/messages", f"topic=={TOPIC}", "limit==1000")
    assert r.status == 200
    contents = [m["content"] for m in r.json["messages"]]
    assert "x" not in contents
    assert all(len(c.encode()) <= 65536 for c in contents)
    for other in ("x", "a", "small"):
        r = http("GET", f"{server.api}/api/v1/messages", f"topic=={other}")
        assert r.json["messages"] == [], other
