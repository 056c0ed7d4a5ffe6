"""Render the charts with Helm's own Go engine (helm-python-sdk, import `helm_python`), offline.

One *case* is one `helm template`: the mlplatform chart with its defaults, the tenant chart with
its defaults, and the tenant chart once per tenant file (`examples/*/tenant.yaml`) as it is and
once with canary and shadow switched on, so every template branch is rendered and checked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PLATFORM_NAMESPACE = "mlplatform"  # release namespace of both charts (see platform/cluster/versions.env)


@dataclass
class Case:
    name: str  # e.g. "tenant/fraud"
    chart: str  # "mlplatform" or "tenant"
    release: str
    values: dict[str, Any] | None
    objects: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # template of each object, same order
    notes: str = ""


def tenant_files(repo_root: Path) -> list[Path]:
    """Every tenant file; tenants are listed by path, never imported."""
    return sorted(repo_root.glob("examples/*/tenant.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def with_rollout(values: dict[str, Any]) -> dict[str, Any]:
    """The same tenant with canary and shadow on (the HTTPRoute weights and mirror branches), the
    canary at a weight above 0 (the file's, else 10)."""
    v = copy.deepcopy(values)
    cluster = v.setdefault("cluster", {})
    canary = cluster.setdefault("canary", {})
    canary["enabled"] = True
    canary["traffic_percent"] = canary.get("traffic_percent") or 10
    cluster.setdefault("shadow", {})["enabled"] = True
    return v


def render(chart_dir: Path, values: dict[str, Any] | None, release: str,
           namespace: str = PLATFORM_NAMESPACE) -> tuple[list[dict[str, Any]], list[str], str]:
    """Render one chart; returns (objects, their templates, NOTES.txt).

    Helm validates the merged values against the chart's values.schema.json first and raises
    helm_python.HelmValuesError when they do not match.
    """
    import helm_python as helm  # imported here: the package is optional (extra "cluster")

    chart = helm.Chart.load(str(chart_dir))
    manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:  # templates switched off by a condition render to nothing
                objects.append(doc)
                sources.append(template)
    return objects, sources, notes


def cases(repo_root: Path) -> list[Case]:
    out = [
        Case("mlplatform/defaults", "mlplatform", "mlplatform", None),
        Case("mlplatform/no-mlflow-auth", "mlplatform", "mlplatform", {"mlflow": {"auth": {"enabled": False}}}),
        Case("tenant/defaults", "tenant", "example", None),
    ]
    for path in tenant_files(repo_root):
        values = load_values(path)
        name = values.get("name", path.parent.name)
        out.append(Case(f"tenant/{name}", "tenant", name, values))
        out.append(Case(f"tenant/{name}+canary+shadow", "tenant", name, with_rollout(values)))
    return out


def render_all(repo_root: Path) -> list[Case]:
    rendered = []
    for case in cases(repo_root):
        case.objects, case.sources, case.notes = render(repo_root / "charts" / case.chart, case.values, case.release)
        rendered.append(case)
    return rendered


def object_id(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace", "")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"
