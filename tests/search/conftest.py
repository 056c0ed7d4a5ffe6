"""A small search tenant carried through every pipeline step once per session (real GE, Feast,
bm25s, MiniLM, faiss, Ray, LightGBM, MLflow), and a real ModelServer process serving it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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




@pytest.fixture(scope="session")
def search_server(trained_search, tmp_path_factory):
    from tests.serving.server_helpers import running_server

    with running_server(trained_search.tenant_file, trained_search.home,
                        tmp_path_factory.mktemp("search-server")) as server:
        yield server
