"""A private `redis-server` process on a free port, for the demo loop and the bench when no Redis is
configured (the way they start their own Prometheus): in memory only (no RDB or AOF files), bound
to 127.0.0.1, stopped with the caller.

    with local_redis(run_dir / "redis") as url:   # redis://127.0.0.1:<port>/0
        ...
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from mlplatform.processes import NotReady, free_port, log_tail, spawn, stop


def redis_server_command(port: int, directory: Path) -> list[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server not found (Debian/Ubuntu: apt-get install redis-server)")
    return [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--protected-mode", "yes"]


def start_redis(directory: Path, timeout: float = 20.0) -> tuple[subprocess.Popen, str]:
    """Start redis-server in `directory` (its log there); return the process and its redis:// URL
    once it answers PING."""
    import redis

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / "redis.log"
    proc = spawn(redis_server_command(port, directory), log)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        while True:
            if proc.poll() is not None:
                raise NotReady(f"redis-server exited with {proc.returncode} (log {log}):\n{log_tail(log)}")
            try:
                if client.ping():
                    return proc, url
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise NotReady(f"redis-server not answering PING on {port} after {timeout:g} s:\n{log_tail(log)}")
            time.sleep(0.05)
    except BaseException:
        stop(proc)
        raise
    finally:
        client.close()


@contextlib.contextmanager
def local_redis(directory: Path) -> Iterator[str]:
    proc, url = start_redis(directory)
    try:
        yield url
    finally:
        stop(proc)
