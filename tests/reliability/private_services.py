"""Private instances of the services profile's backing services, started by a test on free ports
so it may kill and restart them (never the machine's shared PostgreSQL or Redis): a `redis-server`,
a PostgreSQL cluster of its own (initdb / pg_ctl), and an `mlflow server` whose backend store is
that cluster. `kill()` is SIGKILL (a crash, no shutdown work); `start()` brings the same instance
back on the same port with the same data."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from mlplatform import services
from mlplatform.processes import free_port, spawn, stop


def wait_port(port: int, proc: subprocess.Popen | None, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on {port} after {timeout} s:\n{log.read_text(errors='replace')[-2000:]}")


def postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def missing_tools() -> list[str]:
    need = {"redis-server": shutil.which("redis-server"), "initdb": postgres_bin("initdb"),
            "pg_ctl": postgres_bin("pg_ctl")}
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root: run them as `postgres`
        need["runuser"] = shutil.which("runuser")
    return [k for k, v in need.items() if not v]


class PrivateRedis:
    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = folder, free_port(), None
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "redis.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        # snapshots on: the online features written before a crash are back after a restart (as
        # the chart's Redis keeps them on a volume); `save` on shutdown is moot for SIGKILL, so the
        # test saves before it kills
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
               "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
        self.proc = spawn(cmd, self.log, append=True)
        wait_port(self.port, self.proc, "redis-server", self.log)

    def save(self) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.port).save()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


class PrivatePostgres:
    """A cluster in a folder of its own (owned by `postgres` when this process is root), trust
    authentication, listening on 127.0.0.1 only, its socket in its own folder."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="mlplatform-pg-"))
        self.data, self.port = self.folder / "data", free_port()
        self.log = self.folder / "postgres.log"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run([*self.as_postgres, postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True, text=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*self.as_postgres, postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                        "-o", opts, "-w", "-t", "60", "start"], check=True, capture_output=True, text=True, timeout=90)

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (a crash: the restart runs recovery)."""
        pid = self.pid()
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for p in [pid, *map(int, children)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in [pid, *map(int, children)]):
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([*self.as_postgres, postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PrivateMlflow:
    """`mlflow server` (services.mlflow_server_command: artifacts proxied) over the private cluster."""

    def __init__(self, backend: str, folder: Path):
        self.backend, self.folder, self.port, self.proc = backend, folder, free_port(), None
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "mlflow-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300) -> None:  # generous: a busy CI machine
        from mlplatform.processes import wait_ready

        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        cmd = services.mlflow_server_command(self.backend, self.folder / "artifacts", self.port)
        self.proc = spawn(cmd, self.log, env=env, append=True, new_session=True)
        wait_ready(self.proc, f"{self.url}/health", self.log, timeout, "mlflow server")

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group: uvicorn/gunicorn children)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
