"""Throwaway Redis and MariaDB servers for the scale-out tests: each in a
temporary directory, on a free loopback port, a child of the test process,
stopped at the end."""
import contextlib
import os
import shutil
import socket
import subprocess
import time

from conftest import free_port

SBIN = "/usr/sbin"


def have(program):
    return shutil.which(program) or os.path.exists(os.path.join(SBIN, program))


def wait_for(check, what, proc, log, deadline=30.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log.read_text()}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start:\n{log.read_text()}")


class Redis:
    """persistent: append-only file fsynced on every write, so a restart
    (even after kill -9) keeps every acknowledged write."""

    def __init__(self, tmp, persistent=False):
        self.port = free_port()
        self.tmp = tmp
        self.log = tmp / "redis.log"
        self.persistence = (["--appendonly", "yes", "--appendfsync", "always"] if persistent
                            else ["--appendonly", "no"])
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *self.persistence, "--dir", str(self.tmp)],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        wait_for(self.ping, "redis-server", self.proc, self.log)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                              capture_output=True, text=True, check=True).stdout

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class MariaDB:
    def __init__(self, tmp):
        self.port = free_port()
        self.dir = tmp / "mariadb"
        self.dir.mkdir()
        self.log = self.dir / "server.log"
        self.sock = self.dir / "sock"
        self.env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":" + SBIN)
        self.user = os.environ.get("USER") or "root"
        # The bootstrap server of mariadb-install-db can fail on a machine
        # under heavy load (seen once in CI, its output unseen): one more try
        # in a clean directory, and its output in the error if that fails too.
        for attempt in (1, 2):
            shutil.rmtree(self.dir / "data", ignore_errors=True)
            done = subprocess.run(
                ["mariadb-install-db", "--no-defaults", f"--datadir={self.dir}/data",
                 f"--user={self.user}", "--auth-root-authentication-method=normal",
                 "--skip-test-db"], capture_output=True, text=True, env=self.env)
            if done.returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError(f"mariadb-install-db failed ({done.returncode}):\n"
                                   f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        self.start()
        subprocess.run(["mariadb", "--no-defaults", f"--socket={self.sock}", "-e",
                        "CREATE DATABASE houston"], check=True, env=self.env)

    def start(self):
        # Its own temporary directory: servers of tests running side by side
        # (or other engineers' on one machine) do not share /tmp's #sql files.
        (self.dir / "tmp").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.dir}/data", f"--socket={self.sock}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--user={self.user}",
             "--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
             "--innodb-log-file-size=16M", f"--pid-file={self.dir}/pid",
             f"--tmpdir={self.dir}/tmp"],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT, env=self.env)
        wait_for(self.ping, "mariadbd", self.proc, self.log)

    def kill(self):
        self.proc.kill()
        self.proc.wait(30)

    def ping(self):
        return subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.sock}", "ping"],
                              capture_output=True).returncode == 0

    def query(self, sql):
        out = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.sock}", "-N", "-B",
                              "houston", "-e", sql], capture_output=True, text=True, check=True)
        return out.stdout

    @property
    def url(self):
        return f"mysql://root@127.0.0.1:{self.port}/houston"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


