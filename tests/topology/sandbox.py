"""Run one container of a rendered manifest as its pod would run it, on this machine, in bubblewrap.

What the process gets is read from the manifest (never from a second, hand-written list):
- the image's filesystem, read-only: a fresh root holding only the system's /usr and /etc, the
  image's venv (IMAGE_VENV, at its own path; built by `make image-venv` as the Dockerfile installs it)
  and /app, the image's WORKDIR and the working directory, holding what the Dockerfile's `COPY . .`
  puts there (image_app(): the build context less .dockerignore, root-owned), so a container that
  reads a file the image ships (the webhook's PIPELINE_PACKAGE) reads it where the image has it;
- writable only the volumes the container mounts: each emptyDir a private directory of this
  sandbox, each ConfigMap its data written to a private directory and bound read-only, a projected
  ServiceAccount token volume the same way with what the kubelet would put there (ApiAccess); /tmp, when
  the manifest mounts nothing there, is an empty read-only directory (the host's /tmp stays hidden);
- only the image's ENV (Dockerfile) and the manifest's env; the service hostnames the env names
  resolve through a private /etc/hosts to where the test runs those services;
- a REAL uid/gid (securityContext runAsUser/runAsGroup): bwrap sets up the mounts as root, then
  `setpriv` drops to that uid with no groups, no capabilities and no_new_privs
  (allowPrivilegeEscalation: false, capabilities drop ALL). `bwrap --uid` alone would only map root
  to another name in a user namespace.
The network namespace is shared with the host: the pod's Service addresses are 127.0.0.1 here.
"""

from __future__ import annotations

import atexit
import fnmatch
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE_VENV = Path(os.environ.get("IMAGE_VENV", "/opt/mlplatform/venv"))  # the Makefile's IMAGE_VENV
# bound at its own path, which its scripts' shebangs name (the Dockerfile's is /opt/venv: same role)
IMAGE_PYTHON_HOME = str(IMAGE_VENV)
# the Dockerfile's ENV and WORKDIR: what every container of the image starts with
IMAGE_ENV = {
    "PATH": f"{IMAGE_PYTHON_HOME}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "VIRTUAL_ENV": IMAGE_PYTHON_HOME,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",  # the base image's (python:3.11-slim) own ENV
}
IMAGE_WORKDIR = "/app"
REPO = Path(__file__).resolve().parents[2]


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's `patterns` exclude `path` (or a folder above it). Covers the forms the
    project's .dockerignore uses: names, `**/name` and globs; no `!` exceptions."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


@functools.cache
def image_app() -> Path:
    """The image's /app: the files `git ls-files` knows (tracked, and new ones not git-ignored),
    less what .dockerignore keeps out of the build context; copied once per test session, root-owned
    and world-readable as `COPY . .` leaves them."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    app = Path(tempfile.mkdtemp(prefix="mlplatform-image-app-"))
    atexit.register(shutil.rmtree, app, True)
    for name in filter(None, listed):
        source = REPO / name
        if _docker_ignored(name, patterns) or not source.is_file():  # deleted in the work tree
            continue
        target = app / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for path in [app, *app.rglob("*")]:  # a+rX: executables stay executable
        os.chmod(path, 0o755 if path.is_dir() or path.stat().st_mode & 0o100 else 0o644)
    return app


class ManifestError(ValueError):
    """The manifest asks for something this harness does not model (so it cannot run it faithfully)."""


def missing() -> str | None:
    """Why the sandbox cannot run here (None when it can)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if os.geteuid() != 0:
        return "the sandbox drops to the pod's uid with setpriv, which needs root"
    if not (IMAGE_VENV / "bin" / "mlplatform").is_file():
        return f"no image venv at {IMAGE_VENV} (run `make image-venv`)"
    return None


@dataclass
class Volume:
    mount_path: str
    source: Path  # a private directory on the host
    writable: bool


