"""`make demo`: the embedded platform end to end, for each tenant.

pipeline (kfp.local: ingest -> validate -> features -> train -> register) -> serve the model by
alias (KServe ModelServer) -> smoke test over HTTP -> runs/<stamp>/summary.json (+ runs/latest).
Library and component output goes to runs/<stamp>/<tenant>-pipeline.log; the terminal shows
progress, driven by the step records the components write.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlplatform.config import load_tenant
from mlplatform.identity.access import Onboarding
from mlplatform.processes import free_port, running
from mlplatform.steps import STEPS
from mlplatform.tenants import apply_env_overrides
from mlplatform.workspace import Workspace

# embedded: SQLite and files in the workspace (zero set-up). services: the cluster's hand-offs on this
# machine, a real `mlflow server` on PostgreSQL, Feast's SQL registry and Redis (mlplatform.services)
PROFILES = ("embedded", "services")


def effective_tenant_file(tenant_file: Path, data_args: dict[str, Any], out_dir: Path) -> Path:
    """The tenant file with generator arguments overridden (e.g. a smaller data size), written next
    to the run's outputs; relative data paths are made absolute so the copy still finds its data.

    Only arguments the tenant file already gives its generator are overridden: one demo runs
    several tenants whose generators take different arguments (`customers=` means nothing to the
    search catalog); `days=` reaches every tenant that has it."""
    raw = yaml.safe_load(tenant_file.read_text())
    given = raw["data"].get("generator_args") or {}
    data_args = {k: v for k, v in data_args.items() if k in given}
    if not data_args:
        return tenant_file
    raw["data"]["generator_args"] = given | data_args
    if raw["data"].get("path") and not Path(raw["data"]["path"]).is_absolute():
        raw["data"]["path"] = str((tenant_file.parent / raw["data"]["path"]).resolve())
    path = out_dir / "tenants" / raw["name"] / "tenant.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """Send this process's (and its children's) stdout/stderr to a log file, at the fd level."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_pipeline(console: Console, tenant_file: Path, ws: Workspace, run_id: str, run_dir: Path,
                 wall: dict[str, float] | None = None) -> dict:
    """Run train_deploy with kfp.local, showing one progress line per step. Raises on failure.
    `wall` receives each step's wall time as shown (KFP task start-up included)."""
    from mlplatform_pipelines.local import run_train_deploy

    cfg = load_tenant(tenant_file)
    log_path = run_dir / f"{cfg.name}-pipeline.log"
    done = threading.Event()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        tasks = {s: progress.add_task(f"[dim]{cfg.name}: {s}", total=1, start=False) for s in STEPS}

        def watch() -> None:  # a step is finished when its record appears in the workspace
            current, since = 0, time.monotonic()
            progress.start_task(tasks[STEPS[0]])
            while not done.is_set() and current < len(STEPS):
                if ws.step_file(cfg.name, run_id, STEPS[current]).exists():
                    if wall is not None:
                        wall[STEPS[current]] = round(time.monotonic() - since, 1)
                        since = time.monotonic()
                    progress.update(tasks[STEPS[current]], completed=1,
                                    description=f"[green]{cfg.name}: {STEPS[current]}")
                    current += 1
                    if current < len(STEPS):
                        progress.start_task(tasks[STEPS[current]])
                        progress.update(tasks[STEPS[current]], description=f"{cfg.name}: {STEPS[current]}")
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            with output_to(log_path):
                return run_train_deploy(tenant_file, ws.home, run_id, run_dir / "kfp")
        finally:
            done.set()
            watcher.join(timeout=2)


