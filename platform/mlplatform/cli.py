"""`mlplatform`: the one command-line entry point. Thin: each command calls a module."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from mlplatform.errors import UserError
from mlplatform.features.stream_cli import stream
from mlplatform.identity.onboard_cli import onboard
from mlplatform.monitoring.quality_cli import quality_job
from mlplatform.report.cli import report
from mlplatform.rollout.cluster_cli import rollout_controller

EXIT_USER_ERROR = 2  # an expected error (bad tenant file, unknown tenant, no model, ...), as for usage errors
EXIT_FAILED = 1  # a command ran and failed (a pipeline, the demo's smoke test, ...)


class CommandFailed(Exception):
    """A command ran and failed for a reason that is not a bug in itself (a pipeline step, the demo):
    the message says where its logs are; the traceback (of the cause) only with --debug."""


class _Cli(TyperGroup):
    """The top-level group: every command runs inside its invoke, so expected errors become one
    clean message here, in one place. `--debug` (read from the parsed options) keeps the traceback."""

    def invoke(self, ctx: typer.Context):
        from mlplatform.identity.secret_files import load_identity

        try:
            load_identity()  # a cluster pod's identity, from its mounted Secret (identity/secret_files.py)
            return super().invoke(ctx)
        except (UserError, CommandFailed) as err:
            if ctx.params.get("debug"):
                raise
            err_console.print(f"[red]error:[/] {escape(str(err))}")
            raise typer.Exit(EXIT_USER_ERROR if isinstance(err, UserError) else EXIT_FAILED) from None


app = typer.Typer(cls=_Cli, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="mlplatform: validate, featurize, train, register, serve and monitor ML tenants.")
tenant_app = typer.Typer(no_args_is_help=True, help="Create tenants.")
pipelines_app = typer.Typer(no_args_is_help=True, help="Compile and check KFP pipelines.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(pipelines_app, name="pipelines")
console = Console()
err_console = Console(stderr=True)

HomeOpt = Annotated[Optional[str], typer.Option("--home", help="workspace folder (default $MLPLATFORM_HOME or ./.mlplatform)")]


def _tenant_path(tenant: str) -> Path:
    from mlplatform.tenants import resolve_tenant_path

    return resolve_tenant_path(tenant)


def _parse_args(pairs: list[str]) -> dict:
    """`key=value` pairs; values parsed as YAML scalars (numbers stay numbers)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of any error, expected or not")] = False,
) -> None:
    """Options for every command; _Cli.invoke reads `debug` from the parsed options."""


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    """A failed check with nothing more to show (a smoke test, stale pipelines): the message, plain text."""
    err_console.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _note(text: str) -> None:
    console.print(f"[yellow]note:[/] {escape(text)}")


@app.command()
def demo(
    tenants: Annotated[Optional[list[str]], typer.Argument(help="tenant names or files (default: fraud search)")] = None,
    home: HomeOpt = None,
    runs: Annotated[Path, typer.Option(help="where run summaries go")] = Path("runs"),
    data_arg: Annotated[list[str], typer.Option("--data-arg", help="override a generator argument, e.g. customers=500 (data size)")] = [],  # noqa: B006
    profile: Annotated[str, typer.Option(help="embedded (SQLite and files) or services (PostgreSQL, Redis, mlflow server)")] = "embedded",
) -> None:
    """Run the embedded platform end to end: pipeline (kfp.local), serving, smoke test, summary."""
    from mlplatform.demo import PROFILES, run_demo
    from mlplatform.workspace import Workspace

    if profile not in PROFILES:
        _fail(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}", EXIT_USER_ERROR)
    files = [_tenant_path(t) for t in (tenants or ["fraud", "search"])]
    try:
        summary = run_demo(files, Workspace.from_env(home), runs, _parse_args(data_arg), console, profile=profile)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - the reason and the logs, which have the rest
        raise CommandFailed(f"{err}\n(logs: {runs / 'latest'})") from err
    if any(t["serving"]["smoke"]["errors"] for t in summary["tenants"].values()):
        _fail("the smoke test saw errors")


