"""Typed tenant configuration: one `tenant.yaml` per tenant is the single source of truth.

Python loads it into `TenantConfig`; Helm takes the same file as values for `charts/tenant`
(its `values.schema.json` is generated from this model); Prometheus rules are rendered from it.
Unknown keys are errors, reported with the key's path. Importing this module has no side effects.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlplatform.contracts import check_plugins
from mlplatform.errors import UserError
from mlplatform.rollout.checks import default_checks

NAME_RE = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"  # usable as a Kubernetes namespace and an MLflow model name
DOTTED_RE = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"  # "package.module:function"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- data -------------------------------------------------------------------------------------

ColumnType = Literal["int", "float", "str", "bool", "datetime"]
TimeUnit = Literal["s", "ms", "us", "ns"]


class Column(Strict):
    name: str
    type: ColumnType
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    values: list[str | int] | None = Field(default=None, description="allowed categorical values")


class LabelRate(Strict):
    min: float = Field(ge=0, le=1)
    max: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> "LabelRate":
        if self.min > self.max:
            raise ValueError(f"label_rate.min ({self.min}) is above label_rate.max ({self.max})")
        return self


class Expectations(Strict):
    min_rows: int = Field(default=1, ge=0)
    max_rows: int | None = None
    label_rate: LabelRate | None = None
    unique_together: list[list[str]] = Field(
        default_factory=list, description="column sets that must be unique together, e.g. [[query_id, item_id]]")
    min_group_size: dict[str, int] = Field(
        default_factory=dict, description="column -> fewest rows per value (ranking: candidates per query)")
    values_in: dict[str, str] = Field(
        default_factory=dict,
        description="column -> 'table.column' whose values it must be among (auxiliary tables: the main table is "
                    "'main'), e.g. queries.query_id in main.query_id: every query has candidates")


class TableConfig(Strict):
    """An auxiliary table the generator writes next to the main one (e.g. a catalog or click logs).

    Ingested into the same snapshot (`<raw>/tables/<name>/`), validated with its own columns and
    expectations, readable with `mlplatform.data.ingest.load_table`."""

    columns: list[Column] = Field(min_length=1)
    expectations: Expectations = Expectations()


class LetorFiles(Strict):
    """LETOR / SVMlight ranking files (`label qid:Q 1:v 2:v ... # comment`), relative to the tenant file."""

    train: str
    valid: str | None = None
    test: str | None = None


class DataConfig(Strict):
    source: Literal["generator", "table", "letor"] = "generator"
    generator: str | None = Field(default=None, pattern=DOTTED_RE, description="dotted path of a seeded data generator")
    generator_args: dict[str, Any] = Field(default_factory=dict)
    path: str | None = Field(default=None, description="CSV/parquet file or folder of parquet partitions (source: table)")
    timestamp: str
    timestamp_unit: TimeUnit | None = Field(
        default=None, description="source: table: the timestamp column holds numbers of this unit counted from "
                                  "timestamp_origin; ingest converts them to UTC date/times")
    timestamp_origin: datetime | None = Field(
        default=None, description="with timestamp_unit: the instant the numbers count from (default: the Unix "
                                  "epoch, 1970-01-01T00:00:00Z); without a zone, UTC")
    label: str
    label_available_at: str | None = Field(default=None, description="column: when the label became known")
    label_delay_days: float = Field(default=0, ge=0)
    partition_by_day: bool = True
    columns: list[Column]
    expectations: Expectations = Expectations()
    tables: dict[str, TableConfig] = Field(default_factory=dict, description="auxiliary tables (generator source)")
    letor: LetorFiles | None = Field(default=None, description="source: letor: the ranking files")

    @model_validator(mode="after")
    def _source(self) -> "DataConfig":
        if self.source == "generator" and not self.generator:
            raise ValueError("data.generator is required when data.source is 'generator'")
        if self.source == "table" and not self.path:
            raise ValueError("data.path is required when data.source is 'table'")
        if self.source == "letor" and not self.letor:
            raise ValueError("data.letor is required when data.source is 'letor'")
        if self.timestamp_origin is not None and self.timestamp_unit is None:
            raise ValueError("data.timestamp_origin needs data.timestamp_unit (s, ms, us or ns)")
        if self.timestamp_unit is not None and self.source != "table":
            raise ValueError("data.timestamp_unit is for data.source 'table' (a generator writes date/times itself)")
        for name in self.tables:
            if name == "main" or not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"data.tables: {name!r} is not a usable table name (lowercase, not 'main')")
        names = [c.name for c in self.columns]
        for needed in (self.timestamp, self.label):
            if needed not in names:
                raise ValueError(f"column {needed!r} is used by data but not declared in data.columns")
        return self

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


# --- features ---------------------------------------------------------------------------------

# *_list: arrays (e.g. bucketed state a request transform aggregates at the scored event's time)
FeatureDtype = Literal["int64", "float64", "string", "bool", "int64_list", "float64_list"]


class Entity(Strict):
    name: str
    join_key: str
    description: str = ""


class Feature(Strict):
    name: str
    dtype: FeatureDtype = "float64"
    description: str = ""


class FeatureView(Strict):
    name: str
    entities: list[str] = Field(min_length=1)
    ttl_days: float = Field(default=30, gt=0)
    features: list[Feature] = Field(min_length=1)
    description: str = ""


class OnlineStore(Strict):
    type: Literal["sqlite", "redis"] = "sqlite"
    connection_string: str | None = Field(default=None, description="redis: host:port[,db=N]")


class FeatureRegistry(Strict):
    type: Literal["file", "sql"] = "file"
    path: str | None = Field(default=None, description="sql: SQLAlchemy URL, e.g. postgresql://…")


class RequestConfig(Strict):
    """What a prediction request carries besides entity keys, and features derived from it.

    `transform(df) -> df` runs on request fields joined with the fetched features; the same
    function builds the training set, so online and offline inputs cannot drift apart.
    """

    fields: list[Column] = Field(default_factory=list)
    transform: str | None = Field(default=None, pattern=DOTTED_RE)
    derived: list[Feature] = Field(default_factory=list, description="columns the transform adds")

    @model_validator(mode="after")
    def _transform_declared(self) -> "RequestConfig":
        if self.derived and not self.transform:
            raise ValueError("request.derived lists features but request.transform is not set")
        return self


class StreamConfig(Strict):
    """`mlplatform stream TENANT` (issue 14): events from a Redis stream, read in a consumer group,
    update one view's hourly bucket state and are pushed to the online store (a Feast PushSource)."""

    view: str = Field(description="the feature view whose bucket state the worker keeps")
    state: str = Field(pattern=DOTTED_RE, description="the bucket-state declaration (key, summed field, state "
                       "columns, horizon_hours), e.g. fraud_tenant.velocity:CUSTOMER")
    redis_url: str = "redis://127.0.0.1:6379/0"
    stream: str | None = Field(default=None, description="stream key (default mlplatform:<tenant>:events)")
    group: str = "features"
    batch: int = Field(default=500, gt=0, description="messages per read")
    linger_ms: int = Field(
        default=100, ge=0, le=5000, description="after a read of fewer than `batch` messages, wait this long for "
        "more before applying them: each round's Feast push costs ~10 ms of CPU whatever its size, so rounds of a "
        "few events cost several times more CPU per event (docs/fraud.md); adds up to this much to event -> online")
    claim_idle_ms: int = Field(default=30_000, ge=0, description="pending this long: a dead consumer's, claimed")
    freshness_slo_seconds: float = Field(
        default=5.0, gt=0, description="p99 of event time -> row written online (the worker's "
        "mlplatform_stream_event_age_seconds), and the age of the oldest unacknowledged event, stay under "
        "this: the tenant's freshness alerts (charts/tenant prometheusrule.yaml) fire above it")
    metrics_port: int = Field(default=9108, ge=1024, le=65535,
                              description="the worker's Prometheus /metrics port (the cluster's ServiceMonitor scrapes it)")


