"""Everything a report may show, read from what the run recorded, and nothing else.

- the step records of the pipeline run (<home>/tenants/<name>/steps/<run_id>/*.json), which name
  the MLflow run and the registered version;
- that MLflow run: params, metrics, tags, and the artifacts training logged (train_record.json,
  feature_importance.json, retrieval.json, the training set it trained on);
- the Great Expectations validation results the validate step stored (gx/uncommitted/validations);
- runs/<run>/summary.json (the demo: smoke test, stage wall times), bench/results.json (timings),
  runs/<run>/loop.json (`make demo-loop`), each when present.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.config import TenantConfig
from mlplatform.workspace import Workspace

# the pipeline's steps (steps.STEPS; not imported: steps imports the task registry, which names us)
STEP_NAMES = ("ingest", "validate", "features", "stage", "train", "register")
BASELINE_PREFIX = "baseline."  # baseline.<name>.<metric>: baselines trained in the same run


@dataclass
class Records:
    cfg: TenantConfig
    ws: Workspace
    run_id: str  # the pipeline run
    steps: dict[str, dict[str, Any]]
    mlflow_run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: dict[str, Any]  # logged JSON artifacts by file name (missing ones absent)
    validation: list[dict[str, Any]]  # GE validation results, one per suite
    summary: dict[str, Any] | None = None  # this tenant's entry of summary.json
    bench: dict[str, Any] | None = None
    bench_path: str | None = None
    loop: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)

    @property
    def model_version(self) -> str:
        return str(self.steps.get("register", {}).get("version", "?"))

    def baselines(self) -> dict[str, dict[str, float]]:
        """baseline name -> metric -> value, from the run's `baseline.<name>.<metric>` metrics."""
        out: dict[str, dict[str, float]] = {}
        for key, value in self.metrics.items():
            if key.startswith(BASELINE_PREFIX) and key.count(".") >= 2:
                name, _, metric = key[len(BASELINE_PREFIX):].partition(".")
                out.setdefault(name, {})[metric] = value
        return out

    def training_set(self):
        """The rows the model was trained and validated on, as logged with its MLflow run."""
        from mlflow.artifacts import download_artifacts

        from mlplatform.training.training_set import ARTIFACT, TrainingSet

        scratch = Path(tempfile.mkdtemp(prefix="mlplatform-report-"))
        folder = download_artifacts(run_id=self.mlflow_run_id, artifact_path=ARTIFACT, dst_path=str(scratch),
                                    tracking_uri=self.ws.mlflow_uri)
        return TrainingSet.load(Path(folder))

    def model(self):
        """(trainer, model) of the registered version, loaded by the trainer that made it."""
        from mlplatform.registry.mlflow_registry import connect
        from mlplatform.training.trainers import resolve_trainer

        connect(self.ws)  # models:/ URIs resolve against the fluent API's tracking URI
        trainer = resolve_trainer(self.tags.get("trainer") or self.params.get("trainer") or self.cfg.model.trainer)
        return trainer, trainer.load(f"models:/{self.cfg.name}/{self.model_version}")


JSON_ARTIFACTS = ("train_record.json", "feature_importance.json", "retrieval.json", "evidence.json",
                  "selection.json", "confidence_intervals.json", "baselines.json")



def shown(path) -> str:
    """A path as a reader of the committed page finds it: relative to the working directory (the
    repository, where `mlplatform report` runs) when inside it, so no machine's home shows."""
    return str(path).replace(str(Path.cwd()) + "/", "")

def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def newest_loop(runs: Path, tenant: str) -> Path | None:
    """The newest `make demo-loop` record of `tenant` among the run folders in `runs` (the loop
    writes runs/<stamp>/loop.json in a folder of its own, beside the demo's), or None."""
    found = []
    for path in Path(runs).glob("*/loop.json"):
        if path.parent.is_symlink():  # runs/latest: the same folder under another name
            continue
        try:
            if json.loads(path.read_text()).get("tenant") == tenant:
                found.append(path)
        except (OSError, json.JSONDecodeError):
            continue  # a loop still writing, or a broken record: not this report's source
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def validation_results(ws: Workspace, tenant: str, run_id: str) -> list[dict[str, Any]]:
    """The GE validation results the validate step stored for this run (one per suite, newest
    first), as GE wrote them: suite name, success, statistics, each expectation's result."""
    root = ws.reports_dir(tenant) / run_id / "gx" / "uncommitted" / "validations"
    out = []
    for path in sorted(root.rglob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = json.loads(path.read_text())
        if "results" in data:
            out.append(data | {"_path": str(path)})
    return out


def collect(cfg: TenantConfig, ws: Workspace, run_id: str, *, summary_path: Path | None = None,
            bench_path: Path | None = None, loop_path: Path | None = None) -> Records:
    """The records of pipeline run `run_id` of tenant `cfg`. Raises FileNotFoundError naming the
    missing record when the run did not get as far as registering a model."""
    from mlflow.artifacts import load_dict
    from mlflow.exceptions import MlflowException

    from mlplatform.registry.mlflow_registry import connect
    steps = {s: ws.read_step(cfg.name, run_id, s) for s in STEP_NAMES if ws.step_file(cfg.name, run_id, s).exists()}
    missing = [s for s in ("ingest", "validate", "train", "register") if s not in steps]
    if missing:
        raise FileNotFoundError(f"run {run_id!r} of {cfg.name!r} has no record of step(s) {missing} in "
                                f"{ws.tenant(cfg.name) / 'steps' / run_id}: a report needs a registered model")
    mlflow_run_id = steps["train"]["run_id"]
    run = connect(ws).get_run(mlflow_run_id)
    artifacts: dict[str, Any] = {}
    for name in JSON_ARTIFACTS:
        try:
            artifacts[name] = load_dict(f"{run.info.artifact_uri.rstrip('/')}/{name}")
        except (MlflowException, OSError, json.JSONDecodeError):
            pass  # not logged by this task / trainer: the section says so
    summary = _read_json(summary_path)
    tenant_summary = (summary or {}).get("tenants", {}).get(cfg.name)
    sources = [f"MLflow run {mlflow_run_id} ({shown(ws.mlflow_uri.split('?')[0])})",
               f"step records {shown(ws.tenant(cfg.name) / 'steps' / run_id)}"]
    for path in (summary_path, bench_path, loop_path):
        if path is not None and path.is_file():
            sources.append(shown(path))
    loop = _read_json(loop_path)
    if loop is not None and loop.get("tenant") != cfg.name:
        loop = None  # a loop of another tenant says nothing about this one
    return Records(cfg=cfg, ws=ws, run_id=run_id, steps=steps, mlflow_run_id=mlflow_run_id,
                   params=dict(run.data.params), metrics=dict(run.data.metrics), tags=dict(run.data.tags),
                   artifacts=artifacts, validation=validation_results(ws, cfg.name, run_id),
                   summary=tenant_summary, bench=_read_json(bench_path),
                   bench_path=str(bench_path) if bench_path else None, loop=loop, sources=sources)


def cpu_model() -> str:
    """This machine's CPU model and core count (provenance of in-process timings)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
