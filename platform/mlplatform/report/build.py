"""records -> ReportData -> <md_dir>/<tenant>.md with its PNGs, and one self-contained HTML page."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mlplatform.config import TenantConfig
from mlplatform.report import render, sections
from mlplatform.report.model import Provenance, ReportData
from mlplatform.report.plugin import Context
from mlplatform.report.records import collect, cpu_model, newest_loop
from mlplatform.workspace import Workspace


def build(cfg: TenantConfig, ws: Workspace, run_id: str, md_dir: Path, html_path: Path | None = None, *,
          summary_path: Path | None = None, bench_path: Path | None = None,
          loop_path: Path | None = None) -> ReportData:
    """Write the tenant's report from run `run_id`'s records; returns what was written."""
    from mlplatform.tasks import task_for

    rec = collect(cfg, ws, run_id, summary_path=summary_path, bench_path=bench_path, loop_path=loop_path)
    md_dir = Path(md_dir)
    md_dir.mkdir(parents=True, exist_ok=True)
    for old in md_dir.glob(f"{cfg.name}_*.png"):  # plots of an earlier report that may not be drawn now
        old.unlink()
    task = task_for(cfg).report_sections()
    ctx = Context(rec=rec, out_dir=md_dir)
    task.evaluate(ctx)
    parts = [sections.requirements(ctx, task), task.metrics(ctx), sections.data(ctx), sections.features(ctx),
             task.model(ctx), sections.serving(ctx, task), sections.monitoring(ctx),
             sections.experiment(ctx, task.experiment(ctx))]
    for i, s in enumerate(parts, 1):
        s.title = f"{i}. {s.title}"
    seed = cfg.data.generator_args.get("seed", "-")
    report = ReportData(
        provenance=Provenance(
            tenant=cfg.name, task=cfg.task,
            commit=str(rec.steps["train"].get("code_version") or rec.tags.get("code_version") or "-"),
            seed=str(seed), machine=cpu_model(), date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            run_id=run_id, mlflow_run_id=rec.mlflow_run_id, model=f"{cfg.name} v{rec.model_version}",
            sources=rec.sources),
        sections=parts, metrics=ctx.shown)
    (md_dir / f"{cfg.name}.md").write_text(render.markdown(report, md_dir))
    if html_path is not None:
        html_path = Path(html_path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render.html_page(report, md_dir))
    return report



def from_run_dir(tenant: str, run_dir: Path, md_dir: Path, bench_path: Path | None = None,
                 tenant_file: Path | None = None, loop_path: Path | None = None) -> tuple[ReportData, Path]:
    """The report of `tenant` in a demo run folder (its summary.json names the workspace and the
    pipeline run); the HTML goes to <run_dir>/<tenant>/report.html. The loop's record: `loop_path`,
    else the newest loop.json of this tenant among the run folders beside `run_dir`. Returns
    (report, html path)."""
    import json

    from mlplatform.config import load_tenant
    from mlplatform.errors import UserError
    from mlplatform.tenants import apply_env_overrides, resolve_tenant_path

    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{summary_path} does not exist: run `make demo` first, or pass --run")
    summary = json.loads(summary_path.read_text())
    given = Path(tenant)
    name = load_tenant(given).name if given.suffix in (".yaml", ".yml") and given.is_file() else tenant
    entry = summary.get("tenants", {}).get(name)
    if entry is None:
        raise UserError(f"{summary_path} has no tenant {name!r} (it has {sorted(summary.get('tenants', {}))})")
    # the tenant file the run used: the demo's effective copy when it wrote one
    used = run_dir / "tenants" / name / "tenant.yaml"
    path = tenant_file or (used if used.is_file() else resolve_tenant_path(tenant))
    cfg = apply_env_overrides(load_tenant(path))
    html_path = run_dir / name / "report.html"
    report = build(cfg, Workspace(Path(summary["home"])), entry["run_id"], md_dir, html_path,
                   summary_path=summary_path, bench_path=bench_path,
                   loop_path=loop_path or newest_loop(run_dir.resolve().parent, name))
    return report, html_path