class FeaturesConfig(Strict):
    builder: str | None = Field(
        default=None,
        pattern=DOTTED_RE,
        description="dotted path: builder(raw_df, cfg, tables) -> {feature_view: DataFrame} (tables: data.tables, "
                    "maybe none); default: raw columns as one view",
    )
    as_of: Literal["at_event", "before_event"] = Field(
        default="at_event",
        description="before_event: join each row with features stamped strictly before it "
        "(for features whose rows include the event itself, such as velocity counters)",
    )
    request: RequestConfig = RequestConfig()
    stream: StreamConfig | None = None
    # Required (an empty list is fine, e.g. LETOR tenants whose inputs are all request fields):
    # charts/tenant/values.yaml carries placeholders for these, and Helm would merge a placeholder
    # into any tenant file that left the key out.
    entities: list[Entity]
    feature_views: list[FeatureView] = Field(
        description="may be empty when every input is a request field (LETOR files)")
    online_store: OnlineStore = OnlineStore()
    registry: FeatureRegistry = FeatureRegistry()

    @model_validator(mode="after")
    def _refs(self) -> "FeaturesConfig":
        known = {e.name for e in self.entities}
        for view in self.feature_views:
            for ent in view.entities:
                if ent not in known:
                    raise ValueError(f"feature view {view.name!r} uses unknown entity {ent!r} (known: {sorted(known)})")
        names = [f.name for v in self.feature_views for f in v.features]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"feature names must be unique across views: {sorted(dup)}")
        if self.stream and self.stream.view not in {v.name for v in self.feature_views}:
            raise ValueError(f"features.stream.view {self.stream.view!r} is not a feature view")
        # a derived feature named like a stored one would silently replace it in the transform's output
        clash = sorted(set(names) & {f.name for f in self.request.derived})
        if clash:
            raise ValueError(f"request.derived names features the views already store: {clash}")
        return self

    def entity(self, name: str) -> Entity:
        return next(e for e in self.entities if e.name == name)

    @property
    def join_keys(self) -> list[str]:
        return [e.join_key for e in self.entities]


# --- model ------------------------------------------------------------------------------------


class RayConfig(Strict):
    num_cpus: int = Field(default=2, ge=1)
    num_workers: int = Field(default=1, ge=1)


