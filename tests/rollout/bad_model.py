"""A deliberately broken challenger for the live rollout test: it loads (the xgboost model of a
real version) but every prediction fails, so its success rate collapses."""

from mlplatform.training.xgboost_trainer import load_model  # noqa: F401  (the server calls it)


def train(*args, **kwargs):
    raise NotImplementedError("only for serving a broken challenger")


def predict(model, frame):
    raise RuntimeError("deliberately broken challenger")
