"""Request validation, tenant lookup and the metrics middleware, without a server (fast)."""

from __future__ import annotations

import asyncio
from datetime import timezone
from pathlib import Path

import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest
from prometheus_client import CollectorRegistry

from mlplatform.config import TenantConfigError, load_tenant
from mlplatform.serving.inputs import RequestSchema
from mlplatform.serving.metrics import RequestMetricsMiddleware, ServingMetrics
from mlplatform.tenants import apply_env_overrides, resolve_tenant_path

REPO = Path(__file__).resolve().parents[2]
CFG = load_tenant(REPO / "examples" / "fraud" / "tenant.yaml")
GOOD = {"customer_id": 3, "terminal_id": 9, "amount": 12.5, "tx_datetime": "2024-05-04T23:30:00"}


@pytest.fixture(scope="module")
def schema():
    return RequestSchema(CFG)


def test_v1_row_is_converted(schema):
    cols = schema.columns({"instances": [GOOD, {**GOOD, "amount": 7, "extra": "ignored"}]})
    assert cols["amount"] == [12.5, 7.0] and cols["customer_id"] == [3, 3]
    assert cols["tx_datetime"][0].tzinfo == timezone.utc  # naive means UTC
    assert set(cols) == {"customer_id", "terminal_id", "amount", "tx_datetime"}


@pytest.mark.parametrize("change, message", [
    ({"amount": True}, "expected a number"),
    ({"amount": "12.5"}, "expected a number"),
    ({"amount": float("nan")}, "finite"),
    ({"amount": float("inf")}, "finite"),
    ({"amount": 0.0}, "below the minimum"),
    ({"amount": 5000.01}, "above the maximum"),
    ({"customer_id": 1.5}, "expected an integer"),
    ({"customer_id": -1}, "below the minimum"),
    ({"tx_datetime": "yesterday"}, "ISO 8601"),
    ({"tx_datetime": 1714857000}, "ISO 8601"),
    ({"terminal_id": None}, "required"),
])
def test_v1_bad_values_name_row_and_field(schema, change, message):
    with pytest.raises(InvalidInput, match=message) as err:
        schema.columns({"instances": [GOOD, {**GOOD, **change}]})
    assert "row 1" in str(err.value) and repr(next(iter(change))) in str(err.value)


@pytest.mark.parametrize("payload, message", [
    ({"instances": []}, "empty"),
    ({"instances": {"a": 1}}, "expected a list"),
    ({"rows": [GOOD]}, "instances"),
    ({"instances": [GOOD] * 1001}, "limit"),
    ({"instances": ["x"]}, "expected an object"),
    (b'{"instances": [', "malformed JSON"),
])
def test_v1_bad_payloads(schema, payload, message):
    with pytest.raises(InvalidInput, match=message):
        schema.columns(payload, {"content-type": "application/json; charset=utf-8"})


def test_raw_body_with_a_foreign_content_type_is_rejected(schema):
    with pytest.raises(InvalidInput, match="content type"):
        schema.columns(b"{}", {"content-type": "text/plain"})


def _v2(**override):
    inputs = {"customer_id": ("INT64", [3, 4]), "terminal_id": ("INT64", [9, 9]),
              "amount": ("FP64", [1.5, 2.0]), "tx_datetime": ("BYTES", ["2024-05-04T23:30:00Z"] * 2)} | override
    return InferRequest(model_name="fraud", infer_inputs=[
        InferInput(name, [len(data)], dtype, data) for name, (dtype, data) in inputs.items()])


def test_v2_inputs_become_the_same_columns(schema):
    cols = schema.columns(_v2())
    assert cols["customer_id"] == [3, 4] and cols["amount"] == [1.5, 2.0]


@pytest.mark.parametrize("override, message", [
    ({"amount": ("BYTES", ["1.5", "2"])}, "datatype BYTES"),
    ({"customer_id": ("FP64", [3.5, 4.0])}, "datatype FP64"),
    ({"amount": ("FP64", [1.5])}, "other inputs have 2"),
    ({"amount": ("FP64", [1.5, float("nan")])}, "finite"),
])
def test_v2_bad_inputs(schema, override, message):
    with pytest.raises(InvalidInput, match=message):
        schema.columns(_v2(**override))


def test_resolve_tenant_path_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples" / "t1").mkdir(parents=True)
    (tmp_path / "examples" / "t1" / "tenant.yaml").write_text("name: t1\n")
    (tmp_path / "custom" / "t1").mkdir(parents=True)
    (tmp_path / "custom" / "t1" / "tenant.yaml").write_text("name: t1\n")
    assert resolve_tenant_path("t1", {}) == tmp_path / "examples" / "t1" / "tenant.yaml"
    assert resolve_tenant_path("t1", {"MLPLATFORM_TENANTS_DIR": "custom"}) == tmp_path / "custom" / "t1" / "tenant.yaml"
    assert resolve_tenant_path("examples/t1", {}) == tmp_path / "examples" / "t1" / "tenant.yaml"
    with pytest.raises(TenantConfigError, match="looked for") as err:
        resolve_tenant_path("nope", {})
    assert "tenants/nope/tenant.yaml" in str(err.value) and "examples/nope/tenant.yaml" in str(err.value)


