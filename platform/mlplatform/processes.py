"""Child processes that answer HTTP (model servers, the mirror relay, Prometheus, bench targets):
a free port, start and wait until ready, stop.

    port = free_port()
    proc = start(cmd, f"http://127.0.0.1:{port}/v2/health/ready", log, env=server_env(home), timeout=120)
    ...
    stop(proc)

or `with running(cmd, ready_url, log, ...) as proc:`. Readiness is a GET answering 200; when the
process exits first, or the timeout passes (the process is then stopped), `NotReady` says so with
the tail of the log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

LOG_TAIL = 3000  # characters of the log an error shows


class NotReady(RuntimeError):
    """The process exited, or did not answer 200 at its ready URL in time."""


def free_port() -> int:
    """A port nobody listens on now (the OS picks it; a rare race with another process remains)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: str | Path, drop: tuple[str, ...] = ("MLPLATFORM_", "MLFLOW_")) -> dict[str, str]:
    """This process's environment without the variables starting with `drop` (a caller's workspace or
    tracking URI must not leak in), pointed at the workspace `home`, with unbuffered output (the log
    shows what happened up to a crash)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return env | {"MLPLATFORM_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def spawn(cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
          append: bool = False, new_session: bool = False) -> subprocess.Popen:
    """Start `cmd` with stdout and stderr into `log` (appended to, or rewritten); no waiting.
    new_session: the process outlives this one's terminal and signals (a detached server)."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a" if append else "w") as out:
        return subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=new_session)


def log_tail(log: Path, chars: int = LOG_TAIL) -> str:
    log = Path(log)
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def wait_ready(proc: subprocess.Popen, ready_url: str, log: Path, timeout: float, name: str | None = None) -> None:
    """Return once GET `ready_url` answers 200; raise NotReady when `proc` exits first or after `timeout` s
    (the process is left running: the caller stops it)."""
    name = name or Path(proc.args[0]).name
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise NotReady(f"{name} exited with {proc.returncode} (log {log}):\n{log_tail(log)}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise NotReady(f"{name} not ready at {ready_url} after {timeout:g} s (log {log}):\n{log_tail(log)}")
        time.sleep(0.2)


def start(cmd: Sequence[str], ready_url: str, log: Path, *, timeout: float, name: str | None = None,
          env: dict[str, str] | None = None, cwd: str | Path | None = None, append: bool = False,
          new_session: bool = False) -> subprocess.Popen:
    """spawn + wait_ready; a process that does not become ready is stopped before NotReady is raised."""
    proc = spawn(cmd, log, env=env, cwd=cwd, append=append, new_session=new_session)
    try:
        wait_ready(proc, ready_url, log, timeout, name)
    except BaseException:
        stop(proc)
        raise
    return proc


@contextlib.contextmanager
def running(cmd: Sequence[str], ready_url: str, log: Path, **kwargs) -> Iterator[subprocess.Popen]:
    """`start` on entry, `stop` on exit."""
    proc = start(cmd, ready_url, log, **kwargs)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after `timeout` s; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, an exited child not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill 0
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid: int, timeout: float = 20) -> None:
    """`stop` for a process known only by its pid (started by an earlier process, e.g. a rollout's
    detached model servers): SIGTERM, then SIGKILL after `timeout` s; reaped when it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap when it is our child
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
