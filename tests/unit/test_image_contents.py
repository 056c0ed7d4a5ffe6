"""What the image installs holds what each container runs, read from the libraries' own metadata,
not only from the manifests: the Dockerfile installs requirements/runtime.txt (and the project with
--no-deps), so every run-time need must be pinned there.

- RayJob head (training/rayjob.py): KubeRay submits the job through the head's dashboard on 8265
  (`ray job submit`), which starts only with ray's `default` extra (aiohttp_cors, opencensus, ...).
- MLflow's backend store and Feast's SQL registry on PostgreSQL: the driver SQLAlchemy picks for
  postgresql:// (psycopg 3), with its bundled libpq (the slim base image has none).
- Feast's Redis online store: the redis client.
- The pipeline's cluster-mode Kubernetes settings: kfp-kubernetes.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# the image's interpreter and platform (Dockerfile: python:3.11 slim, Linux x86_64)
IMAGE_ENV = {"python_version": "3.11", "python_full_version": "3.11.9", "sys_platform": "linux",
             "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
             "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def image_lock() -> Path:
    """The lock the Dockerfile installs with --require-hashes."""
    text = (ROOT / "Dockerfile").read_text()
    (path,) = re.findall(r"pip install --require-hashes .*?-r (\S+)", text)
    return ROOT / path


def pinned(lock: Path) -> set[str]:
    return {canonicalize_name(m.group(1)) for line in lock.read_text().splitlines()
            if (m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==", line))}


def extra_needs(dist: str, extra: str) -> set[str]:
    """What `dist[extra]` adds on the image's platform, from the installed distribution's metadata."""
    needs = set()
    for raw in metadata.requires(dist) or []:
        req = Requirement(raw)
        if req.marker is not None and req.marker.evaluate(IMAGE_ENV | {"extra": extra}) and \
                not req.marker.evaluate(IMAGE_ENV | {"extra": ""}):
            needs.add(canonicalize_name(req.name))
    return needs


def missing(lock_names: set[str]) -> dict[str, set[str]]:
    from sqlalchemy.engine import make_url

    driver = make_url("postgresql://u@postgres/mlflow").get_dialect().driver  # psycopg with SQLAlchemy 2.x
    needs = {
        "RayJob head: dashboard and job submission (ray[default])": extra_needs("ray", "default") | {"ray"},
        "PostgreSQL (MLflow backend store, Feast SQL registry)": {canonicalize_name(driver), "psycopg-binary"},
        "Redis (Feast online store)": {"redis"},
        "KFP Kubernetes settings": {"kfp-kubernetes"},
    }
    return {what: names - lock_names for what, names in needs.items() if names - lock_names}


def test_the_image_lock_holds_what_every_container_needs():
    lock = image_lock()
    assert lock == ROOT / "requirements" / "runtime.txt"
    assert missing(pinned(lock)) == {}


def test_ray_default_extra_is_read_from_rays_metadata_and_a_gap_is_named():
    needs = extra_needs("ray", "default")
    assert {"aiohttp-cors", "opencensus", "aiohttp", "smart-open"} <= needs
    gaps = missing(pinned(image_lock()) - {"aiohttp-cors", "redis"})
    assert gaps == {"RayJob head: dashboard and job submission (ray[default])": {"aiohttp-cors"},
                    "Redis (Feast online store)": {"redis"}}


def test_the_project_itself_needs_nothing_the_lock_lacks():
    """The Dockerfile installs mlplatform with --no-deps: its own requirements (with the image
    extra) must all be pinned."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {canonicalize_name(Requirement(r).name)
              for r in project["dependencies"] + project["optional-dependencies"]["image"]}
    assert wanted - pinned(image_lock()) == set()