def test_env_override_points_feast_at_redis():
    assert apply_env_overrides(CFG, {}) is CFG
    cfg = apply_env_overrides(CFG, {"MLPLATFORM_FEAST_ONLINE_STORE": "redis", "MLPLATFORM_REDIS_ADDRESS": "r:6379"})
    assert cfg.features.online_store.type == "redis" and cfg.features.online_store.connection_string == "r:6379"
    assert CFG.features.online_store.type == "sqlite"
    with pytest.raises(TenantConfigError):
        apply_env_overrides(CFG, {"MLPLATFORM_FEAST_ONLINE_STORE": "dynamo"})


def test_env_override_puts_feast_registry_in_sql():
    url = "postgresql+psycopg://postgres@db:5432/test"
    cfg = apply_env_overrides(CFG, {"MLPLATFORM_FEAST_REGISTRY": url})
    assert (cfg.features.registry.type, cfg.features.registry.path) == ("sql", url)
    assert cfg.features.online_store == CFG.features.online_store and CFG.features.registry.type == "file"
    with pytest.raises(TenantConfigError, match="MLPLATFORM_FEAST_REGISTRY must be a SQLAlchemy URL"):
        apply_env_overrides(CFG, {"MLPLATFORM_FEAST_REGISTRY": "/tmp/registry.db"})


def _call(app, path):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "method": "POST"}, receive, send))
    return sent


def test_middleware_counts_statuses_and_unhandled_errors_of_inference_routes_only():
    metrics = ServingMetrics(CollectorRegistry())
    labels = {"tenant": "t", "model": "t", "version": "3", "role": "canary"}

    async def app(scope, receive, send):
        if scope["path"].endswith("boom/infer"):
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 400 if "predict" in scope["path"] else 200})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = RequestMetricsMiddleware(app, "t", lambda: labels, metrics)
    _call(mw, "/v1/models/t:predict")
    _call(mw, "/v2/models/t/infer")
    _call(mw, "/metrics")
    boom = RequestMetricsMiddleware(app, "boom", lambda: labels, metrics)
    with pytest.raises(RuntimeError):
        _call(boom, "/v2/models/boom/infer")
    assert metrics.requests.labels(**labels, status="400")._value.get() == 1
    assert metrics.requests.labels(**labels, status="200")._value.get() == 1
    assert metrics.requests.labels(**labels, status="500")._value.get() == 1


# --- the request bodies the served OpenAPI document describes (serving/openapi.py) ------------


def test_documented_bodies_accept_what_the_validator_accepts_and_reject_what_it_rejects(schema):
    """The JSON Schemas are checked with a real validator (jsonschema, draft 2020-12, as OpenAPI 3.1
    uses) against the requests RequestSchema takes and refuses."""
    from jsonschema import Draft202012Validator

    v1, v2 = (Draft202012Validator(s) for s in (schema.json_schemas()[k] for k in ("v1", "v2")))
    good = {"instances": [{**GOOD, "tx_datetime": "2024-05-04T23:30:00Z"}]}
    assert v1.is_valid(good) and schema.from_v1(good)
    for bad in ({"instances": []}, {"instances": [{**GOOD, "amount": -1}]}, {"rows": [GOOD]},
                {"instances": [{**GOOD, "tx_datetime": "9999-01-01T00:00:00Z"}]},
                {"instances": [{k: v for k, v in GOOD.items() if k != "amount"}]}):
        assert not v1.is_valid(bad), bad
        with pytest.raises(InvalidInput):
            schema.from_v1(bad)
    body = {"inputs": [{"name": s.name, "datatype": {"int": "INT64", "float": "FP64"}.get(s.type, "BYTES"),
                        "shape": [1], "data": [{**GOOD, "tx_datetime": "2024-05-04T23:30:00Z"}[s.name]]}
                       for s in schema.specs]}
    assert v2.is_valid(body)
    extra = {"inputs": body["inputs"] + [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    assert not v2.is_valid(extra)


def test_v2_unknown_or_repeated_inputs_are_rejected(schema):
    inputs = [InferInput(s.name, [1], {"int": "INT64", "float": "FP64"}.get(s.type, "BYTES"), [GOOD[s.name]])
              for s in schema.specs]
    for more in ([InferInput("x", [1], "FP64", [1.0])], [inputs[0]]):
        with pytest.raises(InvalidInput, match="unknown or repeated"):
            schema.from_v2(InferRequest("fraud", inputs + more))


def test_number_beyond_float_range_is_a_400(schema):
    with pytest.raises(InvalidInput, match="beyond the range"):
        schema.from_v1({"instances": [{**GOOD, "amount": 10**400}]})


def test_redis_online_store_has_timeouts_unless_given():
    from mlplatform.features.repo import with_timeouts

    assert with_timeouts("r:6379,db=1") == "r:6379,db=1,socket_connect_timeout=1,socket_timeout=2"
    assert "socket_timeout=9" in with_timeouts("r:6379,socket_timeout=9")
    assert with_timeouts("r:6379,socket_timeout=9").count("socket_timeout=") == 1