class TuneConfig(Strict):
    """A small Ray Tune random search before the final fit (training/tuning.py)."""
    enabled: bool = False
    num_samples: int = Field(default=4, ge=1, description="trials")
    space: dict[str, list[float | int]] = Field(
        default_factory=dict, description="param -> [low, high]: two integers draw an integer, else uniform")
    folds: int = Field(default=3, ge=1, description="validation folds a trial is scored on; the search selects "
                       "the highest mean - standard error over them")
    seed: int = 0
    time_budget_s: float | None = Field(default=None, gt=0, description="stop starting trials after this long")
    baseline: dict[str, float | int] | None = Field(
        default=None, description="a configuration scored beside the search (e.g. the library's defaults) and kept "
        "unless the best trial's lower bound exceeds its mean; `rounds` in it: exactly that many rounds, no early "
        "stopping")

    @field_validator("space")
    @classmethod
    def _ranges(cls, space: dict[str, list[float | int]]) -> dict[str, list[float | int]]:
        bad = [k for k, v in space.items() if len(v) != 2 or v[0] > v[1]]
        if bad:
            raise ValueError(f"tune.space {bad}: each needs [low, high] with low <= high")
        return space


class SplitConfig(Strict):
    validation_days: float = Field(default=7, gt=0, description="the newest days are the validation set")
    gap_days: float = Field(default=0, ge=0, description="days dropped between train and validation")
    column: str | None = Field(
        default=None, description="split by this column's values 'train' / 'valid' / 'test' instead of by time")
    min_validation_positives: int = Field(
        default=30, ge=1, description="classification: with fewer positives in the validation window, the rounds "
        "(and a tuning trial) are chosen over time_folds time folds of all rows instead (training/time_folds.py)")
    time_folds: int = Field(default=3, ge=1, description="classification: expanding time folds used when the "
                            "validation window is too thin; each fold's window holds an equal share of the positives")


class BaselinesConfig(Strict):
    """Simpler models trained and scored beside the model in the train step, on the same rows
    (training/baselines.py; which ones: the task's, mlplatform.tasks). Off for tiny test tenants."""
    enabled: bool = True
    rule_features: list[str] = Field(
        default_factory=list, description="classification: the rules baseline flags a row when any of these "
        "features exceeds its threshold (thresholds chosen on the training rows); empty: it picks up to two of "
        "model.features")


class ModelConfig(Strict):
    trainer: str = Field(default="mlplatform.training.xgboost_trainer:trainer", pattern=DOTTED_RE)
    features: list[str] = Field(min_length=1, description="model inputs, in order")
    params: dict[str, Any] = Field(default_factory=dict)
    num_boost_round: int = Field(default=200, ge=1)
    early_stopping_rounds: int | None = 20
    min_boost_rounds: int = Field(
        default=10, ge=1, description="the model keeps at least this many rounds (of those trained) when early "
        "stopping's best validation round comes earlier: a thin validation window can peak at round 1")
    imbalance: Literal["none", "scale_pos_weight", "auto"] = Field(
        default="scale_pos_weight", description="auto: weigh positives by the class ratio only when the training "
        "rows hold few of them (xgboost_trainer.AUTO_WEIGHT_BELOW)")
    split: SplitConfig = SplitConfig()
    ray: RayConfig = RayConfig()
    tune: TuneConfig = TuneConfig()
    baselines: BaselinesConfig = BaselinesConfig()

    @model_validator(mode="after")
    def _rule_features_are_inputs(self) -> "ModelConfig":
        unknown = [f for f in self.baselines.rule_features if f not in self.features]
        if unknown:
            raise ValueError(f"baselines.rule_features {unknown} are not in model.features")
        return self


# --- metrics and promotion ----------------------------------------------------------------------


class Costs(Strict):
    false_negative: float = Field(gt=0, description="cost of a missed positive (e.g. a fraud let through)")
    false_positive: float = Field(gt=0, description="cost of a false alarm (e.g. a blocked legitimate payment)")


class Gates(Strict):
    minimum: dict[str, float] = Field(default_factory=dict, description="metric -> lowest acceptable value")
    max_regression: dict[str, float] = Field(
        default_factory=dict, description="metric -> largest allowed drop below the champion"
    )
    allow_recorded_champion_metrics: bool = Field(
        default=False,
        description="promote even when the champion could not be scored on the candidate's validation rows, "
                    "comparing with the figures recorded when the champion was trained (another window, "
                    "registry/champion_eval.py); default: such a candidate is refused")


class ConfidenceConfig(Strict):
    """Bootstrap intervals of the offline metrics (training/confidence.py): over validation rows
    (classification) or queries (ranking), logged as `<metric>.ci_low` / `<metric>.ci_high`."""
    resamples: int = Field(default=200, ge=0, description="bootstrap resamples; 0: no intervals")
    level: float = Field(default=0.95, gt=0, lt=1)
    seed: int = 0


class MetricsConfig(Strict):
    primary: str = "pr_auc"
    recall_at_fpr: float = Field(default=0.01, gt=0, lt=1)
    costs: Costs | None = None
    gates: Gates = Gates()
    confidence: ConfidenceConfig = ConfidenceConfig()


