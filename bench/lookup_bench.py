"""Feature lookup: the platform's Feast online call (what the predictor runs per request) beside
Feast's documented `to_dict` conversion and a direct SQLite read of the same online store, for 1
and 200 entities, taking turns call by call.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.common import TARGETS, pct, ratio


def run(tenant: Path, home: Path, p: dict) -> dict:
    import gc
    import sqlite3

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from mlplatform.config import load_tenant
    from mlplatform.features.store import OnlineFeatures
    from mlplatform.serving.server import freeze_startup_heap
    from mlplatform.workspace import Workspace

    cfg, ws = load_tenant(tenant), Workspace(home)
    online = OnlineFeatures(cfg, ws)
    db_path = ws.feature_repo(cfg.name) / "online_store.db"
    conn = sqlite3.connect(db_path)
    version = online.store.config.entity_key_serialization_version
    views = [(f"{online.store.project}_{v.name}", cfg.features.entity(v.entities[0]).join_key) for v in cfg.features.feature_views]
    # the entity ids themselves, from the offline feature tables (what a caller would send)
    import pandas as pd
    import pyarrow.parquet as pq

    ids = {}
    for v in cfg.features.feature_views:
        jk = cfg.features.entity(v.entities[0]).join_key
        # pyarrow, not pandas: the pandas metadata of a table with list columns (bucket state) names
        # an Arrow dtype pandas cannot parse back, even for the one column read here
        table = pq.read_table(ws.features_dir(cfg.name) / f"{v.name}.parquet", columns=[jk])
        ids[jk] = pd.unique(table.column(jk).to_numpy())
    rng = np.random.default_rng(0)

    def direct(batch: tuple[dict, list]) -> dict:
        """The same values read straight from SQLite: serialize keys, select, decode the protos."""
        result = {}
        for table, jk in views:
            ek = [serialize_entity_key(EntityKey(join_keys=[jk], entity_values=[Value(int64_val=k)]), version)
                  for k in batch[0][jk]]
            q = f'select entity_key, feature_name, value from "{table}" where entity_key in ({",".join("?" * len(ek))})'
            for key, name, value in conn.execute(q, ek):
                v = Value.FromString(value)
                result.setdefault(name, {})[key] = getattr(v, v.WhichOneof("val")) if v.WhichOneof("val") else None
        return result

    # "feast": the platform's call (OnlineFeatures.lookup, what the predictor runs per request: key
    # columns in, values out of the response proto); "feast_to_dict": Feast's documented conversion
    # (to_df and to_arrow are built on it) on row dicts, as the platform called it before
    calls = (("feast", lambda batch: online.lookup(batch[0])),
             ("feast_to_dict", lambda batch: online.store.get_online_features(
                 features=online.refs, entity_rows=batch[1]).to_dict()),
             ("sqlite_direct", direct))
    out = {}
    # measured in a process set up as the server is (start-up heap frozen): otherwise one full garbage
    # collection of this process's heap (~0.5 s on a busy machine) lands in a 100-call sample's p99
    freeze_startup_heap()
    try:
        for n in (1, 200):
            columns = [{jk: [int(x) for x in rng.choice(ids[jk], n)] for jk in ids} for _ in range(50)]
            batches = [(c, [dict(zip(c, r)) for r in zip(*c.values())]) for c in columns]  # (columns, rows)
            reps = p["lookup_n"] if n == 1 else max(20, p["lookup_n"] // 10)
            for _, fn in calls:
                for b in batches[:5]:
                    fn(b)
            lat: dict[str, list] = {name: [] for name, _ in calls}
            for i in range(reps):  # the calls take turns: a busy moment hits all of them alike
                for name, fn in calls:
                    t = time.perf_counter()
                    fn(batches[i % len(batches)])
                    lat[name].append((time.perf_counter() - t) * 1000)
            res = {name: {"n": reps, "p50_ms": pct(v, 50), "p99_ms": pct(v, 99)} for name, v in lat.items()}
            res["ratio_p50"] = ratio(res["feast"]["p50_ms"], res["sqlite_direct"]["p50_ms"])
            res["ratio_p99"] = ratio(res["feast"]["p99_ms"], res["sqlite_direct"]["p99_ms"])
            res["target_p99_ms"] = TARGETS["lookup_p99_ms_1" if n == 1 else "lookup_p99_ms_200"]
            out[f"entities_{n}"] = res
    finally:
        gc.unfreeze()
    out["features"] = len(online.refs)
    out["store"] = "Feast SQLite online store (embedded mode)"
    out["call"] = "mlplatform.features.store.OnlineFeatures.lookup (Feast get_online_features)"
    return out


def markdown(f: dict) -> list[str]:
    L: list[str] = []
    if f.get("status", "ok") != "ok":  # skipped or failed: say so, keep the rest of the report
        return ["## Feature lookup", "", str(f['status']), ""]
    L += ["## Feature lookup (Feast online store vs. direct SQLite read of the same store)", "",
          "Feast: the platform's call, `OnlineFeatures.lookup` (Feast `get_online_features` with the key "
          "columns, values read from the response proto; what the predictor runs per request). "
          "`to_dict`: the same Feast call on row dicts with `OnlineResponse.to_dict()` (to_df and to_arrow "
          "are built on it). The direct read serializes the entity keys the way Feast does, selects, and "
          "decodes the value protos. The three take turns call by call, in a process with its start-up "
          "heap frozen as the server's is.", "",
          "| entities | Feast p50 / p99 ms | to_dict p50 / p99 ms | direct p50 / p99 ms | ratio Feast/direct p50 / p99 "
          "| target p99 |", "|---|---|---|---|---|---|"]
    for n in (1, 200):
        v = f[f"entities_{n}"]
        td = v.get("feast_to_dict", {})
        L.append(f"| {n} | {v['feast']['p50_ms']} / {v['feast']['p99_ms']} | {td.get('p50_ms', '-')} / "
                 f"{td.get('p99_ms', '-')} | {v['sqlite_direct']['p50_ms']} / {v['sqlite_direct']['p99_ms']} | "
                 f"{v['ratio_p50']} / {v['ratio_p99']} | < {v['target_p99_ms']} ms |")
    return L
