"""The validation gate: run the tenant's suite on a batch; a failing batch stops the pipeline.

Results are saved as Great Expectations Data Docs (HTML) under the tenant's reports folder and
summarised in a small JSON-friendly `ValidationResult`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.validation.suite import build_suite, build_table_suite, with_group_sizes

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no phoning home, ever


@dataclass
class ValidationResult:
    success: bool
    report: str  # path of the HTML report
    rows: int
    evaluated: int
    failed: list[str] = field(default_factory=list)  # one line per failed expectation

    def to_dict(self) -> dict:
        return asdict(self)

    def message(self) -> str:
        if self.success:
            return f"validation passed: {self.evaluated} expectations on {self.rows} rows"
        lines = [f"validation FAILED: {len(self.failed)} of {self.evaluated} expectations on {self.rows} rows"]
        lines += [f"  - {f}" for f in self.failed]
        lines.append(f"  report: {self.report}")
        return "\n".join(lines)


class ValidationFailed(RuntimeError):
    def __init__(self, result: ValidationResult):
        super().__init__(result.message())
        self.result = result


def _describe(res) -> str:
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in {"batch_id", "result_format"}}
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    if len(args) > 160:
        args = args[:157] + "..."
    detail = ""
    if res.exception_info and res.exception_info.get("raised_exception"):
        detail = ": " + str(res.exception_info.get("exception_message", "")).splitlines()[0][:160]
    elif res.result:
        r = res.result
        if r.get("unexpected_count"):
            detail = f": {r['unexpected_count']} unexpected ({r.get('unexpected_percent', 0):.2f}%)"
            if r.get("partial_unexpected_list"):
                detail += f", e.g. {r['partial_unexpected_list'][:3]}"
        elif "observed_value" in r:
            detail = f": observed {r['observed_value']}"
    return f"{cfg.type}({args}){detail}"


def as_naive_utc(df: pd.DataFrame) -> pd.DataFrame:
    """GE 1.24 matches dtypes by name and has none for tz-aware columns; compare those as naive UTC."""
    tz_cols = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    if not tz_cols:
        return df
    out = df.copy(deep=False)
    for c in tz_cols:
        out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def reference_values(cfg: TenantConfig, df: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict[str, list]:
    """The value sets `values_in` expectations compare with ('table.column' -> unique values)."""
    frames = {"main": df, **tables}
    wanted = set(cfg.data.expectations.values_in.values())
    wanted |= {ref for t in cfg.data.tables.values() for ref in t.expectations.values_in.values()}
    out = {}
    for ref in wanted:
        table, _, column = ref.partition(".")
        if table in frames and column in frames[table].columns:
            out[ref] = pd.unique(frames[table][column].dropna()).tolist()
        elif table in frames:  # the batch lost the column: its own checks fail, and nothing can be "in" it
            out[ref] = []
    return out


def validate(cfg: TenantConfig, df: pd.DataFrame, reports_dir: Path,
             tables: dict[str, pd.DataFrame] | None = None) -> ValidationResult:
    """Validate the main table and each auxiliary table (data.tables) of a batch; all must pass."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    tables = tables or {}
    missing = [t for t in cfg.data.tables if t not in tables]
    if missing:
        raise ValueError(f"validate: tables {missing} declared in data.tables were not passed")
    reference = reference_values(cfg, df, tables)

    # A file context gives real Data Docs. Each pipeline run has its own folder, so earlier reports are
    # kept; a retry of the same run replaces its own.
    shutil.rmtree(reports_dir, ignore_errors=True)
    reports_dir.mkdir(parents=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(reports_dir))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas(cfg.name)
    suite = ctx.suites.add(build_suite(cfg, reference))
    batches = [(suite, "raw", with_group_sizes(df, cfg.data.expectations), "")]
    for name, spec in cfg.data.tables.items():
        batches.append((ctx.suites.add(build_table_suite(cfg, name, reference)), name,
                        with_group_sizes(tables[name], spec.expectations), f"table {name}: "))
    success, evaluated, failed = True, 0, []
    for table_suite, asset, frame, prefix in batches:
        batch_def = source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe("whole")
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=table_suite.name, data=batch_def, suite=table_suite))
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=f"{table_suite.name}_gate",
                validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format="SUMMARY",
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": as_naive_utc(frame)})
        result = next(iter(run.run_results.values()))
        success &= bool(run.success)
        evaluated += len(result.results)
        failed += [prefix + _describe(r) for r in result.results if not r.success]
    return ValidationResult(
        success=success,
        report=str(_latest_report(reports_dir, suite.name)),
        rows=len(df),
        evaluated=evaluated,
        failed=failed,
    )


def _latest_report(reports_dir: Path, suite_name: str) -> Path:
    site = reports_dir / "gx" / "uncommitted" / "data_docs" / "local_site"
    pages = sorted((site / "validations" / suite_name).rglob("*.html"), key=lambda p: p.stat().st_mtime)
    return pages[-1] if pages else site / "index.html"
