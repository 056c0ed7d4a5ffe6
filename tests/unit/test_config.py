"""TenantConfig: the fraud tenant loads; bad files fail with messages that name the key path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlplatform.config import TenantConfig, TenantConfigError, load_tenant, parse_tenant, tenant_json_schema
from tests.conftest import FRAUD_TENANT


@pytest.fixture(scope="module")
def fraud_raw() -> dict:
    return yaml.safe_load(FRAUD_TENANT.read_text())


@pytest.fixture
def raw(fraud_raw) -> dict:
    return copy.deepcopy(fraud_raw)


def load_raw(tmp_path: Path, raw: dict) -> TenantConfig:
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_tenant(path)


def error_lines(exc: pytest.ExceptionInfo) -> list[str]:
    return [line.strip().removeprefix("- ") for line in str(exc.value).splitlines()[1:]]


# --- the real tenant --------------------------------------------------------------------------


def test_fraud_tenant_loads():
    cfg = load_tenant(FRAUD_TENANT)
    assert cfg.name == "fraud"
    assert cfg.source_path == FRAUD_TENANT.resolve()
    assert cfg.tenant_dir == FRAUD_TENANT.parent.resolve()
    assert cfg.data.timestamp == "tx_datetime" and cfg.data.label == "is_fraud"
    assert [v.name for v in cfg.features.feature_views] == ["customer_velocity", "terminal_risk"]
    assert cfg.features.join_keys == ["customer_id", "terminal_id"]
    assert cfg.features.as_of == "before_event"
    # every model input is produced somewhere, and the derived request features are among them
    assert set(cfg.model.features) <= set(cfg.available_features)
    assert {"tx_hour", "amount_to_avg_30d"} <= set(cfg.model.features)
    assert cfg.metrics.costs.false_negative > cfg.metrics.costs.false_positive
    assert cfg.data.expectations.label_rate.min < cfg.data.expectations.label_rate.max


def test_tenant_folder_resolves_to_its_tenant_yaml():
    assert load_tenant(FRAUD_TENANT.parent).name == "fraud"


def test_config_is_immutable():
    cfg = load_tenant(FRAUD_TENANT)
    with pytest.raises(Exception):
        cfg.name = "other"  # type: ignore[misc]


# --- unknown keys -----------------------------------------------------------------------------


def test_unknown_top_level_key_names_the_key_and_file(tmp_path, raw):
    raw["colour"] = "blue"
    with pytest.raises(TenantConfigError) as exc:
        load_raw(tmp_path, raw)
    msg = str(exc.value)
    assert str(tmp_path / "tenant.yaml") in msg
    assert "colour: unknown key" in error_lines(exc)[0]
    assert len(error_lines(exc)) == 1


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda r: r["features"]["feature_views"][1]["features"][2].update(colour="x"),
         "features.feature_views.1.features.2.colour"),
        (lambda r: r["data"]["columns"][4].update(maximum=3), "data.columns.4.maximum"),
        (lambda r: r["features"]["entities"][0].update(joinkey="c"), "features.entities.0.joinkey"),
        (lambda r: r["model"]["split"].update(validation_dayz=3), "model.split.validation_dayz"),
        (lambda r: r["metrics"]["gates"].update(minimun={"pr_auc": 0.1}), "metrics.gates.minimun"),
        (lambda r: r.setdefault("cluster", {}).setdefault("canary", {}).update(weight=5), "cluster.canary.weight"),
    ],
    ids=["feature-in-view", "column", "entity", "split", "gates", "cluster-canary"],
)
def test_unknown_nested_key_names_the_dotted_path(tmp_path, raw, mutate, path):
    mutate(raw)
    with pytest.raises(TenantConfigError) as exc:
        load_raw(tmp_path, raw)
    assert f"{path}: unknown key" in error_lines(exc)


def test_every_problem_is_reported_not_just_the_first(raw):
    raw["colour"] = 1
    raw["model"]["split"]["bogus"] = 2
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    lines = error_lines(exc)
    assert "2 problem(s)" in str(exc.value).splitlines()[0]
    assert {"colour: unknown key", "model.split.bogus: unknown key"} == set(lines)


# --- invalid values ---------------------------------------------------------------------------


def test_label_rate_min_above_max(raw):
    raw["data"]["expectations"]["label_rate"] = {"min": 0.5, "max": 0.1}
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    (line,) = error_lines(exc)
    assert line.startswith("data.expectations.label_rate:")
    assert "label_rate.min (0.5) is above label_rate.max (0.1)" in line


def test_label_rate_out_of_unit_interval(raw):
    raw["data"]["expectations"]["label_rate"] = {"min": 0.0, "max": 1.5}
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert any(line.startswith("data.expectations.label_rate.max:") for line in error_lines(exc))


def test_unknown_entity_in_a_view(raw):
    raw["features"]["feature_views"][0]["entities"] = ["merchant"]
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    msg = str(exc.value)
    assert "features:" in msg
    assert "feature view 'customer_velocity' uses unknown entity 'merchant'" in msg


def test_model_feature_not_produced_anywhere(raw):
    raw["model"]["features"] = raw["model"]["features"] + ["customer_shoe_size"]
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert "model.features not produced by any feature view or request field: ['customer_shoe_size']" in str(exc.value)


@pytest.mark.parametrize("feature", ["amount", "tx_hour", "terminal_risk_30d"],
                         ids=["request-field", "derived", "view"])
def test_model_feature_may_come_from_view_request_or_derived(raw, feature):
    raw["model"]["features"] = [feature]
    raw["model"].pop("baselines")  # its rule features must be model features (tests/unit/test_baselines.py)
    assert parse_tenant(raw).model.features == [feature]


def test_derived_feature_disappears_with_its_transform(raw):
    # dropping the derived declaration makes every derived model input unknown
    raw["features"]["request"]["derived"] = []
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert "'tx_hour'" in str(exc.value) and "'amount_to_avg_30d'" in str(exc.value)


def test_derived_without_transform(raw):
    del raw["features"]["request"]["transform"]
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert "request.transform is not set" in str(exc.value)


@pytest.mark.parametrize("name", ["Fraud", "f", "9fraud", "fraud_detection", "fraud-", "x" * 40])
def test_bad_tenant_name(raw, name):
    raw["name"] = name
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert error_lines(exc)[0].startswith("name:")


@pytest.mark.parametrize("name", ["mlplatform", "default", "kube-system"])
def test_reserved_tenant_name(raw, name):
    raw["name"] = name
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert f"tenant name {name!r} is reserved" in str(exc.value)


def test_good_tenant_names(raw):
    for name in ("ab1", "fraud-eu-2", "search"):
        raw["name"] = name
        assert parse_tenant(raw).name == name


def test_duplicate_feature_names_across_views(raw):
    raw["features"]["feature_views"][1]["features"].append({"name": "customer_bucket_count", "dtype": "int64"})
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert "feature names must be unique across views: ['customer_bucket_count']" in str(exc.value)


def test_derived_features_may_not_shadow_stored_ones(raw):
    raw["features"]["feature_views"][1]["features"].append({"name": "customer_nb_tx_1d", "dtype": "int64"})
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert "request.derived names features the views already store: ['customer_nb_tx_1d']" in str(exc.value)


def test_label_column_must_be_declared(raw):
    raw["data"]["label"] = "chargeback"
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert "column 'chargeback' is used by data but not declared" in str(exc.value)


def test_numeric_timestamp_settings(raw):
    raw["data"]["timestamp_origin"] = "2024-01-01T00:00:00Z"
    with pytest.raises(TenantConfigError, match="data.timestamp_origin needs data.timestamp_unit"):
        parse_tenant(raw)
    raw["data"]["timestamp_unit"] = "s"
    with pytest.raises(TenantConfigError, match="data.timestamp_unit is for data.source 'table'"):
        parse_tenant(raw)
    raw["data"] |= {"source": "table", "path": "data/tx.parquet", "timestamp_unit": "days"}
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert any(line.startswith("data.timestamp_unit: Input should be 's', 'ms', 'us' or 'ns'")
               for line in error_lines(exc))
    raw["data"]["timestamp_unit"] = "ms"
    data = parse_tenant(raw).data
    assert data.timestamp_unit == "ms" and data.timestamp_origin.isoformat() == "2024-01-01T00:00:00+00:00"


def test_wrong_type_names_the_path(raw):
    raw["model"]["num_boost_round"] = "many"
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert any(line.startswith("model.num_boost_round:") for line in error_lines(exc))


def test_missing_required_section(raw):
    del raw["model"]
    with pytest.raises(TenantConfigError) as exc:
        parse_tenant(raw)
    assert "model: Field required" in error_lines(exc)


# --- files that are not tenant files ----------------------------------------------------------


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("", "NoneType")])
def test_non_mapping_yaml(tmp_path, text, kind):
    path = tmp_path / "tenant.yaml"
    path.write_text(text)
    with pytest.raises(TenantConfigError) as exc:
        load_tenant(path)
    assert str(exc.value) == f"{path}: a tenant file must be a YAML mapping, got {kind}"


def test_invalid_yaml(tmp_path):
    path = tmp_path / "tenant.yaml"
    path.write_text("name: fraud\ndata: {timestamp: [unclosed\n")
    with pytest.raises(TenantConfigError) as exc:
        load_tenant(path)
    assert str(exc.value).startswith(f"{path}: not valid YAML:")
    assert "line" in str(exc.value)  # the YAML parser's position is passed on


def test_missing_file(tmp_path):
    with pytest.raises(TenantConfigError, match="no such tenant file"):
        load_tenant(tmp_path / "nope.yaml")
    with pytest.raises(TenantConfigError, match="no such tenant file"):
        load_tenant(tmp_path)  # a folder without tenant.yaml


# --- JSON schema ------------------------------------------------------------------------------


def test_json_schema_forbids_unknown_keys():
    schema = tenant_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "source_path" not in schema["properties"]
    assert set(schema["required"]) == {"name", "data", "features", "model"}
    # nested objects are closed too
    for name in ("DataConfig", "Column", "FeatureView", "ModelConfig", "Gates"):
        assert schema["$defs"][name]["additionalProperties"] is False, name
    assert schema["properties"]["name"]["pattern"].startswith("^[a-z]")


def test_json_schema_accepts_the_fraud_tenant_and_rejects_unknown_keys():
    jsonschema = pytest.importorskip("jsonschema")
    schema = tenant_json_schema()
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    jsonschema.validate(raw, schema)
    raw["colour"] = "blue"
    with pytest.raises(jsonschema.ValidationError, match="colour"):
        jsonschema.validate(raw, schema)
