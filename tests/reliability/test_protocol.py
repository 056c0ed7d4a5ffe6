"""The Open Inference Protocol (V2) endpoints driven by a real client, `tritonclient.http`: health
live/ready, server and model metadata, model ready, infer (JSON and binary tensors), and the error
format (4xx with {"error": ...}, which the client surfaces as InferenceServerException)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from mlplatform.config import load_tenant
from mlplatform.serving.inputs import METADATA_DATATYPE, RequestSchema
from mlplatform.serving.smoke import newest_rows
from mlplatform.workspace import Workspace
from tests.reliability.figures import record

JSON = {"Content-Type": "application/json"}
NUMPY = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}


@pytest.fixture(scope="module")
def ctx(trained_fraud, server):
    cfg = load_tenant(trained_fraud.tenant_file)
    rows, _ = newest_rows(cfg, Workspace(trained_fraud.home), 5)
    client = triton.InferenceServerClient(url=server.base_url.removeprefix("http://"), connection_timeout=10,
                                          network_timeout=30)
    yield {"cfg": cfg, "rows": rows, "client": client, "specs": RequestSchema(cfg).specs}
    client.close()


def tensors(specs, rows, *, binary: bool = False, override: dict | None = None) -> list:
    out = []
    for s in specs:
        dtype = METADATA_DATATYPE[s.type]
        values = (override or {}).get(s.name, [r[s.name] for r in rows])
        inp = triton.InferInput(s.name, [len(values)], dtype)
        inp.set_data_from_numpy(np.asarray(values, dtype=NUMPY[dtype]), binary_data=binary)
        out.append(inp)
    return out


def test_health_live_and_ready(ctx):
    assert ctx["client"].is_server_live()
    assert ctx["client"].is_server_ready()


def test_server_metadata(ctx):
    meta = ctx["client"].get_server_metadata()
    assert meta["name"] and meta["version"]
    assert isinstance(meta.get("extensions", []), list)


def test_model_metadata_and_ready(ctx):
    cfg, client = ctx["cfg"], ctx["client"]
    assert client.is_model_ready(cfg.name)
    meta = client.get_model_metadata(cfg.name)
    assert meta["name"] == cfg.name
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        s.name: METADATA_DATATYPE[s.type] for s in ctx["specs"]}
    assert {o["name"] for o in meta["outputs"]} == {"score", "decision", "cold_start", "missing"}
    assert not client.is_model_ready("nosuch")


@pytest.mark.parametrize("binary", [False, True], ids=["json-tensors", "binary-tensors"])
def test_infer(ctx, binary):
    cfg, rows = ctx["cfg"], ctx["rows"]
    outputs = [triton.InferRequestedOutput("score", binary_data=False),
               triton.InferRequestedOutput("decision", binary_data=False)]
    try:
        # tritonclient sends no content type for a JSON body; kserve reads such a body as raw bytes
        result = ctx["client"].infer(cfg.name, tensors(ctx["specs"], rows, binary=binary), outputs=outputs,
                                     headers=None if binary else JSON)
    except InferenceServerException as err:
        if not binary:
            raise
        # the binary tensor extension is optional in the protocol; refusing it must be a clean 4xx
        assert str(err.status()).startswith("4"), err
        record("protocol", binary_tensors=f"rejected {err.status()}: {err.message()[:120]}")
        return
    scores, decisions = result.as_numpy("score"), result.as_numpy("decision")
    assert scores.shape == (len(rows),) and decisions.shape == (len(rows),)
    assert ((0 <= scores) & (scores <= 1)).all()
    threshold = result.get_response()["parameters"]["threshold"]
    assert (decisions == (scores >= threshold)).all()
    record("protocol", **{"binary_tensors" if binary else "json_tensors": "ok"})


@pytest.mark.parametrize("problem, override, expect", [
    ("out of range", {"amount": [1e9]}, "above the maximum"),
    ("bad datetime", {"tx_datetime": ["not a time"]}, "ISO 8601"),
])
def test_infer_errors_use_the_error_format(ctx, problem, override, expect):
    row = ctx["rows"][:1]
    with pytest.raises(InferenceServerException) as exc:
        ctx["client"].infer(ctx["cfg"].name, tensors(ctx["specs"], row, override=override), headers=JSON)
    err = exc.value
    assert str(err.status()) in {"400", "422"}, err
    assert expect in err.message(), err.message()
    assert ctx["client"].is_server_ready()


def test_infer_unknown_model_is_404(ctx):
    with pytest.raises(InferenceServerException) as exc:
        ctx["client"].infer("nosuch", tensors(ctx["specs"], ctx["rows"][:1]), headers=JSON)
    assert str(exc.value.status()) == "404"
