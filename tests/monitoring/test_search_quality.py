"""Quality of a ranking tenant on delayed feedback: served result lists in the prediction log,
clicks that arrive later (mlplatform.monitoring.feedback), click NDCG with inverse propensity
weighting (mlplatform.monitoring.quality), exported as mlplatform_model_quality."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from mlplatform.config import load_tenant
from mlplatform.monitoring.feedback import FeedbackError, feedback_dir, read_feedback, validate_feedback, write_feedback
from mlplatform.monitoring.prediction_log import RankingLog, read_predictions
from mlplatform.monitoring.quality import QualityCollector, click_quality, quality_file
from mlplatform.registry.mlflow_registry import isolated_tracking_env
from mlplatform.tasks import task_for
from mlplatform.workspace import Workspace

from tests.conftest import REPO

SEARCH_TENANT = REPO / "examples" / "search" / "tenant.yaml"
T0 = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
THRESHOLDS = [0.1, 0.3, 0.55, 0.8]  # the search tenant's ranking.clicks.grade_thresholds (eta 1)


def _log(ws, lists: dict[str, tuple[str, list[int]]], version: str = "1") -> None:
    log = RankingLog(ws, "search", "stable", flush_seconds=60)
    for rid, (query, items) in lists.items():
        log.record(rid, version, [(query, items, [float(-i) for i in range(len(items))])])
    log.close()


def _feedback(rows: list[tuple[str, int, int, int]], at: datetime) -> pd.DataFrame:
    return pd.DataFrame([{"request_id": r, "item_id": i, "position": p, "clicked": c, "at": at} for r, i, p, c in rows])


# --- the metric on a case small enough to compute by hand -------------------------------------------


def test_ipw_click_ndcg_hand_computed(tmp_path):
    """Query "q" shown twice as [A=1, B=2, C=3]: list a gets a click on B (position 2), list b on A
    and C (positions 1 and 3). With P(examine k) = 1/k, the IPW click-through rates are
        A: (1/1) / 2 shown = 0.5 -> grade 2 (0.3 <= 0.5 < 0.55), gain 2^2 - 1 = 3
        B: (1/(1/2)) / 2 = 1.0   -> grade 4,                       gain 15
        C: (1/(1/3)) / 2 = 1.5   -> grade 4,                       gain 15
    DCG of the served order A, B, C = 3/log2(2) + 15/log2(3) + 15/log2(4); the ideal order puts B
    and C first: 15/log2(2) + 15/log2(3) + 3/log2(4). A list of "z" nobody clicked counts for click
    MRR and CTR but not for NDCG (no graded item); a list without any feedback is not counted."""
    cfg = load_tenant(SEARCH_TENANT)
    ws = Workspace(tmp_path)
    _log(ws, {"a": ("q", [1, 2, 3]), "b": ("q", [1, 2, 3]), "c": ("z", [7, 8]), "d": ("q", [1, 2, 3]),
              "e": ("q", [3, 2, 1])})
    write_feedback(ws, "search", _feedback([("a", 1, 1, 0), ("a", 2, 2, 1), ("a", 3, 3, 0),
                                            ("c", 7, 1, 0), ("c", 8, 2, 0),
                                            ("e", 3, 2, 1),          # logged at position 1: dropped
                                            ("nosuch", 1, 1, 1)],    # no such list: dropped
                                           T0 + timedelta(minutes=5)))
    write_feedback(ws, "search", _feedback([("b", 1, 1, 1), ("b", 3, 3, 1)], T0 + timedelta(hours=2)))
    expected = (3 + 15 / math.log2(3) + 15 / 2) / (15 + 15 / math.log2(3) + 3 / 2)

    rec = task_for(cfg).quality_job(cfg, ws, as_of=datetime.now(timezone.utc) + timedelta(days=1))
    assert rec["predictions"] == 5 and rec["labelled"] == 3
    assert rec["unmatched_feedback"] == 1 and rec["position_mismatch"] == 1
    q = rec["versions"]["1"]
    assert q["ndcg_at_10"] == pytest.approx(expected) == pytest.approx(0.768910, abs=1e-6)
    assert q["ndcg_at_5"] == pytest.approx(expected)
    assert q["click_mrr"] == pytest.approx((1 / 2 + 1 / 1 + 0) / 3)
    assert q["ctr_at_10"] == pytest.approx(3 / 8) and q["labelled_rows"] == 3 and q["queries"] == 1
    assert json.loads(quality_file(ws, "search").read_text())["versions"]["1"]["ndcg_at_10"] == q["ndcg_at_10"]

    # the exporter: every quality metric, not the counts
    samples = {(s.name, s.labels.get("metric")): s.value for fam in QualityCollector(ws).collect() for s in fam.samples}
    assert samples[("mlplatform_model_quality", "ndcg_at_10")] == pytest.approx(expected)
    assert samples[("mlplatform_model_quality", "click_mrr")] == pytest.approx(0.5)
    assert ("mlplatform_model_quality", "impressions") not in samples
    assert samples[("mlplatform_model_quality_labelled_rows", None)] == 3

    # feedback that has not arrived yet waits: before list b's clicks, only a's click on B counts
    # (B: 2 / 1 shown -> grade 4; A and C: grade 0): NDCG = (15/log2 3) / 15
    early = task_for(cfg).quality_job(cfg, ws, as_of=T0 + timedelta(hours=1))
    assert early["labelled"] == 2
    assert early["versions"]["1"]["ndcg_at_10"] == pytest.approx(1 / math.log2(3))


def test_rolling_window_keeps_the_newest_lists_per_version(tmp_path):
    cfg = load_tenant(SEARCH_TENANT)
    ws = Workspace(tmp_path)
    _log(ws, {f"old{i}": ("q", [1, 2]) for i in range(3)})
    _log(ws, {f"new{i}": ("q", [1, 2]) for i in range(2)})
    _log(ws, {"v2": ("q", [2, 1])}, version="2")
    rows = [(f"old{i}", 2, 2, 1) for i in range(3)] + [(f"new{i}", 1, 1, 1) for i in range(2)] + [("v2", 2, 1, 1)]
    write_feedback(ws, "search", _feedback(rows, T0))
    rec = task_for(cfg).quality_job(cfg, ws, window=2, as_of=datetime.now(timezone.utc) + timedelta(days=1))
    assert set(rec["versions"]) == {"1", "2"}
    assert rec["versions"]["1"]["labelled_rows"] == 2 and rec["versions"]["1"]["ndcg_at_10"] == pytest.approx(1.0)
    assert rec["versions"]["1"]["click_mrr"] == pytest.approx(1.0)  # only the two newest lists


# --- a worse ranker gets a lower click NDCG -----------------------------------------------------------


def test_reversed_ranker_gets_lower_click_ndcg_on_simulated_clicks():
    """The search tenant's simulated users (position-based click model, ground-truth relevance) on
    a ranker that orders by relevance and on the same lists reversed. IPW recovers relevance from
    the clicks wherever an item was shown; raw click-through rates credit each ranker's own top
    positions and make the reversed ranker look far better than it is."""
    from search_tenant.data import simulate, true_relevance
    from search_tenant.feedback import simulate_clicks

    tables = simulate(items=400, queries=60, days=5, seed=1)
    catalog, queries = tables["catalog"], tables["queries"]
    rng = np.random.default_rng(0)
    logs: dict[str, list[dict]] = {"good": [], "reversed": []}
    for _, q in queries.drop_duplicates("query").iterrows():
        rel = true_relevance(q, catalog)
        best = catalog["item_id"].to_numpy()[np.argsort(-(rel + rng.normal(0, 0.3, len(rel))), kind="stable")[:10]]
        for shown in range(8):
            for name, items in (("good", best), ("reversed", best[::-1])):
                logs[name] += [{"request_id": f"{name}-{q['query_id']}-{shown}", "row": 0, "logged_at": T0,
                                "query": q["query"], "position": pos, "item_id": item}
                               for pos, item in enumerate(items, 1)]
    result = {}
    for name, rows in logs.items():
        served = pd.DataFrame(rows)
        clicks = validate_feedback(simulate_clicks(served, catalog, queries, eta=1.0, seed=1,
                                                   now=T0 + timedelta(hours=1)))
        assert (clicks["at"] <= T0 + timedelta(hours=1)).all()
        joined = served.merge(clicks[["request_id", "row", "item_id", "clicked"]], on=["request_id", "row", "item_id"])
        result[name] = {"ipw": click_quality(joined, [10], 1.0, THRESHOLDS),
                        "raw": click_quality(joined, [10], 0.0, THRESHOLDS)}  # eta 0: no position correction
    good, rev = result["good"], result["reversed"]
    print({k: {m: round(v[m]["ndcg_at_10"], 3) for m in v} for k, v in result.items()})
    assert good["ipw"]["ndcg_at_10"] > rev["ipw"]["ndcg_at_10"] + 0.15
    assert good["ipw"]["ndcg_at_10"] > 0.6  # the tenant's gate minimum: a good ranker does not alert
    assert good["ipw"]["click_mrr"] > rev["ipw"]["click_mrr"] and good["ipw"]["ctr_at_10"] > rev["ipw"]["ctr_at_10"]
    assert rev["raw"]["ndcg_at_10"] > rev["ipw"]["ndcg_at_10"] + 0.1  # position bias flatters the reversed order


# --- bad feedback -------------------------------------------------------------------------------------


GOOD = {"request_id": ["r1", "r1"], "item_id": [1, 2], "position": [1, 2], "clicked": [1, 0],
        "at": [T0, T0]}


@pytest.mark.parametrize("change, message", [
    ({"clicked": None}, r"missing column\(s\) \['clicked'\]"),
    ({"clicked": [2, 0]}, r"'clicked' must be 0 or 1, got \[2\]"),
    ({"position": [0, 1]}, r"'position' must be >= 1, got \[0\]"),
    ({"position": [1.5, 2]}, r"'position' must hold integers"),
    ({"request_id": [17, 18]}, r"'request_id' must hold strings"),
    ({"item_id": [1, None]}, r"missing values in \{'item_id': 1\}"),
    ({"at": ["yesterday", "today"]}, r"'at' must hold timestamps"),
    ({"row": [-1, 0]}, r"'row' must be >= 0"),
])
def test_bad_feedback_gets_a_clear_error(tmp_path, change, message):
    table = dict(GOOD)
    for key, value in change.items():
        if value is None:
            table.pop(key)
        else:
            table[key] = value
    with pytest.raises(FeedbackError, match=message):
        write_feedback(Workspace(tmp_path), "search", pd.DataFrame(table))
    assert not feedback_dir(Workspace(tmp_path), "search").exists()


def test_feedback_is_canonicalised():
    df = validate_feedback(pd.DataFrame(GOOD | {"clicked": [True, False], "extra": [1, 2],
                                                "at": ["2026-03-01T12:00:00", "2026-03-01T13:00:00+01:00"]}))
    assert list(df.columns) == ["request_id", "row", "item_id", "position", "clicked", "at"]
    assert df["row"].tolist() == [0, 0] and df["clicked"].tolist() == [1, 0]
    assert str(df["at"].dt.tz) == "UTC" and df["at"].iloc[0] == df["at"].iloc[1]


def test_bad_feedback_file_fails_the_quality_job_naming_the_file(tmp_path):
    from typer.testing import CliRunner

    from mlplatform.cli import app

    ws = Workspace(tmp_path)
    _log(ws, {"a": ("q", [1, 2])})
    folder = feedback_dir(ws, "search")
    folder.mkdir(parents=True)
    pd.DataFrame({"request_id": ["a"], "item_id": [1], "position": [1], "clicked": [7], "at": [T0]}).to_parquet(
        folder / "part-bad.parquet")
    with pytest.raises(FeedbackError, match=r"part-bad\.parquet: column 'clicked' must be 0 or 1, got \[7\]"):
        read_feedback(ws, "search")
    result = CliRunner().invoke(app, ["quality", str(SEARCH_TENANT), "--home", str(tmp_path)])
    assert result.exit_code == 2, result.output  # an expected error: the message alone, no traceback
    assert "bad feedback" in result.output and "part-bad.parquet" in result.output and "clicked" in result.output

    (folder / "part-bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(FeedbackError, match="cannot be read as parquet"):
        read_feedback(ws, "search")
    (folder / "part-bad.parquet").unlink()
    write_feedback(ws, "search", pd.DataFrame({"request_id": ["a"], "item_id": ["1"], "position": [1],
                                               "clicked": [1], "at": [T0]}))
    cfg = load_tenant(SEARCH_TENANT)
    with pytest.raises(FeedbackError, match="item_id values are .* but the logged item ids are integers"):
        task_for(cfg).quality_job(cfg, ws)


def test_quality_decay_rule_uses_the_tenants_primary_metric(tmp_path):
    """The search tenant's rule file alerts on click NDCG@10 below its gate minimum (0.6), not on
    PR-AUC; promtool evaluates it."""
    import subprocess

    import yaml

    from mlplatform.monitoring.rules import render_rules
    from mlplatform.verify.promtool import find_promtool

    from tests.conftest import require

    path = render_rules(SEARCH_TENANT, tmp_path)
    decay = next(r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]
                 if r.get("alert") == "MLPlatformModelQualityDecay")
    assert 'metric="ndcg_at_10"' in decay["expr"] and decay["expr"].endswith("< 0.6")
    promtool = find_promtool()
    require(promtool, "promtool not found (Debian/Ubuntu: apt-get install prometheus)")
    series = 'mlplatform_model_quality{{tenant="search",model="search",version="{v}",metric="{m}"}}'
    spec = {"rule_files": [path.name], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": series.format(v="1", m="ndcg_at_10"), "values": "0.45x40"},
                         {"series": series.format(v="2", m="ndcg_at_10"), "values": "0.85x40"},
                         {"series": series.format(v="2", m="click_mrr"), "values": "0.1x40"}],
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": "MLPlatformModelQualityDecay", "exp_alerts": []},
            {"eval_time": "35m", "alertname": "MLPlatformModelQualityDecay", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "tenant": "search", "action": "retrain", "model": "search",
                               "version": "1"},
                "exp_annotations": {
                    "summary": "search: ndcg_at_10 on delayed labels fell to 0.45 (gate minimum 0.6)",
                    "runbook_url": "https://github.com/mlplatform/mlplatform/blob/main/docs/runbooks.md"
                                   "#mlplatformmodelqualitydecay"}}]}]}]}
    (tmp_path / "search.test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = subprocess.run([promtool, "test", "rules", "search.test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the real predictor, simulated users, the quality job and the exporter ---------------------------


@pytest.mark.slow
def test_served_lists_clicked_and_scored(trained_search, tmp_path, stop_after):  # noqa: F811
    from kserve.protocol.infer_type import InferInput, InferRequest
    from starlette.testclient import TestClient

    from mlplatform.data.ingest import load_table
    from mlplatform.loop_ranking import quality_round
    from mlplatform.monitoring.webhook import create_app
    from mlplatform.serving.ranking_predictor import RankingPredictor

    cfg = load_tenant(trained_search.tenant_file)
    trained = Workspace.from_env(trained_search.home)
    ws = Workspace(tmp_path / "home")  # this test's logs and feedback; the session's data and model
    ws.raw_dir(cfg.name).parent.mkdir(parents=True)
    ws.raw_dir(cfg.name).symlink_to(trained.raw_dir(cfg.name))

    with isolated_tracking_env():
        predictor = RankingPredictor(cfg, trained)
        predictor.load()
    stop_after(predictor)
    predictor.log.close()
    predictor.log = RankingLog(ws, cfg.name, "stable", flush_seconds=60)
    texts = load_table(cfg, trained, "queries")["query"].drop_duplicates().sample(30, random_state=0).tolist()
    served = 0
    for shown in range(8):
        for i, text in enumerate(texts):
            resp = predictor.predict({"query": text}, headers={"x-request-id": f"req-{shown}-{i}"})
            assert resp["request_id"] == f"req-{shown}-{i}"
            ids = [r["item_id"] for r in resp["predictions"][0]["results"]]
            # a worse ranker on the same traffic: the model's list, reversed
            predictor.log.record(f"rev-{shown}-{i}", "reversed", [(text, ids[::-1], list(range(len(ids))))])
            served += 1
    v2 = InferRequest(model_name=cfg.name, request_id="v2-1",
                      infer_inputs=[InferInput("query", [1], "BYTES", data=[texts[0]])])
    assert predictor.predict(v2, headers={}).id == "v2-1"
    batch = predictor.predict({"instances": [{"query": texts[1], "n": 3}, {"query": texts[2], "n": 2}]})
    predictor.log.close()

    log = read_predictions(ws, cfg.name, "stable")
    mine = log[log["model_version"] == predictor.model_version]
    assert mine[["request_id", "row"]].drop_duplicates().shape[0] == served + 1 + 2
    first = mine[mine["request_id"] == "req-0-0"].sort_values("position")
    assert first["position"].tolist() == list(range(1, cfg.ranking.top_n + 1)) and (first["query"] == texts[0]).all()
    assert first["score"].is_monotonic_decreasing
    assert mine.loc[mine["request_id"] == batch["request_id"], "row"].tolist() == [0, 0, 0, 1, 1]

    out = quality_round(load_tenant(trained_search.tenant_file), ws, seed=1)  # the loop's round
    assert out["feedback"]["lists"] == 2 * served + 3 and out["feedback"]["clicks"] > 0
    rec = json.loads(quality_file(ws, cfg.name).read_text())
    model, rev = rec["versions"][predictor.model_version], rec["versions"]["reversed"]
    print(f"click NDCG@10: model {model['ndcg_at_10']:.3f}, reversed {rev['ndcg_at_10']:.3f}; "
          f"click MRR {model['click_mrr']:.3f} vs {rev['click_mrr']:.3f}; CTR@10 {model['ctr_at_10']:.3f} "
          f"vs {rev['ctr_at_10']:.3f}; lists {model['labelled_rows']:.0f}")
    assert model["ndcg_at_10"] > rev["ndcg_at_10"] + 0.1
    assert model["ndcg_at_10"] > cfg.metrics.gates.minimum["ndcg_at_10"]
    assert quality_round(cfg, ws, seed=2)["feedback"]["lists"] == 0  # every list has its feedback

    metrics = TestClient(create_app(ws)).get("/metrics").text
    line = next(line for line in metrics.splitlines() if line.startswith("mlplatform_model_quality{")
                and 'metric="ndcg_at_10"' in line and f'version="{predictor.model_version}"' in line)
    assert 'tenant="search"' in line and float(line.rsplit(" ", 1)[1]) == pytest.approx(model["ndcg_at_10"])
