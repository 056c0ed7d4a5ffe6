"""Training/serving skew, end to end, on every `make demo` run of a classification tenant.

The newest rows' entities are scored twice at one instant, one second after the data's newest
event: through the running model server (online store, request transform, model) and through
training's path (Feast's point-in-time join, the same transform, the served version loaded by its
trainer). That instant is after every materialised row, so the online store's latest row is the
row the point-in-time join picks, and equal scores say every input the model uses agrees. A
difference is a skew no unit test saw (a type, a default, a TTL, a transform that differs).
tests/integration/test_stream_skew.py proves the same for the streamed features, payment by payment.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlplatform.config import TenantConfig
from mlplatform.workspace import Workspace

TOLERANCE = 1e-6  # scores are float32 in XGBoost: the same inputs give the same bits
ROWS = 50


def skew_check(cfg: TenantConfig, ws: Workspace, base_url: str, n: int = ROWS, timeout: float = 30.0) -> dict[str, Any]:
    """{rows, at, model_version, max_abs_score_diff, mismatches, tolerance} for the newest `n` rows."""
    import httpx
    import pandas as pd

    from mlplatform.data.ingest import load_raw
    from mlplatform.features.store import training_frame
    from mlplatform.registry.mlflow_registry import connect
    from mlplatform.serving.inputs import RequestSchema
    from mlplatform.serving.smoke import _json_value, v1_body, v1_path
    from mlplatform.training.trainers import model_features, resolve_trainer

    raw = load_raw(cfg, ws)
    ts = cfg.data.timestamp
    at = pd.to_datetime(raw[ts], utc=True).max() + pd.Timedelta(seconds=1)
    events = raw.tail(n).assign(**{ts: at}).reset_index(drop=True)
    names = [s.name for s in RequestSchema(cfg).specs]
    rows = [{k: _json_value(v) for k, v in r.items()} for r in events[names].to_dict("records")]
    resp = httpx.post(f"{base_url.rstrip('/')}{v1_path(cfg)}", json=v1_body(rows), timeout=timeout)
    resp.raise_for_status()
    predictions = resp.json()["predictions"]
    online = np.array([p["score"] for p in predictions], dtype=np.float64)
    version = str(predictions[0]["model_version"])

    client = connect(ws)  # models:/ URIs resolve against the fluent API's tracking URI
    run = client.get_run(client.get_model_version(cfg.name, version).run_id)
    trainer = resolve_trainer(run.data.tags.get("trainer") or run.data.params.get("trainer") or cfg.model.trainer)
    model = trainer.load(f"models:/{cfg.name}/{version}")
    frame = training_frame(cfg, ws, events)
    offline = np.asarray(trainer.predict(model, frame[model_features(model, cfg.model.features)]), dtype=np.float64)
    diff = np.abs(online - offline)
    return {"rows": len(rows), "at": at.isoformat(), "model_version": version,
            "max_abs_score_diff": float(diff.max()), "mismatches": int((diff > TOLERANCE).sum()),
            "tolerance": TOLERANCE}
