#!/usr/bin/env python3
"""Publishes/s of the scale-out publisher on one topic and on many (the cost
of the per-topic id sequence, issue 16 item 1; docs/scaling.md).

Starts a throwaway MariaDB and Redis (tests/e2e/services.py) and PUBLISHERS
publisher processes, then THREADS keep-alive http.client connections per
publisher post MESSAGES messages, round-robin over TOPICS topics.

    HOUSTON_BIN=build/houston python3 bench/publish_rate.py --topics 1 --topics 100

Prints one line per run: binary, publishers, topics, messages, seconds, publishes/s.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import BIN, free_port, wait_port  # noqa: E402
from services import MariaDB, Redis  # noqa: E402


def worker(port, first, count, topics, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for i in range(first, first + count):
            conn.request("POST", "/api/v1/messages",
                         body=json.dumps({"topic": f"t{i % topics}", "content": "x" * 64,
                                          "author": "bench"}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status != 201:
                errors.append(r.status)
                return
    finally:
        conn.close()


def run(args, topics):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        redis, maria = Redis(tmp), MariaDB(tmp)
        procs = []
        try:
            ports = []
            for n in range(args.publishers):
                port = free_port()
                log = tmp / f"publisher{n}.log"
                procs.append(subprocess.Popen(
                    [BIN, "publisher", "--db", maria.url, "--redis", redis.url, "--api-addr",
                     f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=open(log, "w")))
                wait_port(port, procs[-1], log)
                ports.append(port)
            errors, threads = [], []
            total = args.messages
            per = total // (args.publishers * args.threads)
            first = 0
            for n in range(args.publishers * args.threads):
                threads.append(threading.Thread(target=worker, args=(
                    ports[n % len(ports)], first, per, topics, errors)))
                first += per
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
            if errors:
                raise SystemExit(f"publish failed: {errors[:5]}")
            print(f"{os.path.basename(os.path.dirname(os.path.dirname(BIN))) or BIN}\t"
                  f"publishers={args.publishers}\ttopics={topics}\tmessages={first}\t"
                  f"{elapsed:.2f} s\t{first / elapsed:.0f}/s", flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.wait(15)
            redis.stop()
            maria.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--topics", type=int, action="append")
    args = parser.parse_args()
    for topics in args.topics or [1, 100]:
        run(args, topics)


if __name__ == "__main__":
    main()
