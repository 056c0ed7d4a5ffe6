"""What every task's predictor shares: a `kserve.Model` serving the registered version behind an
MLflow alias, loaded by the trainer that made it (registry/loading.py), with the Prometheus labels
of that version and role.

A predictor adds `prepare(version)` (its own inputs and checks, raising ModelLoadError; called
before the version counts as loaded), `started(version)` (its monitoring, once the labels exist) and
`predict()`. Readiness is load()'s verdict: kserve's default start() would set it unconditionally.
"""

from __future__ import annotations

from typing import Any

from kserve import Model

from mlplatform.config import TenantConfig
from mlplatform.registry.loading import load_by_alias
from mlplatform.serving.metrics import ServingMetrics, check_role, default_metrics
from mlplatform.workspace import Workspace


class ServedModel(Model):
    # refusals of an inference request beyond 400/404, by status (the served OpenAPI document)
    ERROR_STATUSES: dict[int, str] = {}

    def __init__(self, cfg: TenantConfig, ws: Workspace, *, alias: str | None = None, role: str = "stable",
                 metrics: ServingMetrics | None = None):
        super().__init__(cfg.name)
        self.cfg, self.ws = cfg, ws
        self.alias = alias or cfg.serving.model_alias
        self.role = check_role(role)
        self.metrics = metrics or default_metrics()
        self.model_version: str | None = None

    def load(self) -> bool:
        mv, self.trainer, self.model = load_by_alias(self.cfg, self.ws, self.alias)
        self.prepare(mv)
        self.model_version = str(mv.version)
        self._labels = {"tenant": self.cfg.name, "model": self.cfg.name, "version": self.model_version,
                        "role": self.role}
        self.metrics.duration.labels(**self._labels)  # the family shows up in /metrics before the first request
        self.started(mv)
        self.ready = True
        return self.ready

    def prepare(self, mv: Any) -> None:
        """The predictor's inputs and checks for registered version `mv` (raise ModelLoadError)."""

    def started(self, mv: Any) -> None:
        """Monitoring and background work, once the version's labels exist."""

    def request_schemas(self) -> dict[str, dict]:
        """JSON Schema of the request bodies accepted, {"v1": ..., "v2": ...} (serving/openapi.py)."""
        return {}

    def start(self) -> None:
        """Readiness is load()'s verdict (kserve's default start() sets ready unconditionally)."""

    def labels(self) -> dict[str, str]:
        return getattr(self, "_labels", None) or {"tenant": self.cfg.name, "model": self.cfg.name,
                                                  "version": "none", "role": self.role}
