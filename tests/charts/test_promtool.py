"""The PrometheusRule rendered from each tenant file: valid for promtool, thresholds from the
tenant file, and every alert labelled, summarized and linked to its runbook section."""

from __future__ import annotations

import copy
import re

import pytest

from mlplatform.config import load_tenant
from mlplatform.verify import promtool

from cluster_helpers import REPO_ROOT, require, tenant_files

TENANTS = tenant_files()


@pytest.fixture(scope="module")
def promtool_exe():
    exe = promtool.find_promtool()
    require(exe, "promtool not found (Debian/Ubuntu: apt-get install prometheus)")
    return exe


def _rules(cases, case_name):
    case = next(c for c in cases if c.name == case_name)
    files = promtool.rule_files(case.objects)
    assert len(files) == 1, case_name
    return next(iter(files.values()))


def _alerts(rules):
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_accepts_every_rendered_rule_file(cases, promtool_exe):
    checked = 0
    for case in cases:
        for name, rules in promtool.rule_files(case.objects).items():
            ok, out = promtool.check_rules(rules, promtool_exe)
            assert ok, f"{case.name} {name}:\n{out}"
            checked += 1
    assert checked >= 1 + len(TENANTS)


def test_promtool_rejects_a_broken_rule(cases, promtool_exe):
    rules = copy.deepcopy(_rules(cases, "tenant/defaults"))
    _alerts(rules)[0]["expr"] = "sum(rate(mlplatform_requests_total[5m]) >"
    ok, out = promtool.check_rules(rules, promtool_exe)
    assert not ok and "parse error" in out.lower(), out


@pytest.mark.parametrize("path", TENANTS, ids=lambda p: p.parent.name)
def test_thresholds_come_from_the_tenant_file(cases, path):
    cfg = load_tenant(path)
    alerts = {a["alert"]: a for a in _alerts(_rules(cases, f"tenant/{cfg.name}"))}
    p99 = float(re.search(r">\s*([0-9.e-]+)$", alerts["MLPlatformHighLatency"]["expr"]).group(1))
    assert p99 == pytest.approx(cfg.serving.slo.p99_latency_ms / 1000)
    assert alerts["MLPlatformHighErrorRate"]["expr"].endswith(f"> {cfg.serving.slo.max_error_rate}")
    assert alerts["MLPlatformFeatureDrift"]["expr"].endswith(f"> {cfg.drift.psi_threshold}")
    assert alerts["MLPlatformFeatureDrift"]["for"] == f"{int(cfg.drift.for_minutes * 60)}s"
    for a in alerts.values():
        assert f'tenant="{cfg.name}"' in a["expr"], a["alert"]


def test_every_alert_is_labelled_and_has_a_runbook_section(cases):
    runbooks = (REPO_ROOT / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+\s+(.+)$", runbooks, flags=re.M)}
    seen = set()
    for case in cases:
        for rules in promtool.rule_files(case.objects).values():
            for a in _alerts(rules):
                assert a["labels"]["severity"] in {"warning", "critical"}, a["alert"]
                assert a["labels"]["tenant"], a["alert"]
                assert a["annotations"]["summary"], a["alert"]
                url = a["annotations"]["runbook_url"]
                assert "docs/runbooks.md#" in url, url
                assert url.split("#", 1)[1] in anchors, f"docs/runbooks.md has no section for {a['alert']}"
                seen.add(a["alert"])
    assert {"MLPlatformHighLatency", "MLPlatformHighErrorRate", "MLPlatformFeatureDrift",
            "MLPlatformCanaryErrorRate"} <= seen