# --- ranking (task: ranking) ----------------------------------------------------------------------


class ClickLabels(Strict):
    """Click logs as extra training labels, debiased by inverse propensity weighting.

    Position-based model: P(examine position k) = (1 / k) ** eta. For each (query, item) shown at
    least `min_impressions` times and not judged, the IPW click-through rate
    sum(clicked / P(examine position)) / impressions estimates P(click | examined); it is cut into
    grades by `grade_thresholds` and weighted by `weight` (judged pairs weigh 1)."""

    table: str = Field(description="auxiliary table (data.tables) holding the impressions")
    position: str = "position"
    clicked: str = "clicked"
    eta: float = Field(default=1.0, ge=0, description="position-bias exponent (from a randomisation experiment)")
    min_impressions: int = Field(default=3, ge=1)
    grade_thresholds: list[float] = Field(default=[0.1, 0.3, 0.55, 0.8], min_length=1)
    weight: float = Field(default=0.5, gt=0, le=1)


class HnswParams(Strict):
    """faiss IndexHNSWFlat: a graph; no training, memory ~ (d x 4 + m x 8) bytes per item."""

    m: int = Field(default=32, ge=4, le=128, description="links per node (more: better recall, more memory)")
    ef_construction: int = Field(default=80, ge=8, description="candidate list while building")
    ef_search: int = Field(default=1200, ge=8, description="candidate list per query (raised to k when below)")


class IvfParams(Strict):
    """faiss IndexIVFFlat: k-means cells, a query scans the `nprobe` nearest ones."""

    lists: int | None = Field(default=None, ge=1, description="cells; default 4 x sqrt(items), at most items / 39")
    nprobe: int = Field(default=32, ge=1, description="cells scanned per query")
    train_size: int = Field(default=100_000, ge=1000, description="items sampled to train the k-means")


class DenseIndexConfig(Strict):
    """How stage one's dense retrieval finds the nearest items: `exact` (faiss IndexFlatIP, every
    item scored: right for small catalogs, see docs/search.md "Scale" for where it stops fitting) or
    an approximate index that the features step builds, measures against exact and refuses below
    `min_recall`."""

    kind: Literal["exact", "hnsw", "ivf"] = "exact"
    hnsw: HnswParams = HnswParams()
    ivf: IvfParams = IvfParams()
    min_recall: float = Field(default=0.95, gt=0, le=1,
                              description="approximate only: recall@k against exact below this fails the build")
    recall_k: int | None = Field(default=None, ge=1, description="k of that recall; default retrieval.candidates")
    recall_queries: int = Field(default=500, ge=10, description="queries it is measured on (the snapshot's)")
    seed: int = 0


class EncoderConfig(Strict):
    """The dense query encoder. `onnx`: the model exported to ONNX by the features step (cached by a
    hash of the weights, logged with the index) and run by ONNX Runtime; `torch`: the reference."""

    runtime: Literal["onnx", "torch"] = "onnx"
    quantize: Literal["none", "int8"] = Field(
        default="none", description="int8: dynamic quantisation, kept only when it passes max_ndcg_drop")
    max_ndcg_drop: float = Field(default=0.005, ge=0, description="int8 gate: NDCG@10 fp32 - int8 above this keeps fp32")
    max_recall_drop: float = Field(default=0.01, ge=0, description="int8 gate: the same for recall@candidates")


class RetrievalConfig(Strict):
    """Stage one: candidate generation (a tenant class named by dotted path)."""

    retriever: str = Field(pattern=DOTTED_RE, description="class with build(cfg, ws, out) and load(cfg, path)")
    candidates: int = Field(default=1000, ge=1, description="stage 1: candidates retrieved per query")
    rerank: int = Field(default=200, ge=1, description="stage 2: the best-fused candidates the ranker scores")
    recall_at: list[int] = Field(default=[100, 1000], min_length=1)
    query_features: list[Feature] = Field(
        default_factory=list, description="query-item features the retriever computes at request time")
    dense_index: DenseIndexConfig = DenseIndexConfig()
    encoder: EncoderConfig = EncoderConfig()

    @model_validator(mode="after")
    def _funnel(self) -> "RetrievalConfig":
        if self.rerank > self.candidates:
            raise ValueError(f"retrieval.rerank ({self.rerank}) is above retrieval.candidates ({self.candidates})")
        return self


class RankingFeedback(Strict):
    """Online quality of a served ranking tenant: user feedback (clicks) joined with the result lists
    the predictor logged (mlplatform.monitoring.quality; the files: mlplatform.monitoring.feedback)."""

    window: int = Field(default=2000, ge=1, description="newest result lists with feedback per model version")
    simulator: str | None = Field(
        default=None, pattern=DOTTED_RE,
        description="embedded demos without users: fn(cfg, ws, role=, seed=) that writes simulated feedback "
                    "for the logged result lists (the loop calls it)")