@app.command()
def run(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    home: HomeOpt = None,
    run_id: Annotated[Optional[str], typer.Option(help="groups the step records (default: a timestamp)")] = None,
    serve_after: Annotated[bool, typer.Option("--serve", help="serve the model when the pipeline succeeds")] = False,
) -> None:
    """Validate, build features, train and register a tenant (the train_deploy pipeline, via kfp.local)."""
    from datetime import datetime, timezone

    from mlplatform.config import load_tenant
    from mlplatform.demo import new_run_dir, run_pipeline
    from mlplatform.workspace import Workspace

    path = _tenant_path(tenant)
    cfg = load_tenant(path)
    ws = Workspace.from_env(home)
    # its own folder for logs; runs/latest stays with the demo (a retraining run starts from the loop)
    run_dir = new_run_dir(Path("runs"), suffix=f"-{cfg.name}-run", point_latest=False)
    rid = run_id or f"run-{datetime.now(timezone.utc).strftime('%Y%m%dt%H%M%Sz')}"
    try:
        record = run_pipeline(console, path, ws, rid, run_dir)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        raise CommandFailed(f"pipeline failed: {err}\n(log: {run_dir / (cfg.name + '-pipeline.log')})") from err
    console.print_json(json.dumps(record))
    if serve_after:
        serve(str(path), home=home)


@app.command()
def loop(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")] = "fraud",
    home: Annotated[Optional[str], typer.Option(
        "--home", help="workspace with a champion to start from (default: a new one in the run folder)")] = None,
    runs: Annotated[Path, typer.Option(help="where run summaries go")] = Path("runs"),
    data_arg: Annotated[list[str], typer.Option("--data-arg", help="override a generator argument (data size)")] = [],  # noqa: B006
) -> None:
    """The feedback loop live: traffic, injected drift, alert, retraining, shadow, canary, promote or roll back."""
    from mlplatform.loop import run_loop
    from mlplatform.workspace import Workspace

    try:
        result = run_loop(_tenant_path(tenant), Workspace.from_env(home) if home else None, runs,
                          _parse_args(data_arg), console)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        raise CommandFailed(f"{err}\n(logs: {runs / 'latest'})") from err
    console.print(f"decision: {result.get('decision', {}).get('outcome')}  ({result['seconds']:.0f} s)")


@app.command()
def serve(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    home: HomeOpt = None,
    port: Annotated[Optional[int], typer.Option(help="HTTP port (default: serving.port)")] = None,
    alias: Annotated[Optional[str], typer.Option(help="model alias (default: serving.model_alias)")] = None,
    role: Annotated[str, typer.Option(help="stable, canary or shadow (a metrics label)")] = "stable",
) -> None:
    """Serve a tenant's model (KServe ModelServer, V1 and V2 REST, /metrics)."""
    from mlplatform.serving.server import serve_tenant

    serve_tenant(tenant, home=home, port=port, alias=alias, role=role)


app.command("stream")(stream)


@app.command()
def rollout(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    home: HomeOpt = None,
    prometheus: Annotated[str, typer.Option(help="Prometheus URL the checks query")] = "http://127.0.0.1:9090",
    backend: Annotated[str, typer.Option(help="embedded (nginx + model servers) or kubernetes")] = "embedded",
    proxy_port: Annotated[int, typer.Option(help="embedded: the proxy's port")] = 8000,
    stable: Annotated[Optional[str], typer.Option(help="embedded: host:port of a running stable server")] = None,
    metrics_port: Annotated[Optional[int], typer.Option(help="serve mlplatform_shadow_agreement here")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="pause after this long (rerun resumes)")] = None,
) -> None:
    """Roll the challenger out: shadow, canary steps, promote or roll back (resumes a saved rollout)."""
    from mlplatform.config import load_tenant
    from mlplatform.rollout.controller import run_rollout
    from mlplatform.workspace import Workspace

    cfg, ws = load_tenant(_tenant_path(tenant)), Workspace.from_env(home)
    if backend == "kubernetes":
        from mlplatform.rollout.backends import KubernetesBackend

        target = KubernetesBackend(cfg)
    else:
        from mlplatform.rollout.backends import EmbeddedNginxBackend

        target = EmbeddedNginxBackend(cfg, ws, proxy_port, stable_address=stable)
        console.print(f"proxy: {escape(str(target.up()))}")

    def show(state, step) -> None:  # reasons quote PromQL and errors: plain text, not markup
        console.print(f"{step['time']}  {step['action']:<11} {state.phase:<11} {state.weight:>3}%  {step['reason']}",
                      markup=False)

    state = run_rollout(cfg, ws, target, prometheus, on_step=show, metrics_port=metrics_port, max_seconds=max_seconds)
    console.print(f"final: {state.phase} ({state.reason})", markup=False)
    if state.phase == "rolled_back":
        raise typer.Exit(3)


