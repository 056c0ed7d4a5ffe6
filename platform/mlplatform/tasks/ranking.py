"""`task: ranking` (search, LETOR files): a query in, the top n items out.

Training: ranking/train.py (whole queries per split, click labels, NDCG@k, MRR, retrieval
recall@K). Serving: serving/ranking_predictor.py's RankingPredictor (retrieve, features, rank),
smoke-tested by serving/ranking_smoke.py. Monitoring: each served result list is logged
(prediction_log.RankingLog) and joined with click feedback (monitoring/quality.py); rankers log no
drift reference.
"""

from __future__ import annotations

from typing import Any


class Ranking:
    name = "ranking"
    drift_reference = False

    def training_set(self, cfg, ws):
        from mlplatform.ranking.train import ranking_training_set

        return ranking_training_set(cfg, ws)

    def train_and_log(self, cfg, ws, data, mlflow_run_id: str, pipeline_run_id: str,
                      lineage: dict[str, Any]) -> dict[str, Any]:
        from mlplatform.ranking.train import train_ranking_and_log

        return train_ranking_and_log(cfg, ws, data, mlflow_run_id, pipeline_run_id, lineage,
                                     baselines=self.baselines(cfg))

    def baselines(self, cfg):
        from mlplatform.ranking.baselines import baselines

        return baselines(cfg)

    def predictor(self, cfg, ws, *, alias: str | None = None, role: str = "stable"):
        from mlplatform.serving.ranking_predictor import RankingPredictor

        return RankingPredictor(cfg, ws, alias=alias, role=role)

    def prediction_log(self, cfg, ws, role: str):
        from mlplatform.monitoring.prediction_log import RankingLog

        return RankingLog(ws, cfg.name, role)

    def smoke_test(self, cfg, ws, base_url: str, n: int | None = None) -> dict[str, Any]:
        from mlplatform.serving.ranking_smoke import smoke_test

        return smoke_test(cfg, ws, base_url, n)

    def quality_job(self, cfg, ws, *, role: str = "stable", window: int | None = None, as_of=None,
                    events=None) -> dict[str, Any]:
        """`events` is not used: the labels are the click feedback files (monitoring/feedback.py)."""
        from mlplatform.monitoring import quality

        record = quality.new_record(cfg, role)
        record |= quality.ranking_quality(cfg, ws, role=role, window=window, as_of=as_of)
        return quality.write_record(ws, record)

    def report_sections(self):
        from mlplatform.report.ranking import REPORT

        return REPORT


TASK = Ranking()
