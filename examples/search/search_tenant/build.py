"""The encoder side of the features step (SearchRetriever.build): which encoders embed the catalog
and the queries, the ONNX export they come from (search_tenant.encoder, cached by the weights'
hash), the int8 gate (search_tenant.encoder_gate), and the figures the training run logs to MLflow.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.workspace import Workspace
from search_tenant import encoder as encoders
from search_tenant import encoder_gate


@dataclass
class Encoders:
    items: object  # embeds the catalog: fp32 always (offline, where int8 saves nothing)
    int8: object | None  # the int8 export, when the tenant file asks for it
    export_dir: Path | None  # the cached export (ONNX runtime)
    export: dict  # its record
    items_key: str  # what the catalog embeddings depend on (reused only when it and the titles match)


def cache_dir(cfg: TenantConfig, ws: Workspace) -> Path:
    """Exports by hash, beside the index: a rebuild of the same weights reuses them."""
    return ws.tenant(cfg.name) / "encoder-cache"


def encoders_for(cfg: TenantConfig, ws: Workspace) -> Encoders:
    enc = cfg.ranking.retrieval.encoder
    if enc.runtime == "torch":
        return Encoders(encoders.TorchEncoder(), None, None, {}, f"torch:{encoders.weights_sha256()}")
    folder, record = encoders.export(cache_dir(cfg, ws), enc.quantize)
    int8 = encoders.OnnxEncoder(folder, "int8") if enc.quantize == "int8" else None
    return Encoders(encoders.OnnxEncoder(folder, "fp32"), int8, folder, record,
                    f"onnx-fp32:{record['weights_sha256']}:{record['torch']}:{record['opset']}")


def query_encoder(cfg: TenantConfig, raw: pd.DataFrame, position: pd.Series, vectors: np.ndarray,
                  enc: Encoders, out: Path) -> tuple[object, dict]:
    """The encoder the predictor will run on queries, installed into `out/encoder/` (ONNX), and
    its record: runtime, precision, the export (hash, seconds, reused) and the int8 gate's verdict."""
    target = Path(out) / "encoder"
    if enc.export_dir is None:
        shutil.rmtree(target, ignore_errors=True)
        return enc.items, {"runtime": "torch", "precision": "fp32"}
    record = {"export": {k: enc.export[k] for k in ("weights_sha256", "torch", "opset", "seconds", "files", "reused")}}
    chosen = enc.items
    precision = "fp32"
    if enc.int8 is not None:
        record["int8_gate"] = encoder_gate.gate(cfg, raw, position, vectors, enc.items, enc.int8)
        precision = record["int8_gate"]["precision"]
        chosen = enc.int8 if precision == "int8" else enc.items
    return chosen, encoders.install(enc.export_dir, precision, out) | record


def recall_queries(cfg: TenantConfig, raw: pd.DataFrame) -> list[str]:
    """The snapshot's distinct query texts (a seeded sample of at most dense_index.recall_queries):
    what the approximate index is measured on."""
    texts = list(dict.fromkeys(raw[cfg.ranking.query_text].astype(str)))
    n = cfg.ranking.retrieval.dense_index.recall_queries
    if len(texts) > n:
        pick = np.random.default_rng(cfg.ranking.retrieval.dense_index.seed).choice(len(texts), n, replace=False)
        texts = [texts[i] for i in sorted(pick)]
    return texts


def metrics_of(info: dict) -> dict[str, float]:
    """Numbers from the build that training logs as MLflow metrics of its run (mlplatform.ranking.train)."""
    out = {"index_items": float(info["items"]), "index_build_seconds": float(info["dense_index"]["build_seconds"])}
    if "recall_vs_exact" in info["dense_index"]:
        out["index_recall_vs_exact"] = float(info["dense_index"]["recall_vs_exact"])
    enc = info["encoder"]
    out["encoder_onnx"] = float(enc["runtime"] == "onnx")
    out["encoder_int8"] = float(enc["precision"] == "int8")
    gate = enc.get("int8_gate")
    if gate:
        for precision in ("fp32", "int8"):
            for name, value in gate[precision].items():
                if name != "queries":
                    out[f"encoder_{precision}_{name}"] = float(value)
    return out
