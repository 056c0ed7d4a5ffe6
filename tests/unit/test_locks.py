"""The locks (requirements/*.txt) are the fact, pyproject.toml the policy: they must agree.

Each check's failure message names the command that fixes it. The locks are compiled by uv
(`make lock`) and installed by pip with --require-hashes (`make venv`, the Dockerfile).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"
FIX = "run `make lock` (then `make test`)"


@dataclass
class Pin:
    version: Version
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """`name==version \\` blocks as uv writes them, with their --hash lines and `# via` sources."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)", raw):
            current = pins[canonicalize_name(m.group(1))] = Pin(Version(m.group(3)))
        elif current and line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash=").rstrip(" \\"))
        elif current and raw.startswith("    #") and line != "# via":  # indented: this pin's sources
            current.via.append(line.lstrip("# ").removeprefix("via ").strip())
    return pins


def project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def editable(line: str) -> tuple[Path, list[str]]:
    """`-e ./examples/fraud` or `-e .[image,test]` -> (the project folder, its extras). Paths are
    relative to the repository root, where `make lock` runs uv."""
    m = re.match(r"-e\s+([^\[\s]+)(?:\[([^\]]*)\])?", line)
    return (ROOT / m.group(1)).resolve(), [e for e in (m.group(2) or "").split(",") if e]


def own_packages() -> set[str]:
    """The project's own distributions (the platform, the tenants): installed editable, with no
    deps, never locked."""
    lines = (REQ / "runtime.in").read_text().splitlines()
    return {canonicalize_name(project(editable(line)[0])["name"])
            for line in lines if line.startswith("-e ")}


def declared(name: str) -> list[Requirement]:
    """What requirements/NAME asks for: its lines, the projects it names with `-e` (their
    dependencies and the extras asked for) and the files it names with `-r`."""
    path, reqs = REQ / name, []
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            reqs += declared(line.removeprefix("-r ").strip())
        elif line.startswith("-e "):
            folder, extras = editable(line)
            meta = project(folder)
            reqs += [Requirement(r) for r in meta["dependencies"]]
            reqs += [Requirement(r) for e in extras for r in meta["optional-dependencies"][e]]
        else:
            reqs.append(Requirement(line))
    own = own_packages()
    return [r for r in reqs if canonicalize_name(r.name) not in own]


LOCKS = {  # lock -> the requirements/*.in files it is compiled from
    "runtime.txt": ["runtime.in", "installers.in"],
    "dev.txt": ["dev.in", "installers.in"],
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_declared_dependency_is_locked_within_its_range(lock):
    pins = read_lock(REQ / lock)
    for req in (r for name in LOCKS[lock] for r in declared(name)):
        pin = pins.get(canonicalize_name(req.name))
        assert pin, f"{req} is declared but not in requirements/{lock}: {FIX}"
        # the CPU build's local label (+cpu) is not part of the declared range
        assert req.specifier.contains(pin.version, prereleases=True) or \
            req.specifier.contains(Version(pin.version.public), prereleases=True), \
            f"requirements/{lock} pins {req.name}=={pin.version}, outside {req}: {FIX}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_nothing_is_locked_as_a_direct_dependency_that_pyproject_no_longer_declares(lock):
    names = {canonicalize_name(r.name) for name in LOCKS[lock] for r in declared(name)}
    sources = own_packages() | {f"-r requirements/{name}" for name in LOCKS[lock]}
    for name, pin in read_lock(REQ / lock).items():
        direct = any(canonicalize_name(v.split(" ")[0]) in sources or v in sources for v in pin.via)
        assert not direct or name in names, \
            f"requirements/{lock} locks {name} as a direct dependency that is no longer declared: {FIX}"


def test_every_pin_is_hashed_and_the_dev_lock_keeps_the_runtime_pins():
    locks = {name: read_lock(REQ / name) for name in ("runtime.txt", "dev.txt", "checkov.txt")}
    for name, pins in locks.items():
        assert pins, f"requirements/{name} is empty"
        unhashed = [p for p, pin in pins.items() if not pin.hashes]
        assert not unhashed, f"requirements/{name} has pins without hashes {unhashed}: {FIX}"
    runtime, dev = locks["runtime.txt"], locks["dev.txt"]
    differ = {n: (str(p.version), str(dev[n].version) if n in dev else None)
              for n, p in runtime.items() if n not in dev or dev[n].version != p.version}
    assert not differ, f"requirements/dev.txt must keep every runtime pin (runtime, dev): {differ}: {FIX}"


def test_torch_is_the_cpu_build_and_no_cuda_library_is_locked():
    for name in ("runtime.txt", "dev.txt"):
        pins = read_lock(REQ / name)
        assert pins["torch"].version.local == "cpu", f"requirements/{name}: torch must be the CPU build"
        cuda = [p for p in pins if p.startswith(("nvidia-", "triton"))
                and p not in ("tritonclient",)]
        assert not cuda, f"requirements/{name} locks CUDA packages {cuda}"


def test_checkov_lock_pins_the_version_in_versions_env():
    env = dict(line.split("=", 1) for line in (ROOT / "platform/cluster/versions.env").read_text().splitlines()
               if line and not line.startswith("#"))
    pin = read_lock(REQ / "checkov.txt")["checkov"]
    assert str(pin.version) == env["CHECKOV_VERSION"], f"requirements/checkov.txt is stale: {FIX}"


def test_this_venv_holds_exactly_the_dev_lock():
    """`make venv` installs requirements/dev.txt and nothing else (pip freeze --all == the lock)."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in the project's .venv ({sys.prefix}): `make test` runs there")
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    installed = {}
    for line in frozen:
        if "==" in line and not line.startswith(("#", "-e")):
            name, version = line.split("==", 1)
            installed[canonicalize_name(name)] = Version(version)
    installed = {n: v for n, v in installed.items() if n not in own_packages()}
    locked = {n: p.version for n, p in read_lock(REQ / "dev.txt").items()}
    missing = {n: str(v) for n, v in locked.items() if installed.get(n) != v}
    extra = {n: str(v) for n, v in installed.items() if n not in locked}
    assert not missing and not extra, \
        f"the venv differs from requirements/dev.txt (locked but not installed: {missing}; " \
        f"installed but not locked: {extra}): run `make venv`"


def test_the_dockerfile_installs_the_runtime_lock_with_hashes():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    installs = [line for line in text.splitlines() if "pip install" in line]
    locked = [line for line in installs if "requirements/runtime.txt" in line]
    assert locked and all("--require-hashes" in line for line in locked), installs
    # the only other install is the project itself, with no dependencies of its own
    others = [line for line in installs if line not in locked]
    assert others and all("--no-deps" in line for line in others), others
    assert "torch" not in " ".join(installs).replace("whl/cpu/torch", ""), "torch comes from the lock"
