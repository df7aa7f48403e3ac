"""Throwaway Redis and MariaDB servers for the scale-out tests: each in a
temporary directory, on a free loopback port, a child of the test process,
stopped at the end."""
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