@contextlib.contextmanager
def model_server(tenant_file: Path, ws: Workspace, log_path: Path, timeout: float = 120) -> Iterator[str]:
    """`mlplatform serve` in a subprocess; yields its base URL once /v2/health/ready answers 200."""
    port = free_port()
    env = os.environ | {"MLPLATFORM_HOME": str(ws.home)}
    cmd = [sys.executable, "-m", "mlplatform.cli", "serve", str(tenant_file), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(cmd, f"{base}/v2/health/ready", log_path, timeout=timeout, name="model server", env=env,
                 append=True):
        yield base


def skew_line(skew: dict[str, Any]) -> str:
    if "error" in skew:
        return f"not measured: {skew['error']}"
    return (f"{skew['mismatches']} of {skew['rows']} scores differ online vs. offline "
            f"(max |diff| {skew['max_abs_score_diff']:.2g}, v{skew['model_version']})")


def tenant_summary(ws: Workspace, name: str, run_id: str, smoke: dict) -> dict:
    rec = {s: ws.read_step(name, run_id, s) for s in STEPS}
    return {
        "run_id": run_id,
        "validation": {"success": rec["validate"]["success"], "report": rec["validate"]["report"],
                       "expectations": rec["validate"]["evaluated"]},
        "data": {"rows": rec["ingest"]["rows"], "snapshot": rec["ingest"]["sha256"]},
        "features": {"tables": rec["features"]["tables"]},
        "training": {"rows": rec["train"]["rows"], "seconds": rec["train"]["seconds"],
                     "mlflow_run_id": rec["train"]["run_id"]},
        "model": {"name": rec["register"]["name"], "version": rec["register"]["version"],
                  "aliases": rec["register"]["aliases"], "metrics": rec["train"]["metrics"],
                  "gate": rec["register"]["decision"]},
        "serving": {"smoke": smoke},
        "stages": {s: rec[s].get("seconds") for s in STEPS},  # inside each step (without KFP start-up)
    } | ({"retrieval": rec["train"]["retrieval"]} if rec["train"].get("retrieval") else {})  # ranking: recall@K


def new_run_dir(runs: Path, suffix: str = "", point_latest: bool = True) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + suffix
    run_dir = runs / stamp
    run_dir.mkdir(parents=True, exist_ok=False)
    if not point_latest:
        return run_dir
    latest = runs / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(stamp)  # earlier runs are kept; latest points at this one
    return run_dir


def run_demo(tenant_files: list[Path], ws: Workspace, runs: Path, data_args: dict[str, Any],
             console: Console | None = None, profile: str = "embedded") -> dict:
    console = console or Console()
    if profile == "embedded":
        return _run_tenants(tenant_files, ws, new_run_dir(runs), runs, data_args, console, profile)
    from mlplatform import services

    services.require_reachable(services.Services.from_env())  # before anything is written
    run_dir = new_run_dir(runs)
    console.print("services profile: starting mlflow server (basic auth; its backend store in PostgreSQL)")
    auth = services.Auth.create(run_dir)  # the admin password from MLPLATFORM_SERVICES_MLFLOW_ADMIN_PASSWORD
    with services.profile(ws.home, run_dir / "mlflow-server.log", auth=auth) as settings:
        console.print("services profile: " + ", ".join(f"{k}={v}" for k, v in settings.items()), markup=False)
        access = Onboarding(settings[services.TRACKING], auth.admin, services.redis_admin(),
                            registry_admin_url=settings[services.REGISTRY])
        try:
            return _run_tenants(tenant_files, ws, run_dir, runs, data_args, console, profile, access)
        finally:
            access.close()


def _run_tenants(tenant_files: list[Path], ws: Workspace, run_dir: Path, runs: Path, data_args: dict[str, Any],
                 console: Console, profile: str, access: Onboarding | None = None) -> dict:
    """`access`: run each tenant's pipeline as its trainer and its server as its predictor."""
    from mlplatform.tasks import task_for

    started = time.monotonic()
    summary: dict[str, Any] = {"started": datetime.now(timezone.utc).isoformat(), "home": str(ws.home),
                               "run_dir": str(run_dir), "profile": profile, "tenants": {}}
    for original in tenant_files:
        tenant_file = effective_tenant_file(original, data_args, run_dir)
        cfg = apply_env_overrides(load_tenant(tenant_file))  # the smoke test reads the same stores as the steps
        run_id = f"demo-{run_dir.name.lower()}"
        console.rule(f"[bold]{cfg.name}")
        wall: dict[str, float] = {}
        with access.trainer(cfg.name) if access else contextlib.nullcontext():
            run_pipeline(console, tenant_file, ws, run_id, run_dir, wall)
        with (access.predictor(cfg.name) if access else contextlib.nullcontext(),
              console.status(f"{cfg.name}: serving alias '{escape(cfg.serving.model_alias)}' and sending a smoke batch")):
            t0 = time.monotonic()
            with model_server(tenant_file, ws, run_dir / f"{cfg.name}-server.log") as base:
                smoke = task_for(cfg).smoke_test(cfg, ws, base, cfg.serving.smoke_requests)
            smoke["seconds"] = round(time.monotonic() - t0, 2)
        summary["tenants"][cfg.name] = tenant_summary(ws, cfg.name, run_id, smoke) | {
            "stages_wall": wall | {"serve_and_smoke": smoke["seconds"]}}
        console.print(f"[green]✓[/] {cfg.name}: served {smoke['requests']} requests, {smoke['errors']} errors")
        if "skew" in smoke:
            console.print(f"  {cfg.name}: training/serving skew check: {escape(skew_line(smoke['skew']))}")
    summary["seconds"] = round(time.monotonic() - started, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    console.print(summary_table(summary))
    write_reports(summary, run_dir, console)
    where = (f"mlflow ui --backend-store-uri {ws.mlflow_uri}" if profile == "embedded"
             else f"mlflow server --backend-store-uri {services_store()}")
    console.print(f"summary: {runs / 'latest' / 'summary.json'}   MLflow: {where}", markup=False)
    return summary


def write_reports(summary: dict, run_dir: Path, console: Console) -> None:
    """Each tenant's design review from this run's records (mlplatform.report), beside its logs:
    <run>/<tenant>/report.html and report.md. `mlplatform report TENANT` writes docs/design/ from it.
    A report that cannot be built is said, and kept in summary.json, without undoing the run."""
    from mlplatform.report.build import from_run_dir

    bench = Path("bench/results.json")
    for name in summary["tenants"]:
        try:
            # library output (MLflow's download bars, warnings) to a log beside the pipeline's, as for the steps
            with open(run_dir / f"{name}-report.log", "w") as log, \
                    contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                _, html_path = from_run_dir(name, run_dir, run_dir / name, bench if bench.is_file() else None)
            summary["tenants"][name]["report"] = str(html_path)
            console.print(f"report: {html_path}", markup=False)
        except Exception as err:  # noqa: BLE001 - the run succeeded; its review failing is reported, not raised
            summary["tenants"][name]["report"] = {"error": f"{type(err).__name__}: {err}"}
            console.print(f"[red]report of {escape(name)} failed:[/] {escape(f'{type(err).__name__}: {err}')}")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def services_store() -> str:
    from mlplatform.services import Services

    return Services.from_env().postgres


def headline_metrics(metrics: dict) -> str:
    keys = [k for k in ("pr_auc", "roc_auc", "ndcg_at_10", "mrr") if k in metrics]
    return " ".join(f"{k} {metrics[k]:.3f}" for k in keys)


def summary_table(summary: dict) -> Table:
    """Fits an 80-column terminal: one row per tenant."""
    table = Table(title=f"mlplatform demo: {summary['seconds']:.0f} s")
    for col in ("tenant", "validation", "rows", "model", "metrics", "smoke errors"):
        table.add_column(col, overflow="fold")
    for name, t in summary["tenants"].items():
        aliases = ",".join(t["model"]["aliases"]) or "no alias"
        table.add_row(name, "passed" if t["validation"]["success"] else "FAILED", str(t["training"]["rows"]),
                      f"v{t['model']['version']} {aliases}", headline_metrics(t["model"]["metrics"]),
                      f"{t['serving']['smoke']['errors']}/{t['serving']['smoke']['requests']}")
    return table
