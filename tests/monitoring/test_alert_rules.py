"""`promtool test rules` for every alert, on the rule file embedded mode renders from the fraud
tenant file (the same PrometheusRule the cluster gets). Test files: tests/monitoring/rules/."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mlplatform.monitoring.rules import alert_names, render_rules, rule_groups
from mlplatform.verify.promtool import find_promtool

from tests.conftest import FRAUD_TENANT, require

RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*.test.yml"))


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rules")
    render_rules(FRAUD_TENANT, out)
    return out


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests(rules_dir, test_file):
    promtool = find_promtool()
    require(promtool, "promtool not found (Debian/Ubuntu: apt-get install prometheus)")
    spec = yaml.safe_load(test_file.read_text())
    (rules_dir / test_file.name).write_text(yaml.safe_dump({"rule_files": ["fraud.rules.yml"], **spec}, sort_keys=False))
    proc = subprocess.run([promtool, "test", "rules", test_file.name], cwd=rules_dir, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_quiet():
    alerts = set(alert_names(rule_groups(FRAUD_TENANT)))
    fires, quiet = set(), set()
    for f in RULE_TESTS:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
    assert alerts - fires == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested staying quiet"


def test_overrides_shorten_the_drift_duration(tmp_path):
    path = render_rules(FRAUD_TENANT, tmp_path, overrides={"drift": {"for_minutes": 0.1}})
    rules = yaml.safe_load(path.read_text())
    drift = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "MLPlatformFeatureDrift")
    assert drift["for"] == "6s"
