#!/usr/bin/env python3
"""The mlplatform image's tag: a hash of everything that goes into it, so `make up` rebuilds after
any change and never runs an image built from older files under the same tag.

    python3 platform/cluster/image_tag.py [REPO_ROOT] [--build-arg KEY=VALUE ...]  ->  0.1.0-<12 hex>

What goes in is what `docker build` sends and the Dockerfile uses: every file of the build context
(the repository minus .dockerignore; `COPY . .` takes all of it, the Dockerfile and the lock
included), each with its path, its executable bit (COPY keeps modes) and its bytes, plus the build
arguments (TENANTS, TORCH_WHEELS). A file outside the context (.git, .venv, caches) changes nothing.

Standard library only: install/mlplatform.sh runs it before any venv exists in the image's sense.
.dockerignore support is the subset this repository uses (patterns with `*`, `**/`, no `!`
exceptions); anything else is an error rather than a silently different context.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import stat
import sys
from pathlib import Path

VERSION_RE = re.compile(r'^version = "([^"]+)"', re.M)


def ignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    out = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            raise ValueError(f".dockerignore exception {line!r} is not supported by image_tag.py")
        out.append(line.lstrip("/").rstrip("/"))
    return out


def _regex(pattern: str) -> re.Pattern:
    """Docker's pattern syntax (Go filepath.Match plus `**`): `**/` any number of folders (also
    none), `*` and `?` within one path segment."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _matches(rel: str, regex: re.Pattern) -> bool:
    """A pattern excludes the path it matches and everything under it."""
    parts = rel.split("/")
    return any(regex.match("/".join(parts[:i])) for i in range(1, len(parts) + 1))


def context_files(root: Path) -> list[str]:
    """Paths (posix, relative) of the files `docker build` sends, sorted."""
    patterns = [_regex(p) for p in ignore_patterns(root)]
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not any(_matches(rel_dir + d, p) for p in patterns))
        out += [rel_dir + f for f in filenames if not any(_matches(rel_dir + f, p) for p in patterns)]
    return sorted(out)


def content_hash(root: Path, build_args: dict[str, str] | None = None) -> str:
    h = hashlib.sha256()
    for key, value in sorted((build_args or {}).items()):
        h.update(f"arg\0{key}\0{value}\0".encode())
    for rel in context_files(root):
        path = root / rel
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            h.update(f"link\0{rel}\0{os.readlink(path)}\0".encode())
            continue
        h.update(f"file\0{rel}\0{'x' if mode & stat.S_IXUSR else '-'}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def image_tag(root: Path, build_args: dict[str, str] | None = None) -> str:
    """<project version>-<12 hex digits of the content hash>."""
    m = VERSION_RE.search((root / "pyproject.toml").read_text())
    version = m.group(1) if m else "0"
    return f"{version}-{content_hash(root, build_args)[:12]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    build_args = {}
    for pair in args.build_arg:
        key, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"--build-arg wants KEY=VALUE, got {pair!r}")
        build_args[key] = value
    print(image_tag(Path(args.root).resolve(), build_args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