app.command("rollout-controller")(rollout_controller)
app.command("quality-job")(quality_job)
app.command("report")(report)
app.command("onboard")(onboard)


@app.command("train-run")
def train_run(
    mlflow_run_id: Annotated[str, typer.Argument(help="the MLflow run the pipeline's stage step opened")],
    home: HomeOpt = None,
) -> None:
    """Train from a staged MLflow run, into it (the entrypoint of the cluster-mode RayJob)."""
    from mlplatform import steps

    record = steps.train(home or "", mlflow_run_id)
    console.print_json(json.dumps(record, default=str))


@tenant_app.command("new")
def tenant_new(
    name: Annotated[str, typer.Argument(help="tenant name (lowercase, dashes)")],
    from_table: Annotated[Optional[Path], typer.Option("--from-table", help="labelled CSV or parquet file")] = None,
    label: Annotated[Optional[str], typer.Option(help="label column (binary; with --from-table)")] = None,
    from_letor: Annotated[Optional[Path], typer.Option("--from-letor", help="LETOR/SVMlight training file (qid:)")] = None,
    valid: Annotated[Optional[Path], typer.Option(help="LETOR validation file (with --from-letor)")] = None,
    test: Annotated[Optional[Path], typer.Option(help="LETOR test file (with --from-letor)")] = None,
    timestamp: Annotated[Optional[str], typer.Option(help="event time column (default: file order)")] = None,
    timestamp_unit: Annotated[Optional[str], typer.Option(
        help="the time column holds numbers: s, ms, us or ns since --timestamp-origin (ingest converts them)")] = None,
    timestamp_origin: Annotated[Optional[str], typer.Option(
        help="with --timestamp-unit: the instant the numbers count from, e.g. 2024-01-01T00:00:00Z "
             "(default: the Unix epoch)")] = None,
    entity: Annotated[Optional[str], typer.Option(help="entity key column (default: a generated row id)")] = None,
    out_dir: Annotated[Path, typer.Option("--dir", help="where tenants live")] = Path("tenants"),
    overwrite: Annotated[bool, typer.Option(help="replace an existing tenant folder")] = False,
) -> None:
    """Scaffold a tenant: classification from a labelled table, or ranking from LETOR files; then `mlplatform run NAME`."""
    from mlplatform.scaffold import scaffold_letor_tenant, scaffold_tenant

    if (from_table is None) == (from_letor is None):
        raise UserError("give exactly one of --from-table PATH --label COL, or --from-letor TRAIN_FILE")
    if from_table is not None and not label:
        raise UserError("--from-table needs --label COL")
    if from_letor is not None:
        path = scaffold_letor_tenant(name, from_letor, valid, test, out_dir=out_dir, overwrite=overwrite)
    else:
        path = scaffold_tenant(name, from_table, label, timestamp=timestamp, timestamp_unit=timestamp_unit,
                               timestamp_origin=timestamp_origin, entity=entity, out_dir=out_dir,
                               overwrite=overwrite, on_note=_note)
    console.print(f"[green]created[/] {escape(str(path))}\nnext: review it, then [bold]mlplatform run {name}[/]")


