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


def push_source_name(view: str) -> str:
    return f"{view}_push"


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
            path=str(features_dir / f"{view.name}.parquet"),
            timestamp_field=EVENT_TIMESTAMP,
        )
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
    service = FeatureService(name=f"{cfg.name}_model", features=views, tags={"tenant": cfg.name})
    return [*entities.values(), *views, service]