class RedisCluster:
    """A Redis Cluster of three masters and three replicas on loopback, each
    redis-server in its own directory under tmp (cluster-enabled, node
    timeout 1 s, append-only file fsynced on every write, no snapshots),
    created with `redis-cli --cluster create`; stop() kills all six and
    removes the directory. kill_master() SIGKILLs a master and waits until
    its replica took over and every slot is served again."""

    def __init__(self, tmp, masters=3, replicas=1):
        self.dir = tmp / "redis-cluster"
        self.dir.mkdir()
        self.procs = {}
        self.ports = []
        self.bus_ports = {}
        self.kills = []  # ports killed by kill() and not started again yet
        try:
            for _ in range(masters * (1 + replicas)):
                port = free_port()
                while port > 55535:  # redis-server refuses higher ones in a cluster
                    port = free_port()
                self.ports.append(port)
                self._start(port)
            nodes = [f"127.0.0.1:{p}" for p in self.ports]
            done = subprocess.run(["redis-cli", "--cluster", "create", *nodes,
                                   "--cluster-replicas", str(replicas), "--cluster-yes"],
                                  capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n"
                                   f"{done.stderr}")
            self.wait_ok(what="the new cluster")
        except BaseException:
            self.stop()
            raise

    def _start(self, port):
        d = self.dir / str(port)
        d.mkdir(exist_ok=True)
        log = d / "redis.log"
        # The cluster bus on a port of its own (not port + 10000, which may
        # be taken), the same one again on a restart.
        self.bus_ports.setdefault(port, free_port())
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-port", str(self.bus_ports[port]),
             "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0",
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--maxmemory", "256mb", "--maxclients", "1000"],
            stdout=open(log, "a"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.ping(port), f"redis-server (cluster node {port})",
                 self.procs[port], log)

    def ping(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def alive(self):
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def cli(self, port, *args):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                              capture_output=True, text=True, timeout=10).stdout

    def nodes(self, port=None):
        """CLUSTER NODES of a live node: [{id, port, master, failed, slots}]."""
        out = self.cli(port or self.alive()[0], "CLUSTER", "NODES")
        found = []
        for line in out.splitlines():
            f = line.split()
            if len(f) < 8:
                continue
            flags = f[2].split(",")
            found.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                          "master": "master" in flags,
                          "failed": "fail" in flags or "fail?" in flags,
                          "master_id": f[3], "slots": f[8:]})
        return found

    def masters(self):
        """The ports of the live masters that serve slots."""
        alive = set(self.alive())
        return [n["port"] for n in self.nodes() if n["master"] and n["slots"]
                and n["port"] in alive and not n["failed"]]

    def master_of(self, key):
        slot = int(self.cli(self.alive()[0], "CLUSTER", "KEYSLOT", key).strip())
        for n in self.nodes():
            if not n["master"] or n["failed"] or n["port"] not in self.alive():
                continue
            for r in n["slots"]:
                if r.startswith("["):
                    continue
                lo, _, hi = r.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return n["port"]
        return None

    def ok(self):
        """Every live node says the cluster is ok, every slot is served by a
        live master, and every live replica has finished its sync with its
        master (a replica promoted before that would come up without the
        master's data)."""
        alive = self.alive()
        for port in alive:
            info = self.cli(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                return False
            repl = self.cli(port, "INFO", "replication")
            if "role:slave" in repl and ("master_link_status:up" not in repl
                                         or "master_sync_in_progress:0" not in repl):
                return False
        served = 0
        for n in self.nodes():
            if n["master"] and n["port"] in alive and not n["failed"]:
                for r in n["slots"]:
                    if not r.startswith("["):
                        lo, _, hi = r.partition("-")
                        served += int(hi or lo) - int(lo) + 1
        return served == 16384

    def wait_ok(self, what="the cluster", deadline=60.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.ok():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} is not ok after {deadline} s:\n"
                           + "\n".join(self.cli(p, "CLUSTER", "NODES") for p in self.alive()[:1]))

    def kill_master(self, which=0, key=None):
        """SIGKILLs a master - the i-th live one, or the one serving key -
        and waits until its replica was promoted and every slot is served
        again. Returns (killed port, promoted port)."""
        port = self.master_of(key) if key is not None else sorted(self.masters())[which]
        before = {n["port"]: n for n in self.nodes()}
        victim_id = before[port]["id"]
        self.procs[port].kill()
        self.procs[port].wait(10)
        end = time.monotonic() + 60
        promoted = None
        while time.monotonic() < end and promoted is None:
            for n in self.nodes():
                if n["port"] != port and before.get(n["port"], {}).get("master_id") == victim_id \
                        and n["master"] and n["port"] in self.alive():
                    promoted = n["port"]
            time.sleep(0.2)
        if promoted is None:
            raise RuntimeError(f"no replica of {port} took over")
        self.wait_ok(f"the cluster after killing {port}")
        return port, promoted

    def kill(self):
        """The fault of the delivery checker: kill -9 a master (each in
        turn) and wait for its replica to take over."""
        port, _ = self.kill_master(which=len(self.kills) % 3)
        self.kills.append(port)

    def start(self):
        """The killed nodes again: each rejoins as a replica."""
        while self.kills:
            self._start(self.kills.pop())
        self.wait_ok("the cluster with the killed nodes back")

    @property
    def url(self):
        return "redis://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
