"""The command line client (houston pub|sub|history|status) against a real
server: the binary is run as a user would, its stdout read as JSON lines."""
import http.client as httpclient
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import BIN, free_port, http


def env_for(srv, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSTON_")}
    env["HOUSTON_URL"] = srv.api
    env["HOUSTON_WS_URL"] = f"ws://127.0.0.1:{srv.ws_port}"
    env.update(extra)
    return env


def cli(srv, *args, timeout=20, **extra):
    return subprocess.run([BIN, *args], env=env_for(srv, **extra), capture_output=True,
                          text=True, timeout=timeout)


def lines(out):
    return [json.loads(line) for line in out.splitlines()]


class Publisher:
    """A keep-alive HTTP client (http.client) for publishing in bulk."""

    def __init__(self, srv):
        self.conn = httpclient.HTTPConnection("127.0.0.1", srv.api_port, timeout=10)

    def pub(self, topic, content):
        self.conn.request("POST", "/api/v1/messages", json.dumps(
            {"topic": topic, "content": content}), {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 201, body
        return body

    def history(self, topic, after):
        out, cursor = [], after
        while True:
            self.conn.request("GET", f"/api/v1/messages?topic={topic}&limit=1000&forward=true"
                              + (f"&lastID={cursor}" if cursor else ""))
            page = json.loads(self.conn.getresponse().read())
            out += page["messages"]
            cursor = page["next"]
            if cursor is None:
                return out


class Sub:
    """houston sub in the background; a thread collects its stdout lines."""

    def __init__(self, srv, *args):
        self.proc = subprocess.Popen([BIN, "sub", *args], env=env_for(srv),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def wait_lines(self, count, deadline=15):
        end = time.monotonic() + deadline
        while len(self.lines) < count and time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        return self.lines

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(10)
        self.reader.join(5)
        return code, self.proc.stderr.read()


def wait_subscribed(srv, topic, count=1, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        r = http("GET", f"{srv.api}/api/v1/subscribes", f"topic=={topic}")
        if r.status == 200 and len(r.json) >= count:
            return r.json
        time.sleep(0.05)
    raise AssertionError(f"no subscription on {topic}")


# ---- pub and history -------------------------------------------------------------

def test_pub_prints_the_stored_message_and_history_has_it(server, topic):
    r = cli(server, "pub", topic, "Hello Houston.", "--author", "alice")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1
    msg = json.loads(r.stdout)
    assert msg["topic"] == topic and msg["content"] == "Hello Houston."
    assert msg["author"] == "alice" and len(msg["id"]) == 26
    # the server has it, and history prints it
    got = http("GET", f"{server.api}/api/v1/messages/{msg['id']}", f"topic=={topic}")
    assert got.status == 200 and got.json == msg
    h = cli(server, "history", topic)
    assert h.returncode == 0 and lines(h.stdout) == [msg]


def test_pub_with_server_flag_and_text_starting_with_a_dash(server, topic):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSTON_")}
    r = subprocess.run([BIN, "pub", "--server", server.api, topic, "--", "-5 degrees"],
                       env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["content"] == "-5 degrees"


def test_pub_bad_topic_prints_the_server_error(server):
    r = cli(server, "pub", "bad topic!", "x")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "400" in r.stderr and "must be 1-128 characters" in r.stderr


def test_usage_errors_exit_2(server, topic):
    assert cli(server, "pub", topic).returncode == 2
    assert cli(server, "history", topic, "--before", "x" * 26, "--after", "y" * 26).returncode == 2
    assert cli(server, "sub", topic, "--limit", "3").returncode == 2
    assert cli(server, "sub", topic, "--since", "short").returncode == 2


def test_history_limit_before_after(server, topic):
    p = Publisher(server)
    ids = [p.pub(topic, f"m{i}")["id"] for i in range(15)]

    def hist(*args):
        r = cli(server, "history", topic, *args)
        assert r.returncode == 0, r.stderr
        return [m["id"] for m in lines(r.stdout)]

    assert hist() == ids
    assert hist("--limit", "3") == ids[-3:]
    assert hist("--after", ids[4]) == ids[5:]
    assert hist("--after", ids[4], "--limit", "2") == ids[5:7]
    assert hist("--before", ids[10]) == ids[:10]
    assert hist("--before", ids[10].lower(), "--limit", "3") == ids[7:10]
    assert hist("--after", ids[-1]) == []


# ---- sub --------------------------------------------------------------------------

def test_sub_prints_live_messages_as_json_lines(server, topic):
    other = topic + "-b"
    sub = Sub(server, topic, other)
    connection_id = wait_subscribed(server, topic)[0]["connectionID"]
    wait_subscribed(server, other)
    p = Publisher(server)
    sent = [p.pub(topic, "one"), p.pub(other, "two"), p.pub(topic, "three")]
    assert sub.wait_lines(3) == sent
    code, err = sub.stop(signal.SIGINT)
    assert code == 0, err
    # the connection is gone, closed with 1000, and its subscriptions with it
    end = time.monotonic() + 5
    while http("GET", f"{server.api}/api/v1/subscribes", f"topic=={topic}").json:
        assert time.monotonic() < end
        time.sleep(0.05)
    assert f"conn {connection_id} closed (code 1000, clean)" in server.logs()


PUBLISHER = r"""
import http.client, json, os, sys
port, topic, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
i = 0
while not os.path.exists(stop):
    c.request("POST", "/api/v1/messages", json.dumps({"topic": topic, "content": f"live {i}"}),
              {"Content-Type": "application/json"})
    assert c.getresponse().read() and True
    i += 1
print(i)
"""


def test_sub_since_prints_history_then_live_without_gap_or_duplicate(server, topic, tmp_path):
    p = Publisher(server)
    before = [p.pub(topic, f"old {i}") for i in range(1500)]
    since = before[99]["id"]
    stop = tmp_path / "stop"
    # Another process publishes all along: before, during and after the
    # subscribe and the catch-up.
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(server.api_port), topic,
                                  str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        sub = Sub(server, topic, "--since", since)
        wait_subscribed(server, topic)
        time.sleep(1.0)
    finally:
        stop.touch()
        published = int(publisher.communicate(timeout=20)[0])
    assert published > 0
    expected = p.history(topic, since)
    assert len(expected) == 1400 + published
    got = sub.wait_lines(len(expected))
    time.sleep(0.2)  # nothing more may come
    code, err = sub.stop(signal.SIGTERM)
    assert code == 0, err
    got_ids, expected_ids = [m["id"] for m in got], [m["id"] for m in expected]
    assert len(set(got_ids)) == len(got_ids), "duplicate"
    assert got_ids == expected_ids
    assert got == expected
    # history pages through all of it as well (2 pages and more)
    h = cli(server, "history", topic)
    assert len(h.stdout.splitlines()) == 1500 + published


def test_sub_exits_nonzero_when_the_server_goes_away(fresh_server, topic):
    srv = fresh_server()
    sub = Sub(srv, topic)
    wait_subscribed(srv, topic)
    assert srv.stop() == 0
    code = sub.proc.wait(10)
    err = sub.proc.stderr.read()
    assert code == 1
    assert "1001" in err or "going away" in err


# ---- status, errors, flags ---------------------------------------------------------

def test_status_shows_readiness_and_metrics(server, topic):
    cli(server, "pub", topic, "x")
    r = cli(server, "status")
    assert r.returncode == 0, r.stderr
    assert ": ready" in r.stdout
    for label in ("WebSocket connections", "subscriptions", "messages published", "deliveries"):
        assert label in r.stdout


def test_server_down_is_an_error_for_every_command(topic):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSTON_")}
    env.update(HOUSTON_URL=f"http://127.0.0.1:{port}", HOUSTON_WS_URL=f"ws://127.0.0.1:{port}")
    for args in (["pub", topic, "x"], ["history", topic], ["status"], ["sub", topic]):
        r = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, args
        assert "cannot connect" in r.stderr and "refused" in r.stderr, r.stderr
        assert r.stdout == ""


def test_progress_on_a_terminal_and_quiet_in_a_pipe(server, topic):
    p = Publisher(server)
    for i in range(1100):
        p.pub(topic, f"m{i}")
    piped = cli(server, "history", topic)
    assert piped.returncode == 0 and piped.stderr == ""
    assert len(piped.stdout.splitlines()) == 1100
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "history", topic], env=env_for(server),
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(10) == 0
    assert b"history " + topic.encode() + b": 1000 messages" in seen


def test_api_key_is_sent_as_a_bearer_token(topic):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b'{"status":"ready"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSTON_")}
        env["HOUSTON_API_KEY"] = "from-env"
        url = f"http://127.0.0.1:{srv.server_port}"
        subprocess.run([BIN, "status", "--server", url], env=env, capture_output=True, timeout=20)
        subprocess.run([BIN, "status", "--server", url, "--api-key", "s3cret"], env=env,
                       capture_output=True, timeout=20)
    finally:
        srv.shutdown()
    assert seen[0] == "Bearer from-env"
    assert "Bearer s3cret" in seen[2:]


def test_help_lists_the_client_commands():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    for command in ("pub", "sub", "history", "status", "--server", "--ws-server", "--api-key",
                    "--token", "--ca-file", "--insecure", "HOUSTON_TOKEN"):
        assert command in out
    r = subprocess.run([BIN, "sub", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "houston sub TOPIC... [--since ID]" in r.stdout


def test_only_http_and_ws_urls(topic):
    r = subprocess.run([BIN, "pub", "--server", "ftp://127.0.0.1", topic, "x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "only http:// and https://" in r.stderr
    r = subprocess.run([BIN, "sub", "--ws-server", "http://127.0.0.1", topic],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "only ws:// and wss://" in r.stderr


def test_sub_answers_pings(fresh_server, topic):
    # Two unanswered pings close a connection; at 100 ms a second of quiet is
    # ten pings.
    srv = fresh_server("--ping-interval", "100ms")
    sub = Sub(srv, topic)
    wait_subscribed(srv, topic)
    time.sleep(1.0)
    sent = Publisher(srv).pub(topic, "still here")
    assert sub.wait_lines(1) == [sent]
    code, err = sub.stop(signal.SIGTERM)
    assert code == 0, err
