"""Feature store operations for a tenant, through Feast.

build_tables   raw data -> one parquet table per feature view (tenant builder, or raw columns)
apply          register entities, views and the feature service (`feast apply`)
materialize    load the latest values into the online store
training_frame point-in-time correct join of labelled events with features (offline store)
OnlineFeatures the serving side: latest values for a batch of entity keys (online store)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore, RepoConfig
from feast.type_map import feast_value_type_to_python_type
from feast.value_type import ValueType

from mlplatform.config import TenantConfig
from mlplatform.identity.refusal import redis_identity, refused
from mlplatform.data.ingest import load_table
from mlplatform.features.definitions import (EVENT_TIMESTAMP, feast_objects, list_features, row_id_name,
                                             rows_view_name, table_path)
from mlplatform.features.repo import store_config, write_repo
from mlplatform.plugins import resolve
from mlplatform.workspace import Workspace

# "before_event": ask for features as of this long before the event (Feast joins rows stamped <= t)
BEFORE_EVENT = pd.Timedelta(milliseconds=1)
# Value proto fields whose Python value is the field itself (Feast's converter returns them unchanged)
_SCALAR_VALUES = frozenset({"int32_val", "int64_val", "float_val", "double_val", "string_val", "bool_val", "bytes_val"})
_UUID_TYPES = (ValueType.UUID, ValueType.TIME_UUID)


def feature_refs(cfg: TenantConfig) -> list[str]:
    return [f"{v.name}:{f.name}" for v in cfg.features.feature_views for f in v.features]


def training_refs(cfg: TenantConfig) -> list[str]:
    """What the training join asks Feast for: a list view's scalars and the row id of its twin
    view in place of its lists; other views as they are."""
    refs = []
    for v in cfg.features.feature_views:
        lists = set(list_features(v))
        refs += [f"{v.name}:{f.name}" for f in v.features if f.name not in lists]
        if lists:
            refs.append(f"{rows_view_name(v.name)}:{row_id_name(v.name)}")
    return refs


def passthrough_tables(raw: pd.DataFrame, cfg: TenantConfig,
                       tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Default builder: each view's features are columns of the raw table, stamped at the row's time
    (auxiliary tables are not used)."""
    out = {}
    for view in cfg.features.feature_views:
        keys = [cfg.features.entity(e).join_key for e in view.entities]
        cols = keys + [cfg.data.timestamp] + [f.name for f in view.features]
        out[view.name] = raw[cols].rename(columns={cfg.data.timestamp: EVENT_TIMESTAMP})
    return out


