"""Static verification of the cluster path (no cluster needed): `python -m mlplatform.verify`.

run_all(repo_root) renders both charts with Helm's engine for default values and for every tenant
file, then checks every object against the official Kubernetes and CRD schemas, the container
security policy, checkov, and promtool, checks the Alertmanager config rendered from the tenant
files with amtool, and checks that values.schema.json and the compiled pipelines are current.

A check whose tool or schema is missing is reported as "skip" with the reason; under CI=true it
is a failure instead (CI must run everything).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Check", "Report", "run_all", "in_ci"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@dataclass
class Check:
    name: str
    status: str  # "pass" | "fail" | "skip"
    details: list[str] = field(default_factory=list)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        bad = {"fail", "skip"} if in_ci() else {"fail"}
        return not any(c.status in bad for c in self.checks)

    def add(self, name: str, problems: list[str], skip: str | None = None) -> None:
        if skip:
            self.checks.append(Check(name, "skip", [skip]))
        else:
            self.checks.append(Check(name, "fail" if problems else "pass", problems))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.__dict__ for c in self.checks]}

    def format(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(f"{c.status.upper():5} {c.name}")
            lines += [f"      {d}" for d in c.details[:50]]
        lines.append("OK" if self.ok else "FAILED" + (" (CI=true: skips count as failures)" if in_ci() else ""))
        return "\n".join(lines)


def _values_schema_current(repo_root: Path) -> list[str]:
    from mlplatform.config import tenant_json_schema

    path = repo_root / "charts" / "tenant" / "values.schema.json"
    if not path.exists() or json.loads(path.read_text()) != tenant_json_schema():
        return [f"{path.relative_to(repo_root)} is stale: run `make schema`"]
    return []


def _pipelines_compile(repo_root: Path) -> list[str]:
    """Every pipeline compiles with the KFP compiler, loads back, and matches pipelines/compiled/."""
    import tempfile

    from kfp import components
    from mlplatform_pipelines.compile import COMPILED_DIR, compile_all, stale

    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in compile_all(Path(tmp)):
            try:
                components.load_component_from_file(str(path))
            except Exception as exc:  # noqa: BLE001 - report, not crash
                problems.append(f"{path.name} does not load back: {exc}")
    problems += [f"pipelines/compiled/{name} is stale: run `make pipelines`" for name in stale(COMPILED_DIR)]
    return problems


def run_all(repo_root: str | Path = ".") -> Report:
    from . import checkov_scan, policy, promtool, render, schemas

    root = Path(repo_root).resolve()
    report = Report()
    report.add("values.schema.json matches TenantConfig", _values_schema_current(root))
    report.add("KFP pipelines compile and load back", _pipelines_compile(root))

    try:
        cases = render.render_all(root)
    except ImportError as exc:
        report.add("helm render", [], skip=f"helm-python-sdk is not installed ({exc}); run `make venv`")
        return report
    except Exception as exc:  # a template or values error is a failure, with Helm's message
        report.add("helm render", [f"{type(exc).__name__}: {exc}"])
        return report
    report.add("helm render", [], None)
    report.checks[-1].details = [f"{c.name}: {len(c.objects)} objects" for c in cases]

    crd_dir = schemas.crds_dir(root)
    if not crd_dir.is_dir():
        report.add("schemas", [], skip=f"no CRDs at {crd_dir} (set MLPLATFORM_CRDS_DIR or run `make crds`)")
    else:
        crds = schemas.CrdIndex.load(crd_dir)
        version = schemas.kubernetes_version(root)
        problems = []
        for case in cases:
            for obj in case.objects:
                try:
                    errors = schemas.validate_object(obj, version, crds)
                except schemas.SchemaMissing as exc:
                    errors = [str(exc)]
                problems += [f"{case.name} {render.object_id(obj)}: {e}" for e in errors]
        report.add(f"schemas (Kubernetes {version}, CRDs from {crd_dir})", problems)

    report.add("container policy", [f"{c.name} {render.object_id(o)} {p}" for c in cases for o in c.objects
                                    for p in policy.check_object(o)])

    exe = checkov_scan.find_checkov(root)
    if exe is None:
        report.add("checkov", [], skip="checkov not found (make tools creates .venv/tools/checkov)")
    else:
        result = checkov_scan.scan({c.name: c.objects for c in cases}, exe)
        report.add("checkov", [f"{f['check_id']} {f['resource']} ({f['file']}): {f['name']}" for f in result.failed])
        report.checks[-1].details.append(f"{result.passed} passed; skipped with reasons: {sorted(checkov_scan.SKIPPED)}")

    exe = promtool.find_promtool()
    if exe is None:
        report.add("promtool check rules", [], skip="promtool not found (Debian: apt-get install prometheus)")
    else:
        problems = []
        for case in cases:
            for name, rules in promtool.rule_files(case.objects).items():
                ok, out = promtool.check_rules(rules, exe)
                if not ok:
                    problems.append(f"{case.name} {name}: {out}")
        report.add("promtool check rules", problems)
    report.add(*_alertmanager_config(root))
    return report


def _alertmanager_config(root: Path) -> tuple[str, list[str], str | None]:
    """amtool check-config on the Alertmanager config the cluster gets (install/monitoring.sh)."""
    from mlplatform.config import load_tenant
    from mlplatform.monitoring.alert_routing import RoutingError, cluster_values

    from . import amtool, render

    name = "amtool check-config (Alertmanager routing from the tenant files)"
    exe = amtool.find_amtool()
    if exe is None:
        return name, [], "amtool not found (Debian: apt-get install prometheus-alertmanager)"
    try:
        values = cluster_values([load_tenant(p) for p in render.tenant_files(root)], "http://retrain-webhook:9095/alerts")
    except RoutingError as err:
        return name, [str(err)], None
    ok, out = amtool.check_config(values["alertmanager"]["config"], exe)
    return name, [] if ok else [out], None
