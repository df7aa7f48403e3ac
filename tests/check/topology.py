"""The topologies the checker attacks: `houston serve` on SQLite (embedded),
and two publishers (clocks 2 s behind and 2 s ahead), two consumers and two
notifiers on a throwaway MariaDB and (persistent) Redis (scale-out). Every process is a child of the checker, on
free loopback ports, its stderr in a log file that the checker scans for
sanitizer reports at the end."""
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# tests/e2e/services.py (throwaway Redis and MariaDB, shared with the e2e
# tests) takes free_port from the pytest conftest, which imports pytest and
# python3-websockets; the checker needs neither, so it hands services.py
# this module's free_port under that name.
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.modules.setdefault("conftest", types.SimpleNamespace(free_port=free_port))
from services import MariaDB, Redis, RedisCluster, have  # noqa: E402

# What a crash or sanitizer report looks like in a houston log.
CRASH_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: \w+Sanitizer|"
    r"Segmentation fault|Aborted|assertion .* failed|AddressSanitizer:DEADLYSIGNAL")

# Flags every houston role gets: short pings so a half-open client is found
# within seconds, a short resume window so the end of the run can wait it
# out, no per-IP limits (every client of the checker is 127.0.0.1), and one
# resume secret so a connection resumes on either notifier.
RESUME_WINDOW_S = 8
COMMON = ["--ping-interval", "2s", "--resume-window", f"{RESUME_WINDOW_S}s",
          "--resume-secret", "checker-secret", "--connect-rate", "0",
          "--max-connections-per-ip", "0", "--log-level", "info"]


