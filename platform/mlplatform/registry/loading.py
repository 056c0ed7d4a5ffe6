"""A registered version by alias, loaded by the trainer that made it: what the predictors serve and
what the training step scores the champion with (training/champion.py)."""

from __future__ import annotations

from typing import Any

from mlplatform.config import TenantConfig
from mlplatform.contracts import Trainer
from mlplatform.errors import UserError
from mlplatform.identity.refusal import AccessDenied, current_identity, is_refusal
from mlplatform.registry.mlflow_registry import connect, unavailable, unavailable_message
from mlplatform.training.trainers import resolve_trainer
from mlplatform.workspace import Workspace


class ModelLoadError(RuntimeError, UserError):
    """The model cannot be served (no such alias, missing tags, unloadable model or feature store)."""


def load_by_alias(cfg: TenantConfig, ws: Workspace, alias: str) -> tuple[Any, Trainer, Any]:
    """The registered version behind `alias`, its trainer (from the version's `trainer` tag: the
    trainer that made it, whatever the tenant file names now) and the loaded model:
    (model_version, trainer, model). Raises ModelLoadError."""
    from mlflow.exceptions import MlflowException

    name = cfg.name
    try:
        mv = connect(ws).get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if is_refusal(err):
            raise AccessDenied(current_identity(), "read", f"registered model {name!r}",
                               err.message.splitlines()[0]) from None
        if unavailable(err):  # a server or database down is not "no such alias"
            raise ModelLoadError(f"cannot serve {name!r}: {unavailable_message(ws, err)}") from None
        raise ModelLoadError(f"cannot serve {name!r}: MLflow ({ws.mlflow_uri}) has no version with alias "
                             f"{alias!r} of registered model {name!r} ({err.message.splitlines()[0]})") from None
    dotted = dict(mv.tags).get("trainer") or cfg.model.trainer
    try:
        trainer = resolve_trainer(dotted)
    except ImportError as err:
        raise ModelLoadError(f"{name} v{mv.version}: its trainer cannot be imported: {err}") from err
    try:
        model = trainer.load(f"models:/{name}/{mv.version}")
    except Exception as err:  # noqa: BLE001 - any flavour's loading error is a load failure
        raise ModelLoadError(f"{name} v{mv.version}: load_model failed ({dotted}): {err}") from err
    return mv, trainer, model