class RankingConfig(Strict):
    group: str = Field(description="query id column: rows of one query are ranked against each other")
    item: str = Field(description="document / item id column")
    query_text: str | None = Field(default=None, description="column with the query string (retrieval)")
    k_values: list[int] = Field(default=[5, 10], min_length=1, description="NDCG@k reported for each k")
    relevant_min: int = Field(default=1, ge=1, description="a label at or above this is relevant (MRR, recall)")
    max_label: int = Field(default=4, ge=1, le=30)
    top_n: int = Field(default=10, ge=1, description="results returned when the request names no n")
    max_n: int = Field(default=100, ge=1, description="largest n a request may ask for")
    weight: str | None = Field(default=None, description="optional per-row training weight column")
    baselines: list[str] = Field(
        default_factory=list, description="single features whose ordering is reported as a baseline (e.g. bm25)")
    clicks: ClickLabels | None = None
    retrieval: RetrievalConfig | None = None
    feedback: RankingFeedback = RankingFeedback()


# --- serving and monitoring -----------------------------------------------------------------------


class Slo(Strict):
    p99_latency_ms: float = Field(default=50, gt=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)


class Traffic(Strict):
    """The traffic the tenant expects: what the design review sizes capacity and A/B tests for."""

    requests_per_second: float = Field(default=10, gt=0, description="peak requests per second (capacity)")
    requests_per_day: float | None = Field(default=None, gt=0, description="requests per day (experiment "
                                           "duration); default: requests_per_second x 86400")

    @property
    def per_day(self) -> float:
        return self.requests_per_day or self.requests_per_second * 86_400


class ServingConfig(Strict):
    model_alias: str = "champion"
    port: int = Field(default=8080, ge=1024, le=65535)
    slo: Slo = Slo()
    traffic: Traffic = Traffic()
    smoke_requests: int = Field(default=200, ge=1)


class DriftConfig(Strict):
    psi_threshold: float = Field(default=0.2, gt=0)
    ks_threshold: float = Field(default=0.1, gt=0, le=1)
    bins: int = Field(default=10, ge=2, le=100)
    for_minutes: float = Field(default=10, gt=0)
    window_rows: int = Field(default=5000, ge=10, description="predictor: drift over the last window_rows to 2x rows")
    min_rows: int = Field(default=200, ge=1, description="predictor: no drift gauge until the window holds this many rows")


class RetrainingPolicy(Strict):
    """Which alerts start a retraining run (mlplatform.monitoring.webhook), and how often at most."""

    enabled: bool = True
    alerts: list[str] = Field(
        default=["MLPlatformFeatureDrift", "MLPlatformFeatureDriftKS", "MLPlatformScoreDrift",
                 "MLPlatformModelQualityDecay"],
        description="alert names (charts/tenant/templates/prometheusrule.yaml) that start a retraining run")
    cooldown_minutes: float = Field(default=60, ge=0, description="at most one retraining run per tenant this often")


# --- rollout (shadow -> canary steps -> promote or roll back; mlplatform.rollout) -----------------