def wait_port(port, proc, deadline=30.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Proc:
    """One houston process: started, killed (kill -9, an expected exit),
    stopped, paused; its RSS and descriptors read from /proc."""

    def __init__(self, name, args, log, ports=(), env=None):
        self.name, self.args, self.log, self.ports = name, args, log, list(ports)
        self.env = env or {}
        self.proc = None
        self.expected_exit = False
        self.paused = False
        self.paused_from = self.paused_until = None  # the last SIGSTOP .. SIGCONT
        self.interruptions = []  # (from, until, kind) of every kill -9 and SIGSTOP
        self.baseline = None
        self.starts = 0
        self.crashes = []

    def start(self):
        env = dict(os.environ, **self.env)
        with open(self.log, "a") as log:
            log.write(f"\n=== checker: start #{self.starts + 1} of {self.name}\n")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "a"), env=env)
        self.starts += 1
        self.started_at = time.monotonic()
        self.expected_exit = False
        self.paused = False
        self.baseline = None
        for port in self.ports:
            if not wait_port(port, self.proc):
                raise RuntimeError(f"{self.name} did not listen on {port}:\n{self.tail()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def exited_unexpectedly(self):
        return (self.proc is not None and self.proc.poll() is not None
                and not self.expected_exit)

    def kill9(self):
        self.expected_exit = True
        self.interruptions.append((time.monotonic(), time.monotonic(), "kill"))
        if self.running():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(30)
        self.paused = False

    def pause(self):
        if self.running():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True
            self.paused_from, self.paused_until = time.monotonic(), None

    def cont(self):
        if self.running() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused_until = time.monotonic()
            self.interruptions.append((self.paused_from, self.paused_until, "stop"))
        self.paused = False

    def stop(self, timeout=30):
        """SIGTERM; the exit code (None if it had to be killed)."""
        if not self.running():
            return self.proc.returncode if self.proc else 0
        self.cont()
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def rss_kib(self):
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def tail(self, n=4000):
        try:
            return Path(self.log).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def sanitizer_reports(self):
        try:
            text = Path(self.log).read_text(errors="replace")
        except OSError:
            return []
        found, covered = [], -1
        for m in CRASH_PATTERNS.finditer(text):
            if m.start() < covered:
                continue  # the same report
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n=== checker:", m.start())
            end = min(m.start() + 1500, end if end >= 0 else len(text))
            found.append(text[start:end])
            covered = end
        return found


# faketime's multi-threaded library (Debian package faketime): the scale-out
# publishers run with their wall clocks CHECK_SKEW seconds (default 2)
# behind and ahead (issue 16); CHECK_SKEW=0 runs them on the true clock.
FAKETIME_LIB = next(iter(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")), None)
SKEW_S = float(os.environ.get("CHECK_SKEW", "2"))


def skewed(sign):
    """The environment of a process whose wall clock is SKEW_S seconds off
    (sign "-" behind, "+" ahead): faketime preloaded into houston itself
    (libuv's timers use the monotonic clock, which stays true). None without
    faketime or skew."""
    if FAKETIME_LIB is None or SKEW_S == 0:
        return None
    offset = f"{sign}{SKEW_S:g}s"
    env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    if os.environ.get("HOUSTON_SANITIZED"):
        # A sanitized houston refuses a library preloaded ahead of its
        # runtime; faketime only wraps clock calls.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return env


class Embedded:
    name = "embedded"
    frame_subscribe = True  # the loopback development default

    def __init__(self, tmp, binary):
        self.tmp = tmp
        self.ws_port, self.api_port = free_port(), free_port()
        args = [binary, "serve", "--ws-addr", f"127.0.0.1:{self.ws_port}",
                "--api-addr", f"127.0.0.1:{self.api_port}", "--db", f"sqlite:{tmp}/houston.db",
                *COMMON]
        self.procs = {"serve": Proc("serve", args, tmp / "serve.log",
                                    [self.ws_port, self.api_port])}
        self.api_ports = [self.api_port]  # where publishes go
        self.publishers = []  # the processes kill_publisher picks from
        self.nodes = {"local": self.ws_port}
        self.notifier_proc = {"local": "serve"}
        self.services = {}

    def start(self):
        self.procs["serve"].start()

    # (name, weight): the faults that apply to one process with everything in it.
    faults = [("pause_serve", 3), ("kill_serve", 1), ("burst", 1)]

    def close(self):
        for p in self.procs.values():
            if p.running():
                p.kill9()


class Scaleout:
    name = "scaleout"
    frame_subscribe = False  # not the development default: frames get "forbidden"

    def __init__(self, tmp, binary):
        self.tmp = tmp
        self.binary = binary
        self.redis = None
        self.maria = None
        self.procs = {}
        self.nodes = {}
        self.notifier_proc = {}
        # Two publishers, clocks 2 s behind and 2 s ahead; publishes go
        # through both, every other call through the first.
        self.api_ports = [free_port(), free_port()]
        self.api_port = self.api_ports[0]
        self.publishers = ["publisher", "publisher2"]

    def start(self):
        # CHECK_REDIS=cluster: a Redis Cluster of three masters and three
        # replicas (kill_redis kills a master; its replica takes over).
        if os.environ.get("CHECK_REDIS", "single") == "cluster":
            self.redis = RedisCluster(self.tmp)
        else:
            self.redis = Redis(self.tmp, persistent=True)
        self.maria = MariaDB(self.tmp)
        self.services = {"redis": self.redis, "mariadb": self.maria}
        common = ["--db", self.maria.url, "--redis", self.redis.url, *COMMON]
        b = self.binary
        for name, port, sign in zip(self.publishers, self.api_ports, ("-", "+")):
            self.procs[name] = Proc(
                name, [b, "publisher", *common, "--api-addr", f"127.0.0.1:{port}"],
                self.tmp / f"{name}.log", [port], env=skewed(sign))
            self.procs[name].start()
        for node in ("n1", "n2"):
            port = free_port()
            self.nodes[node] = port
            self.notifier_proc[node] = f"notifier-{node}"
            self.procs[f"notifier-{node}"] = Proc(
                f"notifier-{node}", [b, "notifier", *common, "--node-id", node,
                                     "--ws-addr", f"127.0.0.1:{port}"],
                self.tmp / f"notifier-{node}.log", [port])
            self.procs[f"notifier-{node}"].start()
        # Three consumers share the partitions of the event log; one is
        # killed for good mid-run (check.py, kill_consumer_for_good): its
        # partitions are taken over within 3 heartbeats.
        for i in (1, 2, 3):
            self.procs[f"consumer{i}"] = Proc(
                f"consumer{i}", [b, "consumer", *common, "--claim-idle", "2s",
                                 "--heartbeat-interval", "1s"],
                self.tmp / f"consumer{i}.log")
            self.procs[f"consumer{i}"].start()

    faults = [("kill_consumer", 2), ("kill_notifier", 2), ("kill_publisher", 1),
              ("kill_redis", 1), ("kill_mariadb", 1), ("pause_notifier", 2),
              ("pause_notifier_burst", 1), ("burst", 1)]

    def close(self):
        for p in self.procs.values():
            if p.running():
                p.kill9()
        if isinstance(self.redis, RedisCluster):
            self.redis.stop()
        for svc in (self.redis, self.maria):
            if isinstance(svc, RedisCluster):
                continue
            if svc is not None and svc.proc.poll() is None:
                try:
                    svc.kill()
                except Exception:
                    pass
