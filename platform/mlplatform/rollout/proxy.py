"""An embedded nginx in front of a tenant's model servers: weighted canary and mirrored shadow.

nginx comes from the distribution (`apt-get install nginx-light`); it runs with its own prefix in
the workspace (`<home>/tenants/<name>/rollout/nginx/`: nginx.conf, nginx.pid, logs/, tmp/), never
touching the system configuration. The master process is detached (own session) and found again
through its pid file, so a later `mlplatform rollout` run can reload the proxy an earlier one
started.

- canary: `split_clients` on `$request_id` (random per request) sends `weight`% to the canary
  upstream, the rest to stable;
- shadow: `mirror` sends a copy of every request (with its body) to the shadow upstream; nginx
  discards mirror responses; the mirror location has short timeouts so a slow or dead shadow
  cannot hold the caller's connection long (see docs/rollout.md for measured numbers);
- `X-Request-ID: $request_id` goes to main and mirror requests (joins stable and shadow
  predictions), `X-Mlplatform-Role` tells callers which upstream answered;
- reloads are graceful (`nginx -s reload`: old workers finish their requests); `/_proxy/generation`
  returns the configuration generation so a reload can be awaited, and `apply()` also waits until
  the old workers have exited, so an upstream the new routes no longer name can be stopped at once
  without failing a request an old worker was still proxying to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlplatform.rollout.state import rollout_dir
from mlplatform.workspace import Workspace

MIRROR_CONNECT_TIMEOUT = "50ms"
MIRROR_READ_TIMEOUT = "250ms"

TEMPLATE = """\
# rendered by mlplatform.rollout.proxy: do not edit (generation {generation})
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    client_max_body_size 8m;
    client_body_buffer_size 1m;  # bodies stay in memory: the mirror reuses them
    keepalive_timeout 30s;

    upstream stable {{ server {stable}; keepalive 16; }}
{canary_upstream}{shadow_upstream}
    split_clients "${{request_id}}" $mlp_backend {{
{split}
    }}

    server {{
        listen {listen};
        location = /_proxy/generation {{ return 200 "{generation}\\n"; }}
        location / {{
{mirror}            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-ID $request_id;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            add_header X-Mlplatform-Role $mlp_backend always;
            add_header X-Request-ID $request_id always;
            proxy_pass http://$mlp_backend;
        }}
{mirror_location}    }}
}}
"""

MIRROR = """            mirror /_mlp_shadow;
            mirror_request_body on;
"""

MIRROR_LOCATION = """        location = /_mlp_shadow {{
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-ID $request_id;
            proxy_set_header X-Mlplatform-Mirror "1";
            proxy_connect_timeout {connect};
            proxy_send_timeout {read};
            proxy_read_timeout {read};
            proxy_next_upstream off;
            proxy_pass http://shadow$request_uri;
        }}