class RolloutCheck(Strict):
    """One analysis check: a PromQL query that must return one number within [min, max].
    No result ("no data", e.g. no traffic yet) counts as a failed check."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    promql: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "RolloutCheck":
        if self.min is None and self.max is None:
            raise ValueError(f"rollout check {self.name!r} needs a min or a max threshold")
        return self


class RolloutConfig(Strict):
    interval_seconds: float = Field(default=30, gt=0, description="time between analysis runs")
    window: str = Field(default="1m", pattern=r"^[0-9]+(ms|s|m|h)$", description="PromQL range of the checks")
    shadow_seconds: float = Field(default=60, ge=0, description="shadow phase length (0: straight to canary)")
    step_weights: list[int] = Field(default=[10, 25, 50], min_length=1, description="canary traffic percent per step")
    max_weight: int = Field(default=50, ge=1, le=100, description="promote after passing at this weight")
    failed_checks_limit: int = Field(default=2, ge=1, description="failed analyses (in a row) before rollback")
    checks: list[RolloutCheck] = Field(
        default_factory=lambda: [RolloutCheck(**c) for c in default_checks()],
        description="default: mlplatform.rollout.checks (success rate, p99 ratio, score KS)")

    @model_validator(mode="after")
    def _steps(self) -> "RolloutConfig":
        w = self.step_weights
        if any(b <= a for a, b in zip(w, w[1:])) or w[0] < 1 or w[-1] > self.max_weight:
            raise ValueError(f"rollout.step_weights {w} must increase, start at 1 or more and end at or below "
                             f"max_weight ({self.max_weight})")
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"rollout.checks: duplicate names in {names}")
        return self


QUANTITY_RE = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"  # Kubernetes resource quantity
# an image with a tag or a digest; RE2-compatible (Helm checks it too), so "not latest" is left to
# the cluster policy check (mlplatform.verify.policy), which rejects `latest` in rendered manifests
IMAGE_RE = r"^[a-z0-9][a-z0-9._/:-]*(:[\w][\w.-]{0,127}|@sha256:[a-f0-9]{64})$"


class Quantities(Strict):
    cpu: str = Field(pattern=QUANTITY_RE)
    memory: str = Field(pattern=QUANTITY_RE)


class Resources(Strict):
    """Container requests and limits (both always set: the cluster policy rejects a container without them)."""

    requests: Quantities = Quantities(cpu="100m", memory="512Mi")
    limits: Quantities = Quantities(cpu="1", memory="1Gi")


class CanaryConfig(Strict):
    enabled: bool = False
    traffic_percent: int = Field(default=10, ge=0, le=100, description="share of requests for the canary")
    model_alias: str = Field(default="challenger", description="MLflow alias the canary predictor serves")


class ShadowConfig(Strict):
    enabled: bool = False
    model_alias: str = Field(default="challenger", description="MLflow alias of the mirrored (shadow) predictor")


class RetrainingConfig(Strict):
    enabled: bool = True
    schedule: str = Field(default="0 3 * * 0", description="cron schedule of the recurring train_deploy run")
    pipeline: str = Field(default="train_deploy", pattern=r"^[a-z_][a-z0-9_]*$")


class RolloutClusterConfig(Strict):
    """The tenant's rollout controller in the cluster (charts/tenant rollout-controller.yaml): a
    Deployment running `mlplatform rollout-controller`; rendered only with canary and shadow on."""

    enabled: bool = True
    prometheus_url: str = Field(
        default="http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090",
        description="Prometheus the rollout checks query (kube-prometheus-stack's Service)")
    poll_seconds: int = Field(default=60, ge=1, description="how often the controller looks for a new challenger")
    resources: Resources = Resources(requests=Quantities(cpu="20m", memory="256Mi"),
                                     limits=Quantities(cpu="500m", memory="768Mi"))


class QualityJobConfig(Strict):
    """The delayed-label quality job as a CronJob (charts/tenant quality-cronjob.yaml): runs
    `mlplatform quality-job`, which pushes mlplatform_model_quality to the Pushgateway."""

    enabled: bool = True
    schedule: str = Field(default="*/30 * * * *", description="cron schedule of the quality job")
    pushgateway: str = Field(default="pushgateway.mlplatform.svc.cluster.local:9091",
                             description="Prometheus Pushgateway (charts/mlplatform) the job pushes to")
    resources: Resources = Resources(requests=Quantities(cpu="25m", memory="384Mi"),
                                     limits=Quantities(cpu="1", memory="1Gi"))


class StreamWorkerClusterConfig(Strict):
    """The stream worker's Deployment (`mlplatform stream`), rendered for a tenant with features.stream."""

    enabled: bool = Field(default=True, description="render the Deployment when features.stream is set")
    replicas: int = Field(default=1, ge=0, description="consumers of one group share the stream (and claim a dead one's messages)")
    # requests sized to the 4-CPU / 16 GB runner budget (tests/charts/test_budget.py); the limit lets it burst
    resources: Resources = Resources(requests=Quantities(cpu="50m", memory="384Mi"), limits=Quantities(cpu="1", memory="1Gi"))


class TrainingClusterConfig(Strict):
    """The KubeRay RayJob a training step runs as."""

    # requests sized so the whole kind stack and one RayJob fit a 4-CPU runner (docs/cluster.md,
    # "Resource budget"); the limits let training use the CPUs the node has free
    head: Resources = Resources(requests=Quantities(cpu="200m", memory="1Gi"), limits=Quantities(cpu="1", memory="2Gi"))
    worker: Resources = Resources(requests=Quantities(cpu="500m", memory="2Gi"), limits=Quantities(cpu="2", memory="3Gi"))
    ttl_seconds_after_finished: int = Field(default=600, ge=0, description="delete the finished RayCluster after")
    active_deadline_seconds: int = Field(default=3600, ge=60, description="fail the job when it runs longer")


class QuotaConfig(Strict):
    """ResourceQuota of the tenant namespace: the sum of everything the tenant may run at once."""

    requests_cpu: str = Field(default="6", pattern=QUANTITY_RE)
    requests_memory: str = Field(default="12Gi", pattern=QUANTITY_RE)
    limits_cpu: str = Field(default="10", pattern=QUANTITY_RE)
    limits_memory: str = Field(default="16Gi", pattern=QUANTITY_RE)
    pods: int = Field(default=20, ge=1)


class Namespaces(Strict):
    """Namespaces of the shared services; defaults equal platform/cluster/versions.env (a test checks)."""

    platform: str = Field(default="mlplatform", description="charts/mlplatform: MLflow, Postgres, Redis, webhook")
    gateway: str = Field(default="kserve", description="where the KServe ingress Gateway object lives")
    gateway_proxy: str = Field(default="envoy-gateway-system", description="where the Envoy proxies run")
    monitoring: str = Field(default="monitoring", description="kube-prometheus-stack (Prometheus scrapes from here)")
    kubeflow: str = Field(default="kubeflow", description="KFP standalone (pipeline runs execute here)")
    kuberay: str = Field(default="kuberay-system", description="KubeRay operator")


