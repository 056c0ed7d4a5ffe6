"""`task: binary_classification` (fraud): one row of entity keys in, a score and a decision out.

Training: training/classification.py (time split, PR-AUC, cost threshold, drift reference).
Serving: serving/predictor.py's TenantPredictor, smoke-tested by serving/smoke.py. Monitoring: a
prediction log row per scored row, joined with labels that arrive later (monitoring/quality.py).
"""

from __future__ import annotations

from typing import Any


class Classification:
    name = "binary_classification"
    drift_reference = True

    def training_set(self, cfg, ws):
        from mlplatform.training.classification import classification_training_set

        return classification_training_set(cfg, ws)

    def train_and_log(self, cfg, ws, data, mlflow_run_id: str, pipeline_run_id: str,
                      lineage: dict[str, Any]) -> dict[str, Any]:
        from mlplatform.training.classification import train_classification_and_log

        return train_classification_and_log(cfg, ws, data, mlflow_run_id, pipeline_run_id, lineage,
                                            baselines=self.baselines(cfg))

    def baselines(self, cfg):
        from mlplatform.training.classification_baselines import baselines

        return baselines(cfg)

    def predictor(self, cfg, ws, *, alias: str | None = None, role: str = "stable"):
        from mlplatform.serving.predictor import TenantPredictor

        return TenantPredictor(cfg, ws, alias=alias, role=role)

    def prediction_log(self, cfg, ws, role: str):
        from mlplatform.monitoring.prediction_log import row_log

        return row_log(cfg, ws, role)

    def smoke_test(self, cfg, ws, base_url: str, n: int | None = None) -> dict[str, Any]:
        """The smoke batch, then the online-vs-offline skew check (serving/skew.py) on the same server."""
        from mlplatform.serving.skew import skew_check
        from mlplatform.serving.smoke import smoke_test

        out = smoke_test(cfg, ws, base_url, n)
        if cfg.features.feature_views:
            try:
                out["skew"] = skew_check(cfg, ws, base_url)
            except Exception as err:  # noqa: BLE001 - recorded in summary.json and printed; the demo goes on
                out["skew"] = {"error": f"{type(err).__name__}: {err}"[:300]}
        return out

    def quality_job(self, cfg, ws, *, role: str = "stable", window: int | None = None, as_of=None,
                    events=None) -> dict[str, Any]:
        from mlplatform.monitoring import quality

        record = quality.new_record(cfg, role)
        record |= quality.label_quality(cfg, ws, role=role, window=window, as_of=as_of, events=events)
        return quality.write_record(ws, record)

    def report_sections(self):
        from mlplatform.report.classification import REPORT

        return REPORT


TASK = Classification()
