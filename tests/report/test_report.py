"""The design review built from a small seeded run (the session's trained workspaces): its figures
are the records' figures, its plots are PNG files, every timing names its source, and the page
renders offline in headless Chromium without console errors.

CI time: one report per tenant (model reload, bootstrap, plots, Helm render of the rules) plus one
Chromium screenshot; the trained workspaces are the session's shared fixtures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlplatform.config import load_tenant
from mlplatform.registry.mlflow_registry import isolated_tracking_env
from mlplatform.report.build import build
from mlplatform.report.plugin import format_metric
from mlplatform.workspace import Workspace
from tests.conftest import REPO, require

BENCH = REPO / "bench" / "results.json"
ARTIFACTS = REPO / "test-artifacts"  # files a run leaves for people to look at (the page's screenshot)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report(trained, out: Path, bench: Path | None):
    with isolated_tracking_env():
        cfg = load_tenant(trained.tenant_file)
        ws = Workspace(trained.home)
        return cfg, ws, build(cfg, ws, trained.run_id, out, out / "report.html", bench_path=bench)


def _mlflow_metrics(ws: Workspace, run_id: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    return dict(MlflowClient(ws.mlflow_uri).get_run(run_id).data.metrics)


def _check_common(report, out: Path, cfg, ws, trained) -> str:
    md = (out / f"{cfg.name}.md").read_text()
    logged = _mlflow_metrics(ws, trained.records["train"]["run_id"])
    # every metric the page shows is the MLflow run's figure, shown rounded to 4 places
    assert report.metrics, "the report shows no MLflow metric"
    for key, value in report.metrics.items():
        assert logged[key] == value, key
        assert format_metric(key, value) in md, f"{key} {format_metric(key, value)} not shown"
    primary = cfg.metrics.primary if cfg.metrics.primary in logged else "ndcg_at_10"
    assert primary in report.metrics
    # baselines logged as baseline.<name>.<metric> are all shown; none: the page says so
    baselines = {k: v for k, v in logged.items() if k.startswith("baseline.")}
    for key, value in baselines.items():
        assert key in report.metrics and format_metric(key, value) in md
    # each gate minimum beside the model's, the baselines' and chance's figures of this run
    for metric, minimum in cfg.metrics.gates.minimum.items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {metric} | ≥ {minimum:g} |"))
        assert f"model {logged[metric]:.4f}" in row
        for key, value in baselines.items():
            if key.endswith(f".{metric}"):
                assert f"baseline: {key.split('.')[1]} {value:.4f}" in row
    # the rebuilt validation predictions give the logged figure back (the plots are over them)
    assert "reproduces the logged figure" in md and "DOES NOT" not in md
    assert re.search(r"\[0\.\d{4}, [01]\.\d{4}\]", md), "no bootstrap interval shown"
    # every plot exists beside the page and is a PNG that opens
    from PIL import Image

    assert report.figures()
    for fig in report.figures():
        path = out / fig.file
        assert path.read_bytes()[:8] == PNG_MAGIC, fig.file
        with Image.open(path) as im:
            im.verify()
        assert f"({fig.file})" in md
    # every timing names its source, and the page shows it
    for t in report.timings():
        assert re.match(r"(bench run \S+ on .+|in-process measurement by this report, \d+ requests, .+)", t.source), t
        assert t.source.replace("|", "\\|") in md
    # GE results rendered: one row per expectation the validate step evaluated
    assert md.count("| pass |") + md.count("| FAIL |") == trained.records["validate"]["evaluated"]
    # the raw Data Docs linked, relative to the page
    import os

    docs = trained.records["validate"]["report"]
    assert f"]({os.path.relpath(docs, out)})" in md
    # provenance
    p = report.provenance
    assert p.commit and p.commit != "-" and p.seed == str(cfg.data.generator_args["seed"])
    assert f"commit `{p.commit}`" in md and p.machine in md
    # self-contained HTML: every image inline, nothing fetched
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert f'href="{Path(docs).resolve().as_uri()}"' in page
    assert page.count("data:image/png;base64,") == len(report.figures())
    return md


@pytest.mark.slow
def test_fraud_report_figures_come_from_the_records(trained_fraud, tmp_path):
    cfg, ws, report = _report(trained_fraud, tmp_path, BENCH)
    md = _check_common(report, tmp_path, cfg, ws, trained_fraud)
    bench = json.loads(BENCH.read_text())
    # serving timings and capacity from the bench's serving section, which names its run
    assert report.timings() and all(t.source.startswith(f"bench run {bench['section_dates']['serving']}")
                                    for t in report.timings())
    cpu = bench["serving"]["kserve"]["fixed_rate"]["200"]["server_cpu_ms_per_request"]
    assert f"{cpu:.3f} CPU ms per request" in md
    assert "| 10000 |" in md and "| 1000 |" in md
    assert re.search(r"\| missed positives per request .*\| [\d,]+ \| (\d+\.\d\d days|\d+\.\d hours) \|", md)
    # what each baseline chose on the training rows, as training logged it (baselines.json)
    from mlflow.tracking import MlflowClient

    path = MlflowClient(ws.mlflow_uri).download_artifacts(trained_fraud.records["train"]["run_id"], "baselines.json",
                                                          str(tmp_path))
    logged = json.loads(Path(path).read_text())["baselines"]
    rules = next(b for b in logged if b["name"] == "rules")
    assert rules["status"] == "ok" and rules["chosen"]["rules"]
    for feature, threshold in rules["chosen"]["rules"].items():
        assert f"{feature}: {threshold:.4g}" in md
    # logged bootstrap intervals, shown as training logged them (no recomputation)
    assert "logged by training" in md and "pr_auc.ci_low" in report.metrics


@pytest.mark.slow
def test_fraud_report_without_a_bench_measures_in_process(trained_fraud, tmp_path):
    _, _, report = _report(trained_fraud, tmp_path, None)
    (timing,) = report.timings()
    assert timing.source.startswith("in-process measurement by this report") and timing.p50_ms > 0


@pytest.mark.slow
def test_search_report_figures_come_from_the_records(trained_search, tmp_path):
    cfg, ws, report = _report(trained_search, tmp_path, BENCH)
    md = _check_common(report, tmp_path, cfg, ws, trained_search)
    assert "ranker" in md and "recall@" in md
    assert re.search(r"\| NDCG@10 per query .*\| [\d,]+ \| (\d+\.\d\d days|\d+\.\d hours) \|", md)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_report_page_renders_offline_in_headless_chromium(trained_fraud, tmp_path):
    browser = _chromium()
    require(browser is not None, "chromium is not installed (apt-get install chromium)")
    _report(trained_fraud, tmp_path, BENCH)
    page = tmp_path / "report.html"
    shot = tmp_path / "report.png"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-extensions", "--no-first-run", "--enable-logging=stderr", "--v=0",
             "--host-resolver-rules=MAP * ~NOTFOUND"]  # any network fetch would fail, and show
    shot_run = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert shot.read_bytes()[:8] == PNG_MAGIC, shot_run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:  # a rendered page, not a blank one
        colours = im.convert("L").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 16, "the screenshot is (nearly) one colour"
    ARTIFACTS.mkdir(exist_ok=True)  # kept after the run (git-ignored): what CI's page looked like
    shutil.copy(shot, ARTIFACTS / "report-fraud.png")
    print(f"screenshot: {ARTIFACTS / 'report-fraud.png'}")
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "Design review: fraud" in dom.stdout and "<img" in dom.stdout, dom.stderr[-2000:]
    console = [line for line in (shot_run.stderr + dom.stderr).splitlines() if "CONSOLE" in line]
    assert not console, console


@pytest.mark.slow
def test_cli_writes_the_page_and_the_markdown_from_a_run_folder(trained_fraud, tmp_path):
    """`mlplatform report fraud --run R --out D`: R's summary.json names the workspace and the
    pipeline run (as the demo writes it), R/tenants/fraud/tenant.yaml the tenant file it used."""
    from typer.testing import CliRunner

    from mlplatform.cli import app

    run = tmp_path / "run"
    (run / "tenants" / "fraud").mkdir(parents=True)
    shutil.copy(trained_fraud.tenant_file, run / "tenants" / "fraud" / "tenant.yaml")
    (run / "summary.json").write_text(json.dumps({"home": str(trained_fraud.home), "tenants": {
        "fraud": {"run_id": trained_fraud.run_id, "serving": {"smoke": {"requests": 7, "errors": 0, "skew": {
            "rows": 50, "at": "2026-03-02T00:00:01+00:00", "model_version": "1", "max_abs_score_diff": 0.0,
            "mismatches": 0, "tolerance": 1e-6}}}}}}))
    # `make demo-loop` records in run folders of their own beside it: the fraud one is found
    steps = [{"elapsed_s": 0.0, "event": "champion in service"}, {"elapsed_s": 41.5, "event": "drift injected"},
             {"elapsed_s": 52.0, "event": "alert firing"}, {"elapsed_s": 230.0, "event": "rollout finished"}]
    for folder, tenant in (("loop-fraud", "fraud"), ("loop-search", "search")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "loop.json").write_text(json.dumps({
            "tenant": tenant, "run_dir": str(tmp_path / folder), "steps": steps, "seconds": 231.2,
            "decision": {"outcome": "promoted"},
            "stream": {"published": 26_400, "events_applied": 26_390, "events_late": 0, "events_duplicate": 10,
                       "rows_written": 25_000}}))
    with isolated_tracking_env():
        result = CliRunner().invoke(app, ["report", "fraud", "--run", str(run), "--out", str(tmp_path / "docs"),
                                          "--bench", str(BENCH)])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "docs" / "fraud.md").read_text()
    assert (run / "fraud" / "report.html").is_file()
    assert "Demo smoke test (summary.json): 7 requests, 0 errors." in md
    assert "the newest 50 rows scored at 2026-03-02T00:00:01+00:00" in md and "**0 differ**" in md
    assert str(run / "summary.json") in md  # named among the records read
    assert str(tmp_path / "loop-fraud" / "loop.json") in md and "loop-search" not in md
    assert "4 steps in 231.2 s; outcome: promoted" in md
    assert "26,400 payments published, 26,390 applied by the worker, 0 late, 10 duplicate" in md
    assert (tmp_path / "docs" / "fraud_loop.png").read_bytes()[:8] == PNG_MAGIC
    # no run there: a clear error, not a traceback
    missing = CliRunner().invoke(app, ["report", "fraud", "--run", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "run `make demo` first" in " ".join(missing.output.split())
