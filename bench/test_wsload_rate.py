#!/usr/bin/python3
"""wsload's fixed-rate mode keeps one request in flight per connection: a slow
answer must not hold the publishes scheduled after it (issue 18). A fake
publish endpoint answers the first request after 1 s and every other one
at once; at 100 msgs/s the later publishes must be answered in a few ms, on
connections wsload opened for them. Before the fix they were pipelined on
the one connection behind the slow answer and took ~800-1000 ms.

  test_wsload_rate.py PATH/TO/wsload       (ctest: bench/test_wsload_rate)"""
import json
import socket
import subprocess
import sys
import threading
import time

SLOW_S = 1.0
first = threading.Lock()  # held by nobody once the first request was seen
slow_done = [False]


def serve(conn):
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            with first:
                slow = not slow_done[0]
                slow_done[0] = True
            if slow:
                time.sleep(SLOW_S)
            conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")


def main():
    wsload = sys.argv[1]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    port = lsock.getsockname()[1]

    def accept():
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    p = subprocess.run([wsload, "--target", "nchan", "--ws-port", str(port), "--subs", "0", "--messages", "20",
                        "--rate", "100", "--publishers", "1", "--timeout", "10", "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    lsock.close()
    res = json.loads([line for line in p.stdout.splitlines() if line.startswith("{")][-1])
    print(f"published {res['published']}, errors {res['publish_errors']}, connections {res.get('publish_conns', 1)}, "
          f"publish p50 {res['pub_p50_ms']} ms, max {res['pub_max_ms']} ms")
    ok = (res["published"] == 20 and res["publish_errors"] == 0 and res.get("publish_conns", 1) >= 2
          and res["pub_p50_ms"] < 300 and res["pub_max_ms"] >= SLOW_S * 1000 * 0.9)
    if not ok:
        print("FAIL: the publishes after the slow answer waited behind it (or the slow one was not seen)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
