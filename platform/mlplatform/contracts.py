"""What a tenant plugs in by dotted path in its tenant file, as `typing.Protocol`s, and the check
`mlplatform.config.load_tenant` runs on every path a tenant file names.

| tenant-file field            | contract            | called by                                        |
|------------------------------|---------------------|--------------------------------------------------|
| `data.generator`             | `DataGenerator`     | data/ingest.py: `fn(out_dir, **data.generator_args)` |
| `features.builder`           | `FeatureBuilder`    | features/store.py: `fn(raw, cfg, tables)`        |
| `features.request.transform` | `RequestTransform`  | features/store.py, the predictor: `fn(df)`       |
| `features.stream.state`      | `BucketState`       | features/stream.py (`mlplatform stream`)         |
| `ranking.retrieval.retriever`| `Retriever`         | the features step (`build`), training and the ranking predictor (`load`, then the rest) |
| `ranking.feedback.simulator` | `FeedbackSimulator` | loop.py: `fn(cfg, ws, role=, seed=)`             |
| `model.trainer`              | `Trainer` (+ optional `MatrixScorer`) | the training step (`train`, `log`), champion scoring and the predictors (`load`, `predict`) |

`loop.drift.generator` names arguments the loop passes to `data.generator`: they are checked too.

`check_plugins(cfg)` imports each named module and checks that the object has every member of its
contract and can be called the way the platform calls it (positional arity, keyword names); it
returns the problems, each naming the tenant-file field, the dotted path and the missing member.
docs/onboarding.md shows the smallest working example of each contract.

This module imports nothing from mlplatform.config (config imports it to check a tenant file as it
loads it): a plug-in's `cfg` is annotated `TenantConfig` below, an alias of Any.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mlplatform.plugins import resolve
from mlplatform.workspace import Workspace

if TYPE_CHECKING:  # annotations only: importing pandas here would slow down loading any tenant file
    import numpy as np
    import pandas as pd

TenantConfig = Any  # mlplatform.config.TenantConfig (not imported: see above)


# --- data -----------------------------------------------------------------------------------------


class DataGenerator(Protocol):
    """`data.generator`: writes a seeded dataset under `out_dir`: the main table as parquet files
    (any layout below `out_dir`), each auxiliary table of `data.tables` under
    `out_dir/tables/<name>/`. Takes `data.generator_args` as keyword arguments."""

    def __call__(self, out_dir: Path, /, **generator_args: Any) -> Any: ...


# --- features -------------------------------------------------------------------------------------


class FeatureBuilder(Protocol):
    """`features.builder`: the raw (main) table -> one table per feature view, each holding the
    view's join keys, `event_timestamp` and its declared features. `tables` holds the snapshot's
    auxiliary tables (`data.tables`) by name: an empty mapping when the tenant declares none."""

    def __call__(self, raw: pd.DataFrame, cfg: TenantConfig, tables: Mapping[str, pd.DataFrame], /
                 ) -> Mapping[str, pd.DataFrame]: ...


class RequestTransform(Protocol):
    """`features.request.transform`: request fields joined with the fetched features -> the same
    columns plus `features.request.derived`. The same function builds the training set. It gets a
    DataFrame; with an attribute `columnar = True` the predictor may hand it a dict of numpy columns
    (datetimes as UTC datetime64[ns]) instead and expects one back."""

    def __call__(self, df: pd.DataFrame, /) -> pd.DataFrame: ...


class BucketState(Protocol):
    """`features.stream.state`: an hourly bucket-state declaration the stream worker keeps per
    entity (features/stream.py): events carry `key` and `value`; the view stores `state` = [hours,
    counts, sums] lists within the last `horizon_hours` (fraud_tenant.velocity.Velocity)."""

    key: str
    value: str
    state: list[str]
    horizon_hours: int


# --- ranking --------------------------------------------------------------------------------------


class Retriever(Protocol):
    """`ranking.retrieval.retriever`: candidate generation, named as a class. `build` and `load` are
    called on the class (class methods); the rest on what `load` returns. Positions are row
    numbers of `catalog`. Optional: `embed_queries(queries, cache=False)` (the predictor caches
    query vectors when present), `info` (recorded with the training run; its "metrics", a mapping
    of names to numbers, are logged as MLflow metrics of the run) and `compare_index(index_cfg,
    queries, k)` (a dense index as the DenseIndexConfig says against exact search on the queries:
    a mapping of figures, the training step's `hnsw_index` baseline, mlplatform.ranking.baselines)."""

    catalog: pd.DataFrame  # one row per item: the `ranking.item` column; `title` is returned with results when present

    @classmethod
    def build(cls, cfg: TenantConfig, ws: Workspace, out: Path, /) -> Mapping[str, Any]:
        """The features step: index the workspace's snapshot into the folder `out` (which the
        platform logs with the training run, ranking/index.py); returns a JSON-able record."""
        ...

    @classmethod
    def load(cls, cfg: TenantConfig, path: Path, /) -> Retriever:
        """Training and serving: the index `build` saved in `path` (FileNotFoundError when there is
        none). The predictor passes a copy downloaded from the version's MLflow run."""
        ...

    def search(self, query: str, k: int, qvec: np.ndarray | None = None, /) -> tuple[np.ndarray, Any]:
        """Serving: the top k positions (fused), and scores that `pair_features` may reuse."""
        ...

    def pair_features(self, query: str, positions: np.ndarray, qvec: np.ndarray | None = None,
                      scores: Any = None, /) -> Mapping[str, np.ndarray]:
        """Serving: `ranking.retrieval.query_features` for items at `positions` under one query."""
        ...

    def features_for_pairs(self, frame: pd.DataFrame, query_col: str, item_col: str, /) -> pd.DataFrame:
        """Training: the same query-item features for (query, item) rows."""
        ...

    def positions_of(self, item_ids: Sequence[Any], /) -> np.ndarray:
        """Catalog positions of item ids."""
        ...

    def retrieve_many(self, queries: Sequence[str], k: int, /) -> list[Mapping[str, np.ndarray]]:
        """Evaluation: per query, {retriever name: top k positions} (recall@K of each and the fusion)."""
        ...


class FeedbackSimulator(Protocol):
    """`ranking.feedback.simulator`: embedded demos without users: writes simulated feedback for the
    result lists `role` logged (mlplatform.monitoring.feedback) and returns what it did."""

    def __call__(self, cfg: TenantConfig, ws: Workspace, /, *, role: str, seed: int) -> Mapping[str, Any]: ...


# --- trainer --------------------------------------------------------------------------------------
# `model.trainer` names an object ("package.module:object") that trains one model family and
# serves it back: the training step calls `train` and `log`, the champion evaluation and the
# predictors call `load` and `predict`. The platform's own: training/xgboost_trainer.py and
# training/lightgbm_ranker.py (`...:trainer`). Versions registered before trainers were objects name
# a module function in their `trainer` tag (`mlplatform.training.xgboost_trainer:train`);
# training/trainers.py adapts such a module, so they still load and serve.

class Trained(Protocol):
    """What `Trainer.train` returns; the training step logs all of it to MLflow."""

    model: Any
    params: dict[str, Any]  # the library's parameters, logged as run params
    best_iteration: int
    importance: dict[str, float]  # per model input; empty: no importance plot


@runtime_checkable
class Trainer(Protocol):
    def train(self, cfg: Any, train_df: Any, valid_df: Any, storage: Path | None = None) -> Trained:
        """Fit on `train_df` (early stopping on `valid_df`); `storage`: a folder for Ray's files."""

    def predict(self, model: Any, frame: Any) -> Any:
        """Scores (1-D, higher = more positive / ranked first) of a DataFrame's rows; the model
        reads its own input columns from the frame."""

    def load(self, uri: str) -> Any:
        """The model logged by `log`, from an MLflow model URI (`models:/name/version`)."""

    def log(self, model: Any, signature: Any, input_example: Any) -> Any:
        """Log the model to the active MLflow run under the artifact path `model`; returns MLflow's
        ModelInfo (its `model_uri` is what gets registered)."""


@runtime_checkable
class MatrixScorer(Protocol):
    """Optional, besides Trainer: scores a float matrix (rows x the model's inputs, in its order)
    without a DataFrame, the predictor's pandas-free path (serving/fast_path.py)."""

    def predict_matrix(self, model: Any, x: Any) -> Any: ...


# --- the check ------------------------------------------------------------------------------------


def named_plugins(cfg: TenantConfig) -> list[tuple[str, str, type, Mapping[str, Any]]]:
    """(tenant-file field, dotted path, contract, keyword arguments from the file) of every plug-in
    the tenant names."""
    data, features = cfg.data, cfg.features
    retrieval = cfg.ranking.retrieval if cfg.ranking else None
    generator = data.generator if data.source == "generator" else None
    shift = cfg.loop.drift.generator if cfg.loop.drift else None  # the arguments the loop adds
    named = [
        ("data.generator", generator, DataGenerator, data.generator_args),
        ("loop.drift.generator", generator if shift else None, DataGenerator,
         {shift.factor: 1.0, shift.from_day: 0} if shift else {}),
        ("features.builder", features.builder, FeatureBuilder, {}),
        ("features.request.transform", features.request.transform, RequestTransform, {}),
        ("features.stream.state", features.stream.state if features.stream else None, BucketState, {}),
        ("ranking.retrieval.retriever", retrieval.retriever if retrieval else None, Retriever, {}),
        ("ranking.feedback.simulator", cfg.ranking.feedback.simulator if cfg.ranking else None, FeedbackSimulator, {}),
        ("model.trainer", cfg.model.trainer, Trainer, {}),
    ]
    return [(field, dotted, contract, kwargs) for field, dotted, contract, kwargs in named if dotted]


def check_plugins(cfg: TenantConfig) -> list[str]:
    """Problems with the plug-ins a tenant names (empty: all fit their contracts)."""
    problems = []
    for field, dotted, contract, kwargs in named_plugins(cfg):
        try:
            plugin = resolve(dotted)
        except ImportError as err:
            problems.append(f"{field}: {err}")
            continue
        if contract is Trainer and inspect.isfunction(plugin):
            continue  # a trainer named as a module function (the older form): training/trainers.py adapts it
        problems += [f"{field}: {dotted} {p} ({contract_name(contract)})" for p in fits(plugin, contract, kwargs)]
    return problems


def contract_name(contract: type) -> str:
    return f"{contract.__module__}.{contract.__qualname__}"


def fits(plugin: Any, contract: type, kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """What keeps `plugin` from fitting `contract`: missing members, and methods (or the plug-in
    itself, for a callable contract) that cannot take the arguments the platform passes.
    `kwargs`: keyword arguments from the tenant file (for a contract taking **kwargs)."""
    problems = []
    for name, (spec, on_class) in _members(contract).items():
        if name == "__call__":
            if not callable(plugin):
                problems.append("is not callable")
                continue
            target, bound = plugin, True
        elif not _has(plugin, name):
            problems.append(f"has no member {name!r}")
            continue
        elif spec is None:  # a data member: present is all we can know before load()
            continue
        else:
            target = getattr(plugin, name)
            # called on the instance `load` returns: a plain function looked up on the class wants `self`
            bound = on_class or not (isinstance(plugin, type) and inspect.isfunction(inspect.getattr_static(plugin, name)))
        problem = _call_problem(target, spec, bound, kwargs or {})
        if problem:
            problems.append(problem if name == "__call__" else f"{name}: {problem}")
    return problems


def _has(plugin: Any, name: str) -> bool:
    """An attribute, or a data member the class declares (`catalog: pd.DataFrame`) and sets in __init__."""
    classes = inspect.getmro(plugin if isinstance(plugin, type) else type(plugin))
    return hasattr(plugin, name) or any(name in vars(k).get("__annotations__", {}) for k in classes)


def _members(contract: type) -> dict[str, tuple[inspect.Signature | None, bool]]:
    """The contract's members: name -> (the signature the platform calls it with, without self or
    cls, or None for a data member; whether it is called on the class the tenant file names)."""
    members: dict[str, tuple[inspect.Signature | None, bool]] = {}
    for klass in reversed(contract.__mro__):
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        for name in getattr(klass, "__annotations__", {}):
            members[name] = (None, False)
        for name, value in vars(klass).items():
            if name.startswith("_") and name != "__call__":
                continue
            func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            if inspect.isfunction(func):
                params = list(inspect.signature(func).parameters.values())
                sig = inspect.Signature(params if isinstance(value, staticmethod) else params[1:])
                members[name] = (sig, isinstance(value, (classmethod, staticmethod)))
    return members


def _call_problem(target: Any, spec: inspect.Signature, bound: bool, kwargs: Mapping[str, Any]) -> str | None:
    """Whether `target` accepts every call the contract's signature allows: the required positional
    arguments alone and with the optional ones, the keyword-only ones, and `kwargs`."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return None
    positional = [p for p in spec.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keywords = {p.name: None for p in spec.parameters.values() if p.kind == p.KEYWORD_ONLY}
    if any(p.kind == p.VAR_KEYWORD for p in spec.parameters.values()):
        keywords |= dict(kwargs)
    self_ = [] if bound else [None]
    for args in {len(required), len(positional)}:
        try:
            sig.bind(*self_, *[None] * args, **keywords)
        except TypeError as err:
            names = [p.name for p in positional[:args]] + [f"{k}=" for k in keywords]
            return f"cannot be called as ({', '.join(names)}): its signature is {sig} ({err})"
    return None
