#!/usr/bin/python3
"""houston's scale-out bench (issue 16 item 4, docs/performance.md): a
throwaway MariaDB and Redis (tests/e2e/services.py), then publisher,
consumer and notifier processes of the real binary, loaded by the compiled
load tool (build/wsload: subscribers spread over the notifiers, publish
connections over the publishers). For each row: publishes/s, deliveries/s
and end-to-end latency p50/p99 from the publish request to the frame at the
client (wsload stamps its send time in the message content), and the CPU of
every process while busy, so the one that saturates is named.

  bench/scaleout.py                    every row, 3 runs each (make bench-scaleout)
  bench/scaleout.py --smoke            a few seconds: nothing lost, exit 0
  bench/scaleout.py --only pub1 --runs 1 --perf publisher1
  bench/scaleout.py --redis cluster    the same rows on services.RedisCluster

Each run starts fresh roles on an emptied Redis and MariaDB (the two servers
live for the whole bench). Results: stdout and
bench/results/<date>-<host>-scaleout.md (with the command line and versions).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"houston exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"houston did not listen on {port}:\n{log.read_text()}")


# services.py takes free_port from the tests' conftest, which needs pytest;
# the bench (make bench-smoke in CI) must not, so it gets these two instead.
sys.modules.setdefault("conftest", types.SimpleNamespace(free_port=free_port, wait_port=wait_port))
import services  # noqa: E402

BUILD = Path(os.environ.get("BUILD", ROOT / "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
HOUSTON = Path(os.environ.get("HOUSTON_BIN", BUILD / "houston"))
WSLOAD = Path(os.environ.get("WSLOAD_BIN", BUILD / "wsload"))

# A saturating load: 8 keep-alive connections per publisher process, 8
# requests in flight on each, for SAT_S seconds.
SAT_S = 4


def sat(publishers, messages=1000000):
    return ["--messages", str(messages), "--duration", str(SAT_S), "--publishers", str(8 * publishers),
            "--window", "8"]


# name: title, roles (publishers, consumers, notifiers), wsload arguments.
# Topics are many wherever consumers are compared, so that a partitioned
# event log (issue 16 item 2, 16 partitions by default) spreads them.
ROWS = {
    "pub1": ("1 publisher, 1 consumer, 2 notifiers; 200 subs on 100 topics; saturating",
             (1, 1, 2), ["--subs", "200", "--topics", "100", *sat(1)]),
    "pub2": ("2 publishers, 1 consumer, 2 notifiers; 200 subs on 100 topics; saturating",
             (2, 1, 2), ["--subs", "200", "--topics", "100", *sat(2)]),
    "cons1": ("2 publishers, 1 consumer, 2 notifiers; 2,000 subs on 100 topics; saturating",
              (2, 1, 2), ["--subs", "2000", "--topics", "100", *sat(2)]),
    "cons2": ("2 publishers, 2 consumers, 2 notifiers; 2,000 subs on 100 topics; saturating",
              (2, 2, 2), ["--subs", "2000", "--topics", "100", *sat(2)]),
    "cons4": ("2 publishers, 4 consumers, 2 notifiers; 2,000 subs on 100 topics; saturating",
              (2, 4, 2), ["--subs", "2000", "--topics", "100", *sat(2)]),
    # a fixed number of messages: each is 1,000 deliveries, and delivering
    # lags publishing, so a timed saturating run would not drain in the
    # grace (late deliveries would count as lost); 20 s of grace for a busy
    # machine
    "fanout-10k": ("2 notifiers x 5,000 subs on 10 topics; 1 publisher, 1 consumer; 400 msgs as fast as "
                   "possible", (1, 1, 2), ["--subs", "10000", "--topics", "10", "--messages", "400",
                                            "--publishers", "8", "--window", "8", "--grace", "20"]),
    "steady-100": ("2 notifiers x 5,000 subs on 1,000 topics; 100 msg/s for 4 s",
                   (1, 1, 2), ["--subs", "10000", "--topics", "1000", "--messages", "400", "--rate",
                               "100", "--publishers", "8", "--window", "8"]),
    "steady-1k": ("2 notifiers x 5,000 subs on 1,000 topics; 1,000 msg/s for 4 s",
                  (2, 1, 2), ["--subs", "10000", "--topics", "1000", "--messages", "4000", "--rate",
                              "1000", "--publishers", "16", "--window", "8"]),
}
SMOKE = {
    "smoke": ("1 publisher, 1 consumer, 2 notifiers; 40 subs on 4 topics x 200 msgs",
              (1, 1, 2), ["--subs", "40", "--topics", "4", "--messages", "200", "--publishers", "4",
                          "--window", "8"]),
}
TIMEOUT = 40  # wsload's --timeout per run
BUDGET = 560  # no run starts after this many seconds: the whole bench < 10 min

children = []


def log(msg):
    print(f"scaleout: {msg}", file=sys.stderr, flush=True)


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


class Sampler(threading.Thread):
    """CPU of each named process every 0.2 s (CLOCK_MONOTONIC, as wsload's
    stamps), so the CPU inside wsload's busy window can be cut out."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.samples, self.done = pids, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            self.samples.append((time.monotonic_ns(), {n: cpu_ticks(p) for n, p in self.pids.items()}))
            self.done.wait(0.2)

    def stop(self):
        self.done.set()
        self.join()
        self.samples.append((time.monotonic_ns(), {n: cpu_ticks(p) for n, p in self.pids.items()}))

    def percent(self, start_ns, end_ns):
        """% of one core per process between the samples around the window."""
        if not self.samples:
            return {}
        first = max([s for s in self.samples if s[0] <= start_ns] or [self.samples[0]], key=lambda s: s[0])
        last = min([s for s in self.samples if s[0] >= end_ns] or [self.samples[-1]], key=lambda s: s[0])
        wall = (last[0] - first[0]) / 1e9
        hz = os.sysconf("SC_CLK_TCK")
        out = {}
        for name in self.pids:
            a, b = first[1].get(name), last[1].get(name)
            if a is not None and b is not None and wall > 0:
                out[name] = 100.0 * (b - a) / hz / wall
        return out