@dataclass
class Container:
    """What one container of a pod gets, read from the manifest."""

    name: str
    argv: list[str]  # command + args
    env: dict[str, str]
    uid: int
    gid: int
    volumes: list[Volume] = field(default_factory=list)

    @classmethod
    def from_pod(cls, pod_spec: Mapping[str, Any], container: Mapping[str, Any], scratch: Path,
                 config_maps: Mapping[str, Mapping[str, str]] = {}, api: "ApiAccess | None" = None,
                 secrets: Mapping[str, Mapping[str, str]] = {}) -> "Container":
        """`pod_spec` and `container` as rendered; `config_maps` and `secrets` map a ConfigMap's or a
        Secret's name to its (decoded) data, from the same render; each volume becomes a private
        directory under `scratch`. `api`: what the kubelet gives a pod towards the API server (its
        Service in the env, the token a projected serviceAccountToken source holds, the pod's
        namespace for downwardAPI). A Secret the pod names but `secrets` lacks fails, as the kubelet
        would not start the container."""
        sc = {**pod_spec.get("securityContext", {}), **container.get("securityContext", {})}
        if not sc.get("readOnlyRootFilesystem"):
            raise ManifestError(f"{container['name']}: the harness runs only readOnlyRootFilesystem containers")
        if sc.get("allowPrivilegeEscalation", True) or "ALL" not in sc.get("capabilities", {}).get("drop", []):
            raise ManifestError(f"{container['name']}: expected allowPrivilegeEscalation false and capabilities drop ALL")
        if "runAsUser" not in sc or "runAsGroup" not in sc:
            raise ManifestError(f"{container['name']}: no runAsUser/runAsGroup in the securityContext")
        if container.get("workingDir") not in (None, IMAGE_WORKDIR):
            raise ManifestError(f"{container['name']}: workingDir {container['workingDir']} is not modelled")
        env = {}
        if api is not None:  # the kubelet sets these in every container, before the manifest's env
            env |= {"KUBERNETES_SERVICE_HOST": api.host, "KUBERNETES_SERVICE_PORT": str(api.port)}
        for source in container.get("envFrom", []):  # before env: an env entry wins over envFrom
            if set(source) != {"secretRef"}:
                raise ManifestError(f"{container['name']}: envFrom {source} is not modelled")
            env |= _secret(container["name"], secrets, source["secretRef"]["name"])
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                data = _secret(container["name"], secrets, ref["name"])
                if ref["key"] not in data:
                    raise ManifestError(f"{container['name']}: Secret {ref['name']} has no key {ref['key']}")
                env[item["name"]] = data[ref["key"]]
                continue
            if "value" not in item:
                raise ManifestError(f"{container['name']}: env {item['name']} is not a literal value")
            env[item["name"]] = str(item["value"])
        # the kubelet expands $(NAME) in command and args from the container's env
        argv = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a)
                for a in [*container.get("command", []), *container.get("args", [])]]
        declared = {v["name"]: v for v in pod_spec.get("volumes", [])}
        volumes = []
        for mount in container.get("volumeMounts", []):
            volume = declared[mount["name"]]
            source = scratch / "volumes" / mount["name"]
            source.mkdir(parents=True)
            if "emptyDir" in volume:
                writable = not mount.get("readOnly", False)
            elif "configMap" in volume:
                data = config_maps[volume["configMap"]["name"]]
                for key, text in data.items():
                    (source / key).write_text(text)
                writable = False  # kubelet mounts ConfigMaps read-only whatever the mount says
            elif "secret" in volume:
                name = volume["secret"]["secretName"]
                optional = volume["secret"].get("optional") and name not in secrets  # mounted empty
                # the kubelet's layout: the files in a timestamped folder, `..data` pointing at it, and
                # each key a symlink through `..data` (so an update swaps one link); defaultMode 0644
                stamp = source / "..2026_01_01_00_00_00.000000000"
                stamp.mkdir(mode=0o755)
                for key, text in ({} if optional else _secret(container["name"], secrets, name)).items():
                    (stamp / key).write_text(text)
                    os.chmod(stamp / key, 0o644)
                    (source / key).symlink_to(f"..data/{key}")
                (source / "..data").symlink_to(stamp.name)
                writable = False
            elif "projected" in volume:
                for key, text in _projected(container["name"], volume["projected"], config_maps, api).items():
                    (source / key).write_text(text)
                    os.chmod(source / key, 0o644)
                writable = False
            else:
                raise ManifestError(f"{container['name']}: volume {mount['name']} is not an emptyDir, configMap, "
                                    "secret or projected")
            if writable:
                os.chown(source, sc["runAsUser"], sc["runAsGroup"])  # fsGroup's effect on an emptyDir
            else:
                os.chmod(source, 0o755)
            volumes.append(Volume(mount["mountPath"], source, writable))
        return cls(container["name"], argv, env, int(sc["runAsUser"]), int(sc["runAsGroup"]), volumes)


def _secret(container: str, secrets: Mapping[str, Mapping[str, str]], name: str) -> dict[str, str]:
    if name not in secrets:
        raise ManifestError(f"{container}: Secret {name} is not in the render (the kubelet would not start it)")
    return dict(secrets[name])


@dataclass
class ApiAccess:
    """The API server as the kubelet presents it to a pod (KUBERNETES_SERVICE_HOST/PORT) and what
    a projected volume of the pod holds: the token issued for its ServiceAccount, the pod's namespace;
    the CA comes with `config_maps` as kube-root-ca.crt."""

    host: str
    port: int
    token: str
    namespace: str


