"""Feast objects (entities, sources, feature views, a feature service) built from a tenant file.

Used programmatically by `store.apply`, and by the generated `definitions.py` in each tenant's
feature repo, so `feast apply` / `feast materialize` from the command line see the same objects.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Bool, Float64, Int64, String

from mlplatform.config import TenantConfig

FEAST_TYPES = {"int64": Int64, "float64": Float64, "string": String, "bool": Bool,
               "int64_list": Array(Int64), "float64_list": Array(Float64)}
KEY_TYPES = {"int": ValueType.INT64, "str": ValueType.STRING}
EVENT_TIMESTAMP = "event_timestamp"
# Views with list features get a row id column `<view>__row_id` in their offline table and an
# offline-only twin view `<view>__rows` serving just that id: the training join asks Feast for the id
# and takes the lists from the table by it (store.training_frame), so Feast's point-in-time join
# carries one int64 per joined row instead of the lists (it pairs each event with every row of the
# entity within the TTL before keeping the latest).


def push_source_name(view: str) -> str:
    return f"{view}_push"


def table_path(features_dir: Path, view: str) -> Path:
    return features_dir / f"{view}.parquet"


def list_features(view) -> list[str]:
    """The view's list-typed features (config.FeatureView)."""
    return [f.name for f in view.features if f.dtype.endswith("_list")]


def rows_view_name(view: str) -> str:
    return f"{view}__rows"


def row_id_name(view: str) -> str:
    return f"{view}__row_id"


def key_value_type(cfg: TenantConfig, join_key: str) -> ValueType:
    declared = {c.name: c.type for c in cfg.data.columns}
    return KEY_TYPES.get(declared.get(join_key, "int"), ValueType.INT64)


def feast_objects(cfg: TenantConfig, features_dir: Path) -> list:
    entities = {
        e.name: Entity(name=e.name, join_keys=[e.join_key], value_type=key_value_type(cfg, e.join_key),
                       description=e.description)
        for e in cfg.features.entities
    }
    views = []
    for view in cfg.features.feature_views:
        source = FileSource(
            name=f"{view.name}_source",
            path=str(table_path(features_dir, view.name)),
            timestamp_field=EVENT_TIMESTAMP,
        )
        if list_features(view):
            # same table, entities, TTL and timestamp as the view: Feast picks the same row for an
            # event in both; offline only (materialize skips it, the online store never holds it)
            views.append(FeatureView(
                name=rows_view_name(view.name), entities=[entities[e] for e in view.entities],
                ttl=timedelta(days=view.ttl_days), schema=[Field(name=row_id_name(view.name), dtype=Int64)], source=source,
                online=False, description=f"row ids of {view.name} (training joins)", tags={"tenant": cfg.name},
            ))
        if cfg.features.stream and cfg.features.stream.view == view.name:
            # the stream worker pushes fresh rows (online); training still reads the parquet table
            source = PushSource(name=push_source_name(view.name), batch_source=source)
        views.append(
            FeatureView(
                name=view.name,
                entities=[entities[e] for e in view.entities],
                ttl=timedelta(days=view.ttl_days),
                schema=[Field(name=f.name, dtype=FEAST_TYPES[f.dtype]) for f in view.features],
                source=source,
                online=True,
                description=view.description,
                tags={"tenant": cfg.name},
            )
        )
    served = [v for v in views if v.online]
    service = FeatureService(name=f"{cfg.name}_model", features=served, tags={"tenant": cfg.name})
    return [*entities.values(), *views, service]