class Role:
    def __init__(self, tmp, name, command, *args):
        self.name = name
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen([str(HOUSTON), command, *args], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))
        children.append(self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        children.remove(self.proc)
        return rc


class Backends:
    """MariaDB and Redis (single or cluster) for the whole bench."""

    def __init__(self, tmp, kind):
        self.kind = kind
        self.maria = services.MariaDB(tmp)
        self.redis = services.RedisCluster(tmp) if kind == "cluster" else services.Redis(tmp)

    def cluster_masters(self):
        """Ports of the cluster's masters, asked of its first seed."""
        seed = self.redis.url.split("://", 1)[-1].split(",")[0]
        host, port = seed.rsplit(":", 1)
        nodes = subprocess.run(["redis-cli", "-h", host, "-p", port, "CLUSTER", "NODES"],
                               capture_output=True, text=True).stdout
        return [line.split()[1].split("@")[0] for line in nodes.splitlines()
                if "master" in line.split()[2] and "fail" not in line.split()[2]]

    def pids(self):
        out = {"mariadbd": self.maria.proc.pid}
        if self.kind == "cluster":
            # the harness's processes, under whatever name it keeps them
            for i, proc in enumerate(self.redis.procs.values()):  # port -> Popen
                if proc.poll() is None:
                    out[f"redis{i + 1}"] = proc.pid
        else:
            out["redis"] = self.redis.proc.pid
        return out

    def reset(self):
        """Empty Redis and the tables between runs (no role is running)."""
        if self.kind == "cluster":
            for addr in self.cluster_masters():
                host, port = addr.rsplit(":", 1)
                subprocess.run(["redis-cli", "-h", host, "-p", port, "FLUSHALL"], capture_output=True)
        else:
            self.redis.cli("FLUSHALL")
        tables = self.maria.query("SHOW TABLES").split()
        keep = {"schema_version"}
        self.maria.query(";".join(f"DELETE FROM {t}" for t in tables if t not in keep) or "SELECT 1")

    def stop(self):
        self.redis.stop()
        self.maria.stop()


def start_roles(tmp, back, counts, run_id):
    publishers, consumers, notifiers = counts
    common = ["--db", back.maria.url, "--redis", back.redis.url, "--log-level", "warn"]
    roles, api, ws = {}, [], []
    for i in range(publishers):
        port = free_port()
        r = Role(tmp, f"publisher{i + 1}", "publisher", *common, "--api-addr", f"127.0.0.1:{port}",
                 "--keepalive-requests", "0")
        roles[r.name] = r
        api.append(port)
    for i in range(notifiers):
        port = free_port()
        r = Role(tmp, f"notifier{i + 1}", "notifier", *common, "--node-id", f"n{run_id}-{i + 1}",
                 "--ws-addr", f"127.0.0.1:{port}", "--max-connections-per-ip", "0",
                 "--connect-rate", "0", "--resume-secret", "bench-scaleout")
        roles[r.name] = r
        ws.append(port)
    for i in range(consumers):
        r = Role(tmp, f"consumer{i + 1}", "consumer", "--redis", back.redis.url, "--log-level", "warn")
        roles[r.name] = r
    for port, r in zip(api, [r for n, r in roles.items() if n.startswith("publisher")]):
        wait_port(port, r.proc, r.log, deadline=60)
    for port, r in zip(ws, [r for n, r in roles.items() if n.startswith("notifier")]):
        wait_port(port, r.proc, r.log, deadline=60)
    time.sleep(0.5)  # the consumers take their lease(s)
    return roles, api, ws


def run_wsload(tmp, api, ws, extra, label, strict):
    cmd = [str(WSLOAD), "--target", "houston", "--ws-port", ",".join(map(str, ws)),
           "--api-port", ",".join(map(str, api)), "--json", "--timeout", str(TIMEOUT), "--grace", "5",
           "--label", label, *extra, *(["--strict"] if strict else [])]
    errlog = tmp / "wsload.err"
    with open(errlog, "a") as err:
        err.write("$ " + " ".join(cmd) + "\n")
        err.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=TIMEOUT + 30)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wsload exited {p.returncode} without a result: {errlog}")
    res = json.loads(lines[-1])
    res["exit"] = p.returncode
    return res


