"""A small search tenant carried through every pipeline step once per session (real GE, Feast,
bm25s, MiniLM, faiss, Ray, LightGBM, MLflow), and a real ModelServer process serving it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlplatform.registry.mlflow_registry import isolated_tracking_env
from tests.conftest import REPO

SEARCH_TENANT = REPO / "examples" / "search" / "tenant.yaml"
SMALL_SEARCH = {"items": 600, "queries": 150, "days": 15, "seed": 3}


def write_small_search_tenant(folder: Path, **generator_args) -> Path:
    raw = yaml.safe_load(SEARCH_TENANT.read_text())
    raw["data"]["generator_args"] = SMALL_SEARCH | generator_args
    raw["data"]["expectations"]["min_rows"] = 100
    raw["model"]["num_boost_round"] = 120
    raw["model"]["split"]["validation_days"] = 4
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tenant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


own_mlflow = isolated_tracking_env  # steps in this process: no inherited or leaked MLFLOW_TRACKING_URI


def run_steps(tenant: Path, home: Path, run_id: str) -> dict:
    from mlplatform import steps

    with own_mlflow():
        return {name: fn(str(tenant), str(home), run_id) for name, fn in steps.STEPS.items()}


@dataclass
class RunningServer:
    base_url: str
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="session")
def search_server(trained_search, tmp_path_factory) -> RunningServer:
    from tests.serving.server_helpers import free_port, start_server, stop, wait_ready

    port = free_port()
    log = tmp_path_factory.mktemp("search-server") / "server.log"
    proc = start_server(trained_search.tenant_file, trained_search.home, port, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base_url, log)
        yield RunningServer(base_url, proc, log)
    finally:
        stop(proc)