def _projected(container: str, projected: Mapping[str, Any], config_maps: Mapping[str, Mapping[str, str]],
               api: ApiAccess | None) -> dict[str, str]:
    """The files of a projected volume: serviceAccountToken, configMap items, downwardAPI namespace."""
    files = {}
    for source in projected["sources"]:
        if "serviceAccountToken" in source:
            if api is None:
                raise ManifestError(f"{container}: mounts a ServiceAccount token but the test gave no API access")
            files[source["serviceAccountToken"]["path"]] = api.token
        elif "configMap" in source:
            data = config_maps[source["configMap"]["name"]]
            files |= {item["path"]: data[item["key"]] for item in source["configMap"]["items"]}
        elif "downwardAPI" in source:
            for item in source["downwardAPI"]["items"]:
                if item.get("fieldRef", {}).get("fieldPath") != "metadata.namespace" or api is None:
                    raise ManifestError(f"{container}: downwardAPI item {item} is not modelled")
                files[item["path"]] = api.namespace
        else:
            raise ManifestError(f"{container}: projected source {sorted(source)} is not modelled")
    return files


class Sandbox:
    """One pod's worth of private state under `scratch` (a directory only root can traverse)."""

    def __init__(self, scratch: Path, hosts: Mapping[str, str] = {}):
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        os.chmod(self.scratch, 0o700)
        self.hosts = dict(hosts)

    def _hosts_file(self) -> Path:
        path = self.scratch / "hosts"
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{address} {name}" for name, address in sorted(self.hosts.items())]
        path.write_text("\n".join(lines) + "\n")
        os.chmod(path, 0o644)
        return path

    def command(self, container: Container, argv: list[str] | None = None) -> list[str]:
        """The bwrap + setpriv command line that runs `argv` (default: the container's own)."""
        cmd = [shutil.which("bwrap") or "bwrap", "--tmpfs", "/", "--ro-bind", "/usr", "/usr", "--tmpfs", "/etc"]
        # /etc entry by entry (their own modes: /etc/shadow stays root's), so that the manifest can
        # mount under /etc (the tenant ConfigMap at /etc/mlplatform) and /etc/hosts is this sandbox's
        for entry in sorted(Path("/etc").iterdir()):
            if entry.name == "hosts" or any(v.mount_path == str(entry) for v in container.volumes):
                continue
            cmd += ["--symlink", os.readlink(entry), str(entry)] if entry.is_symlink() else ["--ro-bind", str(entry), str(entry)]
        cmd += ["--ro-bind", str(self._hosts_file()), "/etc/hosts"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):  # merged /usr: symlinks
            path = Path("/") / top
            if path.is_symlink():
                cmd += ["--symlink", os.readlink(path), f"/{top}"]
            elif path.is_dir():
                cmd += ["--ro-bind", str(path), f"/{top}"]
        # bwrap creates missing parents of a mount point as 0700 root: make them traversable
        for parent in reversed(Path(IMAGE_PYTHON_HOME).parents[:-1]):
            cmd += ["--perms", "0755", "--dir", str(parent)]
        cmd += ["--ro-bind", str(IMAGE_VENV), IMAGE_PYTHON_HOME,
                "--ro-bind", str(image_app()), IMAGE_WORKDIR,
                "--dev", "/dev", "--proc", "/proc",
                # every container gets a private /dev/shm (tmpfs, 1777) from its runtime; joblib and
                # multiprocessing's semaphores need it
                "--perms", "1777", "--tmpfs", "/dev/shm"]
        if not any(v.mount_path == "/tmp" for v in container.volumes):
            empty = self.scratch / "no-tmp"
            empty.mkdir(exist_ok=True)
            cmd += ["--ro-bind", str(empty), "/tmp"]
        made = {"/etc", "/tmp", "/dev", "/proc", IMAGE_WORKDIR}
        for v in container.volumes:
            for parent in reversed(Path(v.mount_path).parents[:-1]):  # e.g. /var/run/secrets for a token
                if str(parent) not in made:
                    made.add(str(parent))
                    cmd += ["--perms", "0755", "--dir", str(parent)]
            cmd += ["--bind" if v.writable else "--ro-bind", str(v.source), v.mount_path]
        cmd += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
                "--clearenv"]
        for name, value in {**IMAGE_ENV, **container.env}.items():
            cmd += ["--setenv", name, value]
        cmd += ["--chdir", IMAGE_WORKDIR, "--remount-ro", "/", "--",
                "setpriv", "--reuid", str(container.uid), "--regid", str(container.gid), "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        return cmd + list(argv if argv is not None else container.argv)

    def run(self, container: Container, argv: list[str] | None = None, timeout: float = 120,
            **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(container, argv), capture_output=True, text=True,
                              timeout=timeout, env={}, **kwargs)

    def start(self, container: Container, log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(self.command(container), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env={})