def perf_record(pid, out):
    """perf record -g of one process until SIGINT (the whole wsload run)."""
    return subprocess.Popen(["perf", "record", "-g", "-F", "499", "-o", str(out), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_run(tmp, back, name, row, run_id, a):
    title, counts, extra = row
    back.reset()
    roles, api, ws = start_roles(tmp, back, counts, run_id)
    pids = {n: r.proc.pid for n, r in roles.items()}
    pids.update(back.pids())
    sampler = Sampler(pids)
    perf = None
    bad_exit = []
    try:
        sampler.start()
        if a.perf:
            target = pids.get(a.perf)
            if target is None:
                raise RuntimeError(f"--perf {a.perf}: no such process (one of {', '.join(pids)})")
            # the subscribers connect first: start recording once they should be in
            perf_out = tmp / f"perf-{name}-{run_id}-{a.perf}.data"
            perf = (perf_out, perf_record(target, perf_out))
        res = run_wsload(tmp, api, ws, extra, f"{name}#{run_id}", a.smoke)
    finally:
        sampler.stop()
        if perf:
            perf[1].send_signal(signal.SIGINT)
            perf[1].wait(30)
        for n, r in roles.items():
            rc = r.stop()
            if rc != 0:
                bad_exit.append(f"{n} exited {rc}: {r.log}")
    start = res.get("publish_start_ns", 0)
    end = start + int(max(res["deliver_s"], res["publish_s"]) * 1e9)
    res["cpu"] = sampler.percent(start, end) if start else {}
    res["bad_exit"] = bad_exit
    if perf:
        report = subprocess.run(["perf", "report", "--stdio", "--no-children", "-i", str(perf[0]),
                                 "--percent-limit", "1.5", "--sort", "dso,sym"],
                                capture_output=True, text=True).stdout
        res["perf"] = str(perf[0])
        print(f"\n## perf of {a.perf} in {name}#{run_id} ({perf[0]})\n" +
              "\n".join(line for line in report.splitlines() if line and not line.startswith("#"))[:6000],
              flush=True)
    return res


def busiest(cpu):
    if not cpu:
        return "n/a"
    name, pct = max(cpu.items(), key=lambda kv: kv[1])
    return f"{name} {pct:.0f} %"


def med(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.median(values), (min(values), max(values))


def fmt(values, spec):
    m, spread = med(values)
    if m is None:
        return "n/a"
    if len(values) == 1 or spread[0] == spread[1]:
        return spec.format(m)
    return f"{spec.format(m)} ({spec.format(spread[0])}-{spec.format(spread[1])})"


def versions():
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    commit = first_line(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"])
    return [f"houston: {first_line([str(HOUSTON), 'version'])} ({commit})",
            f"redis: {first_line(['redis-server', '--version'])}",
            f"mariadb: {first_line([shutil.which('mariadbd') or '/usr/sbin/mariadbd', '--version'])}",
            f"kernel: {platform.release()}; {os.cpu_count()} cores"]


def render(rows, results, elapsed, a, redis_kind):
    load = os.getloadavg()
    head = [f"# houston scale-out bench{' (smoke)' if a.smoke else ''}: "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {socket.gethostname()}, Redis {redis_kind}",
            "",
            "`" + " ".join(["bench/scaleout.py", *sys.argv[1:]]) + "`",
            "",
            *[f"- {v}" for v in versions()],
            f"- load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; the whole run took "
            f"{elapsed:.0f} s",
            "",
            "Median of the runs (min-max in brackets). Latency: publish request sent -> frame read by the "
            "client. CPU: % of one core while busy (publishing and delivering); busiest: the process "
            "with the most CPU in the median run.",
            ""]
    cols = ["row", "runs", "publishes/s", "deliveries/s", "p50 ms", "p99 ms", "lost+dup", "5xx", "busiest",
            "CPU % per process"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, (title, _, _) in rows.items():
        rs = results.get(name, [])
        if not rs:
            out.append(f"| **{name}** {title} | 0 | skipped | | | | | | | |")
            continue
        bad = sum(r["lost"] + r["duplicated"] + r["misrouted"] for r in rs)
        mid = sorted(rs, key=lambda r: r["publishes_per_s"])[len(rs) // 2]
        names = sorted({n for r in rs for n in r["cpu"]})
        cpu = ", ".join(f"{n} {fmt([r['cpu'].get(n) for r in rs], '{:.0f}')}" for n in names)
        out.append("| " + " | ".join([
            f"**{name}** {title}", str(len(rs)),
            fmt([r["publishes_per_s"] for r in rs], "{:,.0f}"),
            fmt([r["deliveries_per_s"] for r in rs], "{:,.0f}"),
            fmt([r["lat_p50_ms"] for r in rs], "{:,.1f}"),
            fmt([r["lat_p99_ms"] for r in rs], "{:,.1f}"),
            str(bad), str(sum(r["publish_errors"] for r in rs)), busiest(mid["cpu"]), cpu]) + " |")
    return "\n".join(head + out)


def cluster_usable():
    if not hasattr(services, "RedisCluster"):
        return "tests/e2e/services.py has no RedisCluster harness yet"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="one tiny run: nothing lost, exit 0")
    ap.add_argument("--only", help="comma list of rows (default: all): " + ",".join(ROWS))
    ap.add_argument("--runs", type=int, default=3, help="runs per row (default 3; median and spread)")
    ap.add_argument("--redis", choices=["single", "cluster"], default="single")
    ap.add_argument("--perf", metavar="PROCESS",
                    help="perf record -g this process of each run (publisher1, consumer1, notifier1, "
                         "mariadbd, redis, ...) and print its profile")
    ap.add_argument("--out", help="markdown output (default bench/results/<date>-<host>-scaleout.md; "
                                  "none with --smoke)")
    ap.add_argument("--budget", type=float, default=BUDGET, help="start no run after this many seconds")
    a = ap.parse_args()

    rows = SMOKE if a.smoke else ROWS
    if a.only:
        rows = {k: v for k, v in {**ROWS, **SMOKE}.items() if k in a.only.split(",")}
    runs = 1 if a.smoke else a.runs
    for tool in (HOUSTON, WSLOAD):
        if not tool.exists():
            sys.exit(f"scaleout: {tool} is missing: run `make build` first")
    if not (services.have("redis-server") and services.have("mariadbd")):
        log("redis-server or mariadbd is not installed: skipped (scripts/install-deps.sh test)")
        return 0
    if a.redis == "cluster":
        why = cluster_usable()
        if why:
            log(f"the cluster rows are skipped: {why}")
            return 0

    started = time.monotonic()
    results, failures = {}, []
    tmp = Path(tempfile.mkdtemp(prefix="houston-scaleout."))
    back = None
    try:
        back = Backends(tmp, a.redis)
        run_id = 0
        for rep in range(runs):  # rounds: every row once, then again, so drift hits all rows alike
            for name, row in rows.items():
                if time.monotonic() - started + TIMEOUT > a.budget:
                    log(f"{name} run {rep + 1}: skipped, the {a.budget:.0f} s budget would be exceeded")
                    continue
                run_id += 1
                t0 = time.monotonic()
                try:
                    res = one_run(tmp, back, name, row, run_id, a)
                except Exception as e:  # one failed run must not hide the others
                    failures.append(f"{name} run {rep + 1}: {e}")
                    log(f"{name} run {rep + 1} FAILED: {e}")
                    continue
                results.setdefault(name, []).append(res)
                bad = res["lost"] + res["duplicated"] + res["misrouted"]
                log(f"{name:11} #{rep + 1} {time.monotonic() - t0:5.1f} s  subs {res['subscribed']}/{res['subs']}"
                    f"  publishes/s {res['publishes_per_s']:,.0f}  deliveries/s {res['deliveries_per_s']:,.0f}"
                    f"  p50 {res['lat_p50_ms']:.1f} p99 {res['lat_p99_ms']:.1f} ms  lost+dup {bad}"
                    f"  busiest {busiest(res['cpu'])}" + (f"  exit {res['exit']}" if res["exit"] else ""))
                if res["bad_exit"]:
                    failures.append(f"{name} run {rep + 1}: " + "; ".join(res["bad_exit"]))
                if bad or res["timed_out"] or res["subscribed"] != res["subs"] or res["publish_errors"]:
                    failures.append(f"{name} run {rep + 1}: lost {res['lost']}, duplicated "
                                    f"{res['duplicated']}, subscribed {res['subscribed']}/{res['subs']}, "
                                    f"publish errors {res['publish_errors']}, timed out {res['timed_out']}")
    finally:
        for p in list(children):
            p.kill()
            p.wait()
        if back:
            back.stop()
        if failures or a.perf:
            log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    table = render(rows, results, elapsed, a, a.redis)
    print(table)
    if not a.smoke or a.out:
        out = Path(a.out) if a.out else ROOT / "bench" / "results" / (
            f"{datetime.date.today().isoformat()}-{socket.gethostname()}-scaleout"
            f"{'-cluster' if a.redis == 'cluster' else ''}.md")
        out.parent.mkdir(parents=True, exist_ok=True)
        raw = "\n".join(json.dumps(r) for rs in results.values() for r in rs)
        out.write_text(table + "\n\n<details><summary>raw wsload results (JSON lines, with the CPU "
                       "per process)</summary>\n\n```\n" + raw + "\n```\n</details>\n")
        log(f"written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if failures:
        log("FAILED:\n  " + "\n  ".join(failures))
        return 1
    if a.smoke:
        log(f"smoke: nothing lost, {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        for p in list(children):
            p.kill()
        sys.exit(130)
