"""`make bench` still runs: quick mode against the session's trained workspace, into a tmp dir.
Benchmarks are not tests: this checks that every section is produced, never a timing."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import require

SECTIONS = {"machine", "serving", "lookup", "training", "drift", "search", "demo"}


@pytest.mark.slow
def test_bench_quick_mode_writes_every_section(trained_fraud, tmp_path):
    require(shutil.which("wrk") is not None, "wrk (apt-get install wrk) for the saturation runs")
    from bench.run import main

    out, doc = tmp_path / "results.json", tmp_path / "docs" / "benchmarks.md"
    assert main(["--quick", "--home", str(trained_fraud.home), "--tenant-file", str(trained_fraud.tenant_file),
                 "--out", str(out), "--doc", str(doc)]) == 0
    results = json.loads(out.read_text())
    assert SECTIONS <= set(results)
    assert results["mode"] == "quick"
    for target in ("kserve", "minimal"):
        runs = results["serving"][target]["fixed_rate"]
        assert runs and all(r["sent"] > 0 for r in runs.values())
        assert results["serving"][target]["saturation"]["rps"]
    assert results["serving"]["in_process"]["n"] > 0
    assert {"entities_1", "entities_200"} <= set(results["lookup"])
    assert results["training"]["sizes"]
    assert results["drift"]["status"] in {"ok"} or results["drift"]["status"].startswith("not yet available")
    text = doc.read_text()
    for heading in ("## Machine", "## Serving", "## Feature lookup", "## Training", "## Drift", "## Search",
                    "## Reproduce"):
        assert heading in text
    assert (doc.parent / "img" / "bench_serving.png").is_file()
