"""charts/tenant takes the tenant file as values: its schema must be current and Helm's effective
values must equal what Python loads (no leaks from the chart's placeholder tenant)."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from mlplatform.config import (ClusterConfig, DriftConfig, QualityJobConfig, ServingConfig, load_tenant, parse_tenant,
                               tenant_json_schema)

from cluster_helpers import REPO_ROOT, tenant_files

CHART = REPO_ROOT / "charts" / "tenant"
TENANTS = tenant_files()


def test_values_schema_is_current():
    checked_in = json.loads((CHART / "values.schema.json").read_text())
    assert checked_in == tenant_json_schema(), "charts/tenant/values.schema.json is stale: run `make schema`"


def test_there_is_at_least_one_tenant_file():
    assert TENANTS, "no examples/*/tenant.yaml found"


def test_chart_defaults_equal_tenantconfig_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["serving"] == ServingConfig().model_dump(mode="json")
    assert values["drift"] == DriftConfig().model_dump(mode="json")
    assert values["quality"] == QualityJobConfig().model_dump(mode="json")
    assert values["cluster"] == ClusterConfig().model_dump(mode="json", exclude_none=True)


def test_placeholder_keys_are_all_required_by_the_schema():
    """Every placeholder key is one each tenant must set, so Helm's merge replaces it."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = tenant_json_schema()
    defs = schema["$defs"]
    placeholder = {k: v for k, v in values.items() if k not in {"serving", "drift", "quality", "cluster"}}
    assert set(placeholder) == set(schema["required"])
    for section, model in (("data", "DataConfig"), ("features", "FeaturesConfig"), ("model", "ModelConfig")):
        assert set(placeholder[section]) <= set(defs[model]["required"]), section


@pytest.mark.parametrize("path", TENANTS, ids=lambda p: p.parent.name)
def test_helm_merged_values_equal_python_config(helm, path):
    chart = helm.Chart.load(str(CHART))
    raw = yaml.safe_load(path.read_text())
    merged = chart.merge_values(raw)
    assert parse_tenant(merged).model_dump() == load_tenant(path).model_dump()


def test_helm_rejects_an_unknown_key(helm):
    raw = yaml.safe_load(TENANTS[0].read_text())
    raw["cluster"] = {"replicas_typo": 3}
    with pytest.raises(helm.HelmValuesError, match="replicas_typo"):
        helm.Chart.load(str(CHART)).render(raw, name="x", namespace="mlplatform")


def test_helm_rejects_a_wrong_type(helm):
    raw = copy.deepcopy(yaml.safe_load(TENANTS[0].read_text()))
    raw.setdefault("cluster", {})["canary"] = {"traffic_percent": "ten"}
    with pytest.raises(helm.HelmValuesError, match="traffic_percent"):
        helm.Chart.load(str(CHART)).render(raw, name="x", namespace="mlplatform")


def test_every_case_renders(cases):
    names = {c.name for c in cases}
    assert {"mlplatform/defaults", "tenant/defaults"} <= names
    for path in TENANTS:
        assert f"tenant/{yaml.safe_load(path.read_text())['name']}" in names
    for case in cases:
        assert case.objects, case.name