class ClusterConfig(Strict):
    """Cluster-only settings read by charts/tenant; embedded mode ignores them.

    Every field has a default (mirrored in charts/tenant/values.yaml; a test keeps both equal),
    so a tenant file needs no `cluster:` block.
    """

    image: str = Field(
        default="ghcr.io/mlplatform/mlplatform:0.1.0", pattern=IMAGE_RE, description="predictor and pipeline image"
    )
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=2, ge=1)
    resources: Resources = Resources()
    canary: CanaryConfig = CanaryConfig()
    shadow: ShadowConfig = ShadowConfig()
    retraining: RetrainingConfig = RetrainingConfig()
    rollout: RolloutClusterConfig = RolloutClusterConfig()
    quality_job: QualityJobConfig = QualityJobConfig()
    training: TrainingClusterConfig = TrainingClusterConfig()
    stream_worker: StreamWorkerClusterConfig = StreamWorkerClusterConfig()
    quota: QuotaConfig = QuotaConfig()
    namespace_labels: dict[str, str] = Field(default_factory=dict, description="extra labels on the tenant namespace")
    namespaces: Namespaces = Namespaces()
    mlflow_tracking_uri: str = "http://mlflow.mlplatform.svc.cluster.local:5000"
    redis_address: str = Field(default="redis.mlplatform.svc.cluster.local:6379", description="Feast online store")
    platform_database: str = Field(
        default="postgresql+psycopg://postgres.mlplatform.svc.cluster.local:5432/mlflow",
        description="SQLAlchemy URL (no user, no password) of the platform's PostgreSQL database: the tenant's own "
        "role (feast_<slug>, created by its onboarding Job) keeps its Feast registry and prediction log there, in "
        "a schema of its own")
    feast_registry: str | None = Field(
        default=None, description="SQLAlchemy URL of another Feast SQL registry (PostgreSQL); unset: the tenant's "
        "own schema in platform_database, as its own role")
    prediction_log: str | None = Field(
        default=None, description="SQLAlchemy URL of another prediction log database (PostgreSQL) the predictors "
        "append to and the quality CronJob reads; unset: the tenant's own schema in platform_database")
    kfp_host: str = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    gateway_name: str = "kserve-ingress-gateway"
    gateway_local_port: int = Field(
        default=8080, ge=1024, le=65535, description="local port `make gateway` forwards the Gateway to "
        "(platform/cluster/versions.env GATEWAY_LOCAL_PORT, which install/tenants.sh passes; NOTES print it)")
    hostname: str | None = Field(default=None, description="HTTPRoute host; default <tenant>.mlplatform.local")
    runbook_base_url: str = Field(
        default="https://github.com/mlplatform/mlplatform/blob/main/docs/runbooks.md",
        description="alerts link to <runbook_base_url>#<alert name in lower case>",
    )

    @model_validator(mode="after")
    def _replicas(self) -> "ClusterConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"cluster.min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self


# --- the live loop (`mlplatform loop`, make demo-loop: embedded only) -----------------------------


class LoopShiftArgs(Strict):
    """The data generator's arguments through which it lives through the loop's drift."""

    factor: str = Field(description="argument that takes loop.drift.factor")
    from_day: str = Field(description="argument that takes the first shifted day")
    days: str = Field(description="argument (set in data.generator_args) holding how many days it generates")


class LoopDrift(Strict):
    """The drift the loop injects after its baseline: requests get `column` x `factor` (2 decimals,
    capped at `max`). The data the webhook retrains on lives through the same shift from
    `from_fraction` of its days on, through `generator` (None: that data is not shifted)."""

    column: str = Field(description="request field (features.request.fields) the loop multiplies")
    factor: float = Field(gt=0)
    max: float | None = Field(default=None, description="cap on the shifted value, e.g. the field's declared max")
    from_fraction: float = Field(default=0.5, gt=0, lt=1, description="retraining data: shifted from here on")
    generator: LoopShiftArgs | None = None


class LoopConfig(Strict):
    drift: LoopDrift | None = Field(default=None, description="required by `mlplatform loop` for a drift alert")


# --- who is told (alert routing: mlplatform.monitoring.alert_routing) ---------------------------

TEAM_RE = r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$"


class Receiver(Strict):
    """Where a team's alerts go: one Alertmanager receiver per team. No credentials here (the tenant
    file is a Helm values file and lives in git): a URL that embeds a token belongs in the
    platform's Alertmanager configuration, not in a tenant file."""

    webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s@]+$", description="POSTed alerts")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                              description="needs the platform's SMTP settings (alert_routing.Smtp)")

    @model_validator(mode="after")
    def _one(self) -> "Receiver":
        if (self.webhook_url is None) == (self.email is None):
            raise ValueError("owner.receiver needs exactly one of webhook_url, email")
        return self


class OwnerConfig(Strict):
    team: str = Field(pattern=TEAM_RE, description="label `team` on every alert of the tenant; Alertmanager "
                      "routes on it to the team's receiver")
    receiver: Receiver


class QualityJobConfig(Strict):
    max_age_hours: float = Field(default=24, gt=0, description="MLPlatformQualityJobStale fires when the newest "
                                 "quality record (mlplatform quality) is older than this, or there is none")


# --- the tenant ---------------------------------------------------------------------------------


