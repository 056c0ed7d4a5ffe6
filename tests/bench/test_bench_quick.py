"""`make bench` still runs: quick mode against the session's trained workspace, into a tmp dir.
Benchmarks are not tests: this checks that every section is produced, never a timing."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import require

SECTIONS = {"machine", "serving", "lookup", "training", "workers", "drift", "shadow", "stream", "search", "scale",
            "letor", "recipe", "demo"}


@pytest.mark.slow
def test_bench_quick_mode_writes_every_section(trained_fraud, trained_search, tmp_path):
    require(shutil.which("wrk") is not None, "wrk (apt-get install wrk) for the saturation runs")
    from bench.run import main

    out, doc = tmp_path / "results.json", tmp_path / "docs" / "benchmarks.md"
    assert main(["--quick", "--home", str(trained_fraud.home), "--tenant-file", str(trained_fraud.tenant_file),
                 "--search-workspace", str(trained_search.tenant_file), str(trained_search.home), trained_search.run_id,
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
    # workers: both trainers on 1 and 2 Ray Train workers and in one process, each with its metric
    for case in results["workers"]["cases"].values():
        assert set(case["ways"]) == {"direct", "ray_1", "ray_2"}
        assert all(w["seconds"] > 0 and 0 < w["metric"] <= 1 for w in case["ways"].values())
    assert results["drift"]["status"] in {"ok"} or results["drift"]["status"].startswith("not yet available")
    # search: the session's search workspace (copied), the predictor's stages in process, the server over HTTP
    search = results["search"]
    assert search["status"] == "ok", search
    assert search["workspace"]["reused"] == str(trained_search.home)
    assert search["workspace"]["registered"] == ["champion"]
    stages = search["in_process"]["stages"]
    assert {"embed", "retrieve", "features", "score", "respond", "stages_total"} <= set(stages)
    assert all(stages[s]["n"] > 0 and stages[s]["p99_ms"] >= stages[s]["p50_ms"] > 0 for s in stages)
    for encoder in ("onnx", "torch"):  # the served ONNX encoder and the PyTorch baseline, at 20 and 100 req/s
        for rate in ("20", "100"):
            h = search["http"][encoder][rate]
            assert h["sent"] == int(rate) * 2 and h["errors"] == 0, (encoder, rate, h)
        assert search["http"][encoder]["saturation"]["rps"] > 0
    assert search["encoder_served"]["runtime"] == "onnx"
    assert search["in_process_torch"]["embed"]["n"] == stages["embed"]["n"]
    assert search["baseline_bm25_only"]["n"] > 0 and search["ratios"]["funnel_vs_bm25_only_p50"]
    assert isinstance(search["target_met"], bool)
    # scale: exact vs approximate dense retrieval on generated catalogs (3k and 10k in quick mode)
    scale = results["scale"]
    assert scale["status"] == "ok", scale
    assert {(r["items"], r["kind"]) for r in scale["rows"]} >= {(3000, "exact"), (10000, "hnsw"), (10000, "ivf")}
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 and 0 < r["recall_at_1000"] <= 1 for r in scale["rows"])
    # letor: the platform's scaffolded tenant and the LGBMRanker() baseline, scored on the same test file
    letor = results["letor"]
    assert letor["status"] == "ok", letor
    for run in letor["per_seed"]:
        assert run["platform"]["registered"] == ["champion"]
        assert 0 < run["platform"]["test_ndcg_at_10"] <= 1 and 0 < run["baseline"]["test_ndcg_at_10"] <= 1
        assert run["platform"]["test_queries"] == run["baseline"]["test_queries"]
    assert isinstance(letor["target_met"], bool) and letor["ratio"] > 0
    # recipe: the platform's recipe and the library's defaults on the same test rows, per cell and seed
    recipe = results["recipe"]
    assert recipe["status"] == "ok", recipe
    for task in ("ranking", "classification"):
        assert recipe[task]["cells"]
        for cell in recipe[task]["cells"]:
            assert all(0 < s["recipe"] <= 1 and 0 < s["default"] <= 1 and s["ratio"] > 0 for s in cell["per_seed"])
    assert isinstance(recipe["target_met"], bool)
    # shadow: every shadow kind measured behind the real nginx, and callers only ever saw 200
    shadow = results["shadow"]
    if shadow["status"].startswith("skipped"):
        require(False, shadow["status"])
    assert shadow["status"] == "ok", shadow
    assert set(shadow["shadows"]) == {"none", "healthy", "error", "hang", "down"}
    assert all(v["sent"] > 0 and v["statuses"] == {"200": v["sent"]} for v in shadow["shadows"].values())
    # stream: payments through the worker while the server takes traffic, beside the batch features step
    stream = results["stream"]
    if stream["status"].startswith("skipped"):
        require(False, stream["status"])
    assert stream["status"] == "ok", stream
    assert stream["feed"]["sent"] > 0 and stream["worker"]["events_applied"] == stream["feed"]["sent"]
    assert stream["event_to_online"]["probes"] > 0 and stream["worker"]["cpu_ms_per_event"] > 0
    assert stream["server"]["sent"] > 0 and stream["baseline_features_step"]["seconds"] > 0
    assert isinstance(stream["target_met"], bool)
    text = doc.read_text()
    for heading in ("## Machine", "## Shadow", "## Streaming freshness", "## Serving", "## Feature lookup", "## Training",
                    "## Ray Train workers (1 vs 2)", "## Drift", "## Search", "## Scale",
                    "## LETOR", "## Training recipe vs library defaults", "## Reproduce"):
        assert heading in text
    assert (doc.parent / "img" / "bench_serving.png").is_file()
    assert (doc.parent / "img" / "bench_search.png").is_file()
    assert (doc.parent / "img" / "bench_scale.png").is_file()