def build_tables(cfg: TenantConfig, ws: Workspace, raw: pd.DataFrame) -> dict[str, int]:
    """Each feature view's table from the tenant's builder (mlplatform.contracts.FeatureBuilder) or
    the raw columns, written as parquet; returns the rows per view."""
    builder = resolve(cfg.features.builder) if cfg.features.builder else passthrough_tables
    # one signature: the snapshot's auxiliary tables (catalog, click logs), empty when data.tables is
    tables = builder(raw, cfg, {name: load_table(cfg, ws, name) for name in cfg.data.tables})
    out = ws.features_dir(cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for view in cfg.features.feature_views:
        if view.name not in tables:
            raise ValueError(f"feature builder {cfg.features.builder!r} returned no table for view {view.name!r}")
        table = tables[view.name].copy()
        missing = {f.name for f in view.features} - set(table.columns)
        if missing or EVENT_TIMESTAMP not in table.columns:
            raise ValueError(f"feature table {view.name!r} lacks columns {sorted(missing | ({EVENT_TIMESTAMP} - set(table.columns)))}")
        # microseconds: DuckDB (the offline store) cannot cast nanosecond tz timestamps
        table[EVENT_TIMESTAMP] = pd.to_datetime(table[EVENT_TIMESTAMP], utc=True).astype("datetime64[us, UTC]")
        if list_features(view):
            row_id = row_id_name(view.name)
            if row_id in table.columns:
                raise ValueError(f"feature table {view.name!r} has a column {row_id!r}: the name is reserved "
                                 "for the row ids of views with list features")
            table[row_id] = np.arange(len(table), dtype=np.int64)  # the table's row order: what ids index
        table.to_parquet(table_path(out, view.name), index=False)
        rows[view.name] = len(table)
    return rows


def open_store(cfg: TenantConfig, ws: Workspace, request_path: bool = False) -> FeatureStore:
    repo = write_repo(cfg, ws)
    if not request_path:
        return FeatureStore(repo_path=str(repo))
    # the same repo, configured as the request path reads it (features/repo.py, REQUEST_PATH_REDIS).
    # Feast expands ${VAR} only in a feature_store.yaml it reads (repo_config.py, load_repo_config):
    # a config built here expands the credentials' names itself, or Redis gets them literally
    config = store_config(cfg, ws, True)
    online = config["online_store"]
    if "connection_string" in online:
        online["connection_string"] = os.path.expandvars(online["connection_string"])
    return FeatureStore(repo_path=str(repo), config=RepoConfig(repo_path=repo, **config))


def apply(cfg: TenantConfig, ws: Workspace) -> FeatureStore:
    store = open_store(cfg, ws)
    store.apply(feast_objects(cfg, ws.features_dir(cfg.name)))
    return store


def materialize(cfg: TenantConfig, ws: Workspace, end: datetime | None = None) -> FeatureStore:
    """Load each view's latest values (within its TTL) as of `end` into the online store."""
    store = open_store(cfg, ws)
    end = end or datetime.now(timezone.utc)
    longest_ttl = max(v.ttl_days for v in cfg.features.feature_views)
    with refused("write", f"the online features of tenant {cfg.name!r}", redis_identity()):
        store.materialize(start_date=end - timedelta(days=longest_ttl), end_date=end)
    return store


def entity_frame(cfg: TenantConfig, events: pd.DataFrame) -> pd.DataFrame:
    """Events (with join keys and the tenant's timestamp) as a Feast entity dataframe."""
    ts = pd.to_datetime(events[cfg.data.timestamp], utc=True)
    if cfg.features.as_of == "before_event":
        ts = ts - BEFORE_EVENT
    out = events.copy()
    out[EVENT_TIMESTAMP] = ts
    return out


def training_frame(cfg: TenantConfig, ws: Workspace, events: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join: each event gets the feature values known at its time, never later ones.

    Returns the events in their original order with the feature columns added and request-derived
    features computed by the tenant's transform (the same code the predictor runs online).
    """
    if not cfg.features.feature_views:  # every input is in the events themselves (e.g. LETOR files)
        return apply_request_transform(cfg, events.reset_index(drop=True))
    store = open_store(cfg, ws)
    entity_df = entity_frame(cfg, events).reset_index(drop=True)
    entity_df["_row"] = range(len(entity_df))
    for view in cfg.features.feature_views:  # tables built before row ids existed: say so, not a DuckDB error
        path = table_path(ws.features_dir(cfg.name), view.name)
        if list_features(view) and row_id_name(view.name) not in pq.read_schema(path).names:
            raise ValueError(f"feature table {path} has no {row_id_name(view.name)!r} column: rebuild the "
                             "tables (the features step, or store.build_tables) with this version")
    job = store.get_historical_features(entity_df=entity_df, features=training_refs(cfg))
    joined = with_lists(cfg, ws, job.to_arrow()).to_pandas()  # what Feast's to_df does with the arrow table
    joined = joined.sort_values("_row").drop(columns=["_row", EVENT_TIMESTAMP]).reset_index(drop=True)
    return apply_request_transform(cfg, joined)


def with_lists(cfg: TenantConfig, ws: Workspace, joined: pa.Table) -> pa.Table:
    """Feast's joined table with each list view's row id replaced by that row's lists, taken from the
    view's offline table (null where Feast found no row); columns in the order Feast gives for
    `feature_refs` (entity columns, then each view's features)."""
    columns = {name: joined.column(name) for name in joined.column_names}
    for view in cfg.features.feature_views:
        lists = list_features(view)
        if not lists:
            continue
        ids = columns.pop(row_id_name(view.name))
        table = pq.read_table(table_path(ws.features_dir(cfg.name), view.name), columns=lists)
        for name in lists:
            columns[name] = table.column(name).take(ids)
    features = [f.name for v in cfg.features.feature_views for f in v.features]
    order = [c for c in columns if c not in set(features)] + features
    return pa.table({name: columns[name] for name in order})


def apply_request_transform(cfg: TenantConfig, df: pd.DataFrame) -> pd.DataFrame:
    if cfg.features.request.transform:
        df = resolve(cfg.features.request.transform)(df)
    return df


class OnlineFeatures:
    """Latest feature values for entity keys, read from the online store (serving side)."""

    def __init__(self, cfg: TenantConfig, ws: Workspace):
        self.cfg = cfg
        self.store = open_store(cfg, ws, request_path=True)
        self.refs = feature_refs(cfg)
        self.keys = cfg.features.join_keys
        # one feature per view stands for its row's event time (a row is written whole)
        self._view_of = {v.features[0].name: v.name for v in cfg.features.feature_views}
        self._ttl = {v.name: (v.ttl_days * 86400.0, [f.name for f in v.features]) for v in cfg.features.feature_views}
        self._shift = BEFORE_EVENT.total_seconds() if cfg.features.as_of == "before_event" else 0.0

    def lookup_at(self, entities: Mapping[str, Sequence], at: Sequence[float] | None = None
                  ) -> tuple[dict[str, list], dict[str, list]]:
        """`lookup_timed` as the offline point-in-time join would see it at the scored events' times
        `at` (s since the epoch per row; None: now): a view's row older than the view's TTL is
        dropped (its features and time None). Feast's online read returns the latest row however
        old (feast 0.67 checks no TTL on the online path; only its pre-computed vectors do), while
        the offline join (`get_historical_features`) leaves out rows older than the TTL, so without
        this a card idle past the TTL would be scored from state training never saw (cold there)."""
        values, times = self.lookup_timed(entities)
        n = len(next(iter(values.values()), []))
        ref = [time.time()] * n if at is None else at
        for view, stamps in times.items():
            ttl, names = self._ttl[view]
            old = [i for i, t in enumerate(stamps) if t is not None and t < ref[i] - self._shift - ttl]
            for i in old:
                stamps[i] = None
                for f in names:
                    values[f][i] = None
        return values, times

    def lookup(self, entities: Mapping[str, Sequence] | list[dict]) -> dict[str, list]:
        return self.lookup_timed(entities)[0]

    def lookup_timed(self, entities: Mapping[str, Sequence] | list[dict]) -> tuple[dict[str, list], dict[str, list]]:
        """`lookup`, and per view the event time (s since the epoch) of each row it read, None where
        the store had no row: Feast returns each value's event timestamp beside it (FeatureVector's
        `event_timestamps`, protos/feast/serving/ServingService.proto), the time the row was stamped
        with when written (materialised or pushed)."""
        """Feast's `get_online_features` for entity keys (columns {join key: values}, or one dict
        per row) -> {join key or feature name: values}, None where the store has no value.

        The same result as Feast's `OnlineResponse.to_dict()` (to_df and to_arrow are built on it),
        converted from the response proto directly: to_dict runs Feast's generic value converter per
        value, a third of a 200-entity lookup; scalar values need only the proto's oneof field.
        Columns as input skip Feast's rows-to-columns pass."""
        with refused("read", f"the online features of tenant {self.cfg.name!r}", redis_identity()):
            response = self.store.get_online_features(features=self.refs, entity_rows=entities)
        types = getattr(response, "_feature_types", {})  # what to_dict hands Feast's converter
        out: dict[str, list] = {}
        times: dict[str, list] = {}
        for name, vector in zip(response.proto.metadata.feature_names.val, response.proto.results):
            ftype = types.get(name)
            # Feast turns string values of UUID features into uuid.UUID: leave those to it
            fast = _SCALAR_VALUES if ftype not in _UUID_TYPES else _SCALAR_VALUES - {"string_val"}
            values = out[name] = []
            append = values.append
            for v in vector.values:
                which = v.WhichOneof("val")
                if which is None:
                    append(None)
                elif which in fast:
                    append(getattr(v, which))
                else:  # lists, maps, timestamps, json, decimals, ...: Feast's own conversion
                    append(feast_value_type_to_python_type(v, ftype))
            view = self._view_of.get(name)
            if view is not None and len(vector.event_timestamps) == len(values):
                times[view] = [None if val is None else ts.seconds + ts.nanos * 1e-9
                               for val, ts in zip(values, vector.event_timestamps)]
        return out, times

    def fetch(self, entity_rows: list[dict]) -> pd.DataFrame:
        """One row per request row, with the join keys and feature columns; unknown entities come
        back as nulls."""
        return pd.DataFrame(self.lookup(entity_rows))
