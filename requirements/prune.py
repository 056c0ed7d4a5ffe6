"""Uninstall what a lock file does not name, so that a venv holds exactly its lock.

Run by `make venv` with the venv's own python before `pip install -r LOCK`: a package dropped from
the lock (or installed by hand) would otherwise stay in the venv and hide a missing dependency.
Editable installs (the project itself) are kept. Standard library only: it runs before anything else.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_names(lock: Path) -> set[str]:
    return {normalize(m.group(1)) for line in lock.read_text().splitlines() if (m := PIN.match(line))}


def is_editable(dist: metadata.Distribution) -> bool:
    direct_url = dist.read_text("direct_url.json") or ""
    return '"editable": true' in direct_url.replace(" ", "").replace('":true', '": true')


def main(lock: str) -> int:
    keep = locked_names(Path(lock))
    extra = sorted({normalize(d.metadata["Name"]) for d in metadata.distributions()
                    if normalize(d.metadata["Name"]) not in keep and not is_editable(d)})
    if extra:
        print(f"prune.py: uninstalling what {lock} does not name: {' '.join(extra)}")
        return subprocess.call([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *extra])
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