class TenantConfig(Strict):
    name: str = Field(pattern=NAME_RE)
    description: str = ""
    task: Literal["binary_classification", "ranking"] = "binary_classification"
    data: DataConfig
    features: FeaturesConfig
    model: ModelConfig
    metrics: MetricsConfig = MetricsConfig()
    ranking: RankingConfig | None = Field(default=None, description="required when task is ranking")
    serving: ServingConfig = ServingConfig()
    drift: DriftConfig = DriftConfig()
    retraining: RetrainingPolicy = RetrainingPolicy()
    rollout: RolloutConfig = RolloutConfig()
    loop: LoopConfig = LoopConfig()
    owner: OwnerConfig | None = Field(default=None, description="the team alerts are routed to; none: the "
                                      "platform's default receiver")
    quality: QualityJobConfig = QualityJobConfig()
    cluster: ClusterConfig = ClusterConfig()

    # where the file was loaded from; tenant-relative paths resolve against it
    source_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _task(self) -> "TenantConfig":
        if self.task == "ranking":
            if self.ranking is None:
                raise ValueError("task 'ranking' needs a ranking section (group, item, ...)")
            names = {c.name for c in self.data.columns}
            for what in ("group", "item", "query_text", "weight"):
                col = getattr(self.ranking, what)
                if col is not None and col not in names:
                    raise ValueError(f"ranking.{what}: column {col!r} is not declared in data.columns")
            if self.ranking.clicks and self.ranking.clicks.table not in self.data.tables:
                raise ValueError(f"ranking.clicks.table: {self.ranking.clicks.table!r} is not in data.tables")
            if self.ranking.retrieval and not self.ranking.query_text:
                raise ValueError("ranking.retrieval needs ranking.query_text (the column holding the query)")
        else:
            if self.ranking is not None:
                raise ValueError(f"a ranking section is only for task 'ranking' (task is {self.task!r})")
            if not self.features.entities or not self.features.feature_views:
                raise ValueError("features.entities and features.feature_views need at least one entry")
        return self

    @model_validator(mode="after")
    def _model_inputs_exist(self) -> "TenantConfig":
        unknown = [f for f in self.model.features if f not in self.available_features]
        if unknown:
            raise ValueError(f"model.features not produced by any feature view or request field: {unknown}")
        return self

    @model_validator(mode="after")
    def _loop_drift_refs(self) -> "TenantConfig":
        drift = self.loop.drift
        if drift and drift.column not in [c.name for c in self.features.request.fields]:
            raise ValueError(f"loop.drift.column: {drift.column!r} is not a request field (features.request.fields)")
        if drift and drift.generator and drift.generator.days not in self.data.generator_args:
            raise ValueError(f"loop.drift.generator.days: {drift.generator.days!r} is not in data.generator_args")
        return self

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in {"default", "kube-system", "mlplatform"}:
            raise ValueError(f"tenant name {v!r} is reserved")
        return v

    @property
    def available_features(self) -> list[str]:
        """Every column a model may take as input: stored features, request fields, derived ones."""
        req = self.features.request
        retrieval = self.ranking.retrieval if self.ranking else None
        return (
            [f.name for v in self.features.feature_views for f in v.features]
            + [c.name for c in req.fields]
            + [f.name for f in req.derived]
            + ([f.name for f in retrieval.query_features] if retrieval else [])
        )

    @property
    def tenant_dir(self) -> Path:
        return self.source_path.parent if self.source_path else Path.cwd()


class TenantConfigError(ValueError, UserError):
    """A tenant file that cannot be used; the message names the file and the key path."""


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {err.error_count()} problem(s) in tenant configuration"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def parse_tenant(raw: dict[str, Any], path: Path | str = "<memory>") -> TenantConfig:
    path = Path(path)
    if not isinstance(raw, dict):
        raise TenantConfigError(f"{path}: a tenant file must be a YAML mapping, got {type(raw).__name__}")
    try:
        cfg = TenantConfig.model_validate(raw)
    except ValidationError as err:
        raise TenantConfigError(_format_errors(path, err)) from None
    return cfg.model_copy(update={"source_path": path.resolve() if path.exists() else None})


def load_tenant(path: str | Path) -> TenantConfig:
    """Load and validate a tenant file, and check the plug-ins it names against their contracts
    (mlplatform.contracts). `path` may be a file or a tenant folder holding tenant.yaml."""
    path = Path(path)
    if path.is_dir():
        path = path / "tenant.yaml"
    if not path.exists():
        raise TenantConfigError(f"{path}: no such tenant file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise TenantConfigError(f"{path}: not valid YAML: {err}") from None
    cfg = parse_tenant(raw, path)
    problems = check_plugins(cfg)
    if problems:
        raise TenantConfigError("\n".join([f"{path}: {len(problems)} problem(s) with the plug-ins it names",
                                           *(f"  - {p}" for p in problems)]))
    return cfg


def tenant_json_schema() -> dict[str, Any]:
    """JSON schema of a tenant file (used as Helm's values.schema.json for charts/tenant)."""
    schema = TenantConfig.model_json_schema(mode="validation")
    schema.get("properties", {}).pop("source_path", None)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return schema


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