"""


@dataclass(frozen=True)
class Routes:
    """What the proxy sends where: host:port of each upstream, and the canary percent."""

    stable: str
    canary: str | None = None
    canary_weight: int = 0
    shadow: str | None = None

    def __post_init__(self):
        if not 0 <= self.canary_weight <= 100:
            raise ValueError(f"canary weight must be 0..100, got {self.canary_weight}")
        if self.canary_weight and not self.canary:
            raise ValueError("a canary weight needs a canary upstream")


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if not found:
        raise FileNotFoundError("nginx is not installed (Debian/Ubuntu: apt-get install nginx-light)")
    return found


def render(routes: Routes, listen: str, prefix: Path, generation: int = 1) -> str:
    weight = routes.canary_weight if routes.canary else 0
    split = (f"        {weight}% canary;\n" if weight else "") + ("        * stable;" if weight < 100 else "")
    return TEMPLATE.format(
        generation=generation,
        user="user root;\n" if os.geteuid() == 0 else "",  # as root, workers would drop to nobody
        prefix=prefix,
        listen=listen,
        stable=routes.stable,
        canary_upstream=f"    upstream canary {{ server {routes.canary}; keepalive 16; }}\n" if routes.canary else "",
        shadow_upstream=f"    upstream shadow {{ server {routes.shadow}; keepalive 16; }}\n" if routes.shadow else "",
        split=split.rstrip("\n"),
        mirror=MIRROR if routes.shadow else "",
        mirror_location=(MIRROR_LOCATION.format(connect=MIRROR_CONNECT_TIMEOUT, read=MIRROR_READ_TIMEOUT)
                         if routes.shadow else ""),
    )


class NginxProxy:
    """One tenant's proxy. `start(routes)` / `apply(routes)` (render + graceful reload) / `stop()`."""

    def __init__(self, ws: Workspace, tenant: str, port: int, host: str = "127.0.0.1"):
        self.prefix = rollout_dir(ws, tenant) / "nginx"
        self.port, self.host = port, host
        self.url = f"http://{host}:{port}"
        self.conf = self.prefix / "nginx.conf"
        self.pid_file = self.prefix / "nginx.pid"
        self.generation = 0
        self._proc: subprocess.Popen | None = None

    # --- process ------------------------------------------------------------------------------

    def _cmd(self, *extra: str) -> list[str]:
        return [nginx_binary(), "-p", str(self.prefix), "-c", str(self.conf), "-e",
                str(self.prefix / "logs" / "error.log"), *extra]

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        if self._proc is not None and self._proc.pid == pid and self._proc.poll() is not None:
            return None  # our child exited (a zombie still answers kill 0)
        return pid

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def _write(self, routes: Routes) -> None:
        for sub in ("logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.generation += 1
        text = render(routes, f"{self.host}:{self.port}", self.prefix, self.generation)
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text)
        test = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(self.prefix), "-c", str(tmp), "-e",
                               str(self.prefix / "logs" / "error.log")], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx rejected the rendered configuration:\n{test.stderr}\n{text}")
        tmp.replace(self.conf)

    def _current_generation(self) -> int:
        if self.conf.exists():
            first = self.conf.read_text().splitlines()[0]
            if "generation" in first:
                return int(first.rsplit(" ", 1)[1].rstrip(")"))
        return 0

    def start(self, routes: Routes, timeout: float = 10) -> None:
        """Start detached (survives this process); when already running, apply the routes."""
        self.generation = self._current_generation()
        if self.running:
            self.apply(routes)
            return
        self._write(routes)
        log = (self.prefix / "logs" / "nginx.out").open("a")
        self._proc = subprocess.Popen(self._cmd("-g", "daemon off;"), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self._await_generation(timeout)

    def apply(self, routes: Routes, timeout: float = 10, drain_timeout: float = 35) -> None:
        """Render the routes and reload gracefully; returns when the new configuration answers
        and the previous workers have drained (at most `drain_timeout` seconds)."""
        if not self.running:
            self.start(routes, timeout)
            return
        self.generation = max(self.generation, self._current_generation())
        self._write(routes)
        previous = self.workers()
        out = subprocess.run(self._cmd("-s", "reload"), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"nginx reload failed: {out.stderr}")
        self._await_generation(timeout)
        self._await_exit(previous, drain_timeout)

    def workers(self) -> list[int]:
        """Pids of the master's worker processes (all generations). Empty where /proc is not available."""
        master = self.pid()
        proc = Path("/proc")
        if master is None or not proc.is_dir():
            return []
        found = []
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue  # exited meanwhile
            if int(fields[1]) == master and fields[0] != "Z":
                found.append(int(entry.name))
        return found

    def _await_exit(self, pids: list[int], timeout: float) -> None:
        # the workers of the previous configuration end when their in-flight requests (bounded by
        # proxy_read_timeout) finish; past the timeout we go on rather than block a rollout forever
        deadline = time.monotonic() + timeout
        while set(pids) & set(self.workers()) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _await_generation(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self._proc.returncode}: "
                                   f"{(self.prefix / 'logs' / 'error.log').read_text()[-2000:]}")
            try:
                r = httpx.get(f"{self.url}/_proxy/generation", timeout=1)
                if r.status_code == 200 and int(r.text) >= self.generation:
                    return
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"nginx did not serve generation {self.generation} within {timeout}s")

    def stop(self, timeout: float = 10) -> None:
        """Graceful quit (in-flight requests finish), then SIGKILL after `timeout`."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                if self._proc.poll() is not None:
                    break
            elif self.pid() is None:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)
