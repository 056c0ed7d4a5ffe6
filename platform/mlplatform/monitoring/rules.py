"""Prometheus rule files for embedded mode, rendered from the same source as the cluster's.

`charts/tenant/templates/prometheusrule.yaml` is the only place alert rules are written. Embedded
mode renders the chart with the tenant file as values (Helm's Go engine, helm_python), takes the
PrometheusRule's `spec` (the same shape as a rule file: {groups: [...]}) and writes it out, so
both modes evaluate the same expressions with the same thresholds.

`overrides` are merged into the tenant file's values before rendering, e.g. the demo's
{"drift": {"for_minutes": 0.1}} for a 6 s `for:` instead of 10 minutes.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from mlplatform.config import load_tenant


def charts_dir() -> Path:
    """$MLPLATFORM_CHARTS, else the repository's charts/ (the package is installed editable)."""
    env = os.environ.get("MLPLATFORM_CHARTS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "charts"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def rule_groups(cfg_path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """{groups: [...]} of the tenant's PrometheusRule, rendered by Helm."""
    from mlplatform.verify.render import render

    path = Path(cfg_path)
    path = path / "tenant.yaml" if path.is_dir() else path
    cfg = load_tenant(path)  # a broken tenant file fails here with its key paths, not inside Helm
    values = _merge(yaml.safe_load(path.read_text()), overrides or {})
    objects, _, _ = render(charts_dir() / "tenant", values, cfg.name)
    rules = [o for o in objects if o.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        raise RuntimeError(f"charts/tenant rendered {len(rules)} PrometheusRule objects for {cfg.name}; expected 1")
    return {"groups": rules[0]["spec"]["groups"]}


def render_rules(cfg_path: str | Path, out_dir: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> Path:
    """Write `<out_dir>/<tenant>.rules.yml` (default out_dir: the tenant's workspace folder
    `$MLPLATFORM_HOME/tenants/<name>/monitoring`) and return its path."""
    cfg = load_tenant(cfg_path)
    if out_dir is None:
        from mlplatform.workspace import Workspace

        out_dir = Workspace.from_env().tenant(cfg.name) / "monitoring"
    out = Path(out_dir) / f"{cfg.name}.rules.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(rule_groups(cfg_path, overrides), sort_keys=False))
    return out


def alert_names(rules: dict[str, Any]) -> list[str]:
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