@pipelines_app.command("compile")
def pipelines_compile(
    check: Annotated[bool, typer.Option(help="fail if the checked-in IR is stale instead of writing")] = False,
) -> None:
    """Compile every pipeline to pipelines/compiled/*.yaml."""
    from mlplatform_pipelines.compile import compile_all, stale

    if check:
        names = stale()
        if names:
            _fail(f"stale compiled pipelines: {names}; run `make pipelines`")
        console.print("compiled pipelines are current")
        return
    for path in compile_all():
        console.print(f"compiled {escape(str(path))}")


@app.command()
def schema(out: Annotated[Path, typer.Option(help="where to write the JSON schema")] = Path("charts/tenant/values.schema.json")) -> None:
    """Write the tenant file's JSON schema (Helm's values.schema.json for charts/tenant)."""
    from mlplatform.config import tenant_json_schema

    out.write_text(json.dumps(tenant_json_schema(), indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {escape(str(out))}")


@app.command()
def verify(repo: Annotated[Path, typer.Option(help="repository root")] = Path(".")) -> None:
    """Statically verify the cluster path: Helm render, schemas, policy, checkov, promtool."""
    from mlplatform.verify.__main__ import main as verify_main

    raise typer.Exit(verify_main([str(repo)]))


@app.command()
def webhook(host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
            port: Annotated[int, typer.Option(help="port (charts/mlplatform: 9095)")] = 9095, home: HomeOpt = None) -> None:
    """Alertmanager receiver: POST /alerts starts retraining runs (dedup, cool-down); GET /retrains, /tenants, /metrics."""
    from mlplatform.monitoring.webhook import serve_webhook
    from mlplatform.workspace import Workspace

    serve_webhook(Workspace.from_env(home), host=host, port=port)


@app.command()
def quality(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    home: HomeOpt = None,
    role: Annotated[str, typer.Option(help="which predictor's log")] = "stable",
) -> None:
    """Join delayed labels (ranking: clicks) with logged predictions; write rolling quality (the webhook exports it)."""
    from mlplatform.config import load_tenant
    from mlplatform.monitoring.feedback import FeedbackError
    from mlplatform.tasks import task_for
    from mlplatform.workspace import Workspace

    try:
        cfg = load_tenant(_tenant_path(tenant))
        record = task_for(cfg).quality_job(cfg, Workspace.from_env(home), role=role)
    except FeedbackError as err:
        raise FeedbackError(f"bad feedback: {err}") from err
    console.print_json(json.dumps(record))


@app.command()
def rules(
    tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
    out: Annotated[Optional[Path], typer.Option(help="folder (default: <home>/tenants/<name>/monitoring)")] = None,
) -> None:
    """Render the tenant's Prometheus rule file from charts/tenant (the cluster's PrometheusRule)."""
    from mlplatform.monitoring.rules import render_rules

    console.print(escape(str(render_rules(_tenant_path(tenant), out))))


@app.command("alertmanager-config")
def alertmanager_config(
    tenants: Annotated[list[str], typer.Argument(help="tenant names or tenant files (all tenants of the cluster)")],
    webhook_url: Annotated[str, typer.Option(help="the retraining webhook")] = "http://retrain-webhook.mlplatform.svc:9095/alerts",
    smtp_smarthost: Annotated[Optional[str], typer.Option(help="mail relay host:port (owners told by email)")] = None,
    smtp_from: Annotated[str, typer.Option(help="sender of alert mail")] = "alertmanager@mlplatform.local",
) -> None:
    """Print kube-prometheus-stack values with the Alertmanager routing of these tenants (owner.team -> receiver)."""
    import yaml

    from mlplatform.config import load_tenant
    from mlplatform.monitoring.alert_routing import Smtp, cluster_values

    cfgs = [load_tenant(_tenant_path(t)) for t in tenants]
    smtp = Smtp(smtp_smarthost, smtp_from) if smtp_smarthost else None
    sys.stdout.write(yaml.safe_dump(cluster_values(cfgs, webhook_url, smtp), sort_keys=False))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":
    sys.exit(app())
