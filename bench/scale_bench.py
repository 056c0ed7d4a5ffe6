"""Dense retrieval as the catalog grows: exact vs approximate (HNSW, IVF) at 3k, 100k and 1M items.

    python -m bench.scale_bench [--quick] [--json out.json]

Catalogs of generated items: clustered synthetic unit vectors of MiniLM's dimension (384) around
many centres of uneven size, queries drawn from the same distribution (random unit vectors would put
every item at nearly the same distance, which makes approximate recall meaningless). For each size
and index kind, built by the search tenant's own code (search_tenant.dense, the tenant file's
DenseIndexConfig defaults; IVF also with a larger nprobe): build seconds (2 threads), the index's
size (written with faiss.write_index: what the predictor holds in memory), p50/p99 latency of one
query's top 1,000 on one thread (as the predictor searches), and recall@1000 against exact on the
same queries. Exact is the baseline in the same run. Full mode: 3k, 100k, 1M; quick (CI): 3k, 10k.
The retrieval stage's budget (docs/search.md, "Latency budget") gives the largest catalog exact
search fits: exact's cost is linear in the items, extrapolated from the largest point measured.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import pct, pyplot, section_main

DIM = 384
K = 1000
BUDGET_MS = 8.0  # docs/search.md, Latency budget: the `retrieve` stage (BM25 + dense top K + fusion)
PARAMS = {True: {"sizes": [3_000, 10_000], "queries": 50, "recall_queries": 50},
          False: {"sizes": [3_000, 100_000, 1_000_000], "queries": 300, "recall_queries": 300}}
KINDS = {"exact": {"kind": "exact"}, "hnsw": {"kind": "hnsw"}, "ivf": {"kind": "ivf"},
         "ivf nprobe 128": {"kind": "ivf", "ivf": {"nprobe": 128}}}


def clustered(n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n items and `queries` queries: unit vectors around n/300 centres (at least 20) with
    Zipf-like cluster sizes, as product embeddings group by category and brand."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(20, n // 300), DIM)).astype(np.float32)
    weights = 1.0 / np.arange(1, len(centres) + 1) ** 0.7
    weights /= weights.sum()

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, DIM), dtype=np.float32)
        for start in range(0, m, 100_000):  # in blocks: 1M x 384 float64 noise would be 3 GB
            size = min(100_000, m - start)
            x = centres[rng.choice(len(centres), size=size, p=weights)] + 0.6 * rng.normal(size=(size, DIM))
            out[start:start + size] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    return draw(n), draw(queries)


def latencies(index, queries: np.ndarray) -> list[float]:
    from search_tenant import dense

    dense.search(index, queries[:3], K)  # first-call costs
    out = []
    for q in queries:
        t = time.perf_counter()
        dense.search(index, q[None, :], K)
        out.append((time.perf_counter() - t) * 1000)
    return out


def measure(items: np.ndarray, queries: np.ndarray, kind: dict, work: Path, recall_n: int) -> dict:
    import faiss

    from mlplatform.config import DenseIndexConfig
    from search_tenant import dense

    cfg = DenseIndexConfig.model_validate(kind)
    faiss.omp_set_num_threads(2)
    t = time.monotonic()
    index = dense.build(items, cfg)
    build_s = time.monotonic() - t
    dense.tune(index, cfg, K)
    path = work / "scale.faiss"
    faiss.write_index(index, str(path))
    size_mb = path.stat().st_size / 2**20
    path.unlink()
    faiss.omp_set_num_threads(1)  # the predictor: one query at a time, one thread
    lat = latencies(index, queries)
    recall = 1.0 if cfg.kind == "exact" else dense.recall_against_exact(index, items, queries[:recall_n], K)
    params = {"exact": {}, "hnsw": cfg.hnsw.model_dump(),
              "ivf": cfg.ivf.model_dump() | {"lists_used": dense.ivf_lists(len(items), cfg)}}[cfg.kind]
    del index
    gc.collect()
    return {"kind": cfg.kind, "params": params, "build_s": round(build_s, 2), "index_mb": round(size_mb, 1),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), f"recall_at_{K}": round(recall, 4), "queries": len(lat)}


def run(p: dict, work: Path, quick: bool) -> dict:
    import faiss

    q = PARAMS[quick]
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in q["sizes"]:
        items, queries = clustered(n, q["queries"], seed=n)
        for name, kind in KINDS.items():
            print(f"bench: scale {n:,} items, {name}", flush=True)
            rows.append({"items": n, "index": name} | measure(items, queries, kind, work, q["recall_queries"]))
        del items
        gc.collect()
    faiss.omp_set_num_threads(2)
    exact = [r for r in rows if r["kind"] == "exact"]
    largest = exact[-1]
    per_item_ms = largest["p99_ms"] / largest["items"]
    fits = [r["items"] for r in exact if r["p99_ms"] <= BUDGET_MS]
    return {"status": "ok", "dim": DIM, "k": K, "budget_ms": BUDGET_MS, "rows": rows,
            "exact_fits_budget_up_to_items": int(BUDGET_MS / per_item_ms) if per_item_ms else None,
            "exact_largest_measured_within_budget": max(fits) if fits else None,
            "data": "clustered synthetic unit vectors (n/300 centres, Zipf-like sizes), queries from the same mixture",
            "threads": {"build": 2, "search": 1}}


def _advice(sc: dict) -> str:
    """The approximate index to switch to, from the figures: at the largest size, the fastest (p99)
    of those whose recall@1000 reaches the tenant file's default min_recall (0.95)."""
    from mlplatform.config import DenseIndexConfig

    floor = DenseIndexConfig().min_recall
    top = max(r["items"] for r in sc["rows"])
    ok = [r for r in sc["rows"] if r["items"] == top and r["kind"] != "exact" and r["recall_at_1000"] >= floor]
    if not ok:
        return f"At {top:,} items no approximate index here reaches recall@1000 {floor}: tune before switching."
    best = min(ok, key=lambda r: r["p99_ms"])
    below = [r["index"] for r in sc["rows"] if r["items"] == top and r["kind"] != "exact" and r not in ok]
    return (f"Past that, at {top:,} items, the fastest index reaching recall@1000 {floor} (the default "
            f"`min_recall`) is **{best['index']}** (`dense_index: {{kind: {best['kind']}}}` with {best['params']}): "
            f"p99 {best['p99_ms']} ms vs exact's {next(r['p99_ms'] for r in sc['rows'] if r['items'] == top and r['kind'] == 'exact')} ms"
            + (f"; below that recall here, so refused by the build's gate: {', '.join(below)}." if below else "."))


def markdown(sc: dict, img_rel: str, images: list[str]) -> list[str]:
    if sc.get("status") != "ok":
        return ["## Scale (dense retrieval: exact vs approximate)", "", str(sc.get("status")), ""]
    L = ["## Scale (dense retrieval: exact vs approximate as the catalog grows)", "",
         f"`bench/scale_bench.py`: {sc['data']}, dimension {sc['dim']}; indexes built by the search tenant's "
         f"`search_tenant.dense` with the tenant file's defaults (`DenseIndexConfig`); build on "
         f"{sc['threads']['build']} threads, each query's top {sc['k']:,} on {sc['threads']['search']} thread as "
         f"the predictor searches; recall@{sc['k']} against exact on the same queries (exact is the baseline).", "",
         "| items | index | build s | index MB | p50 ms | p99 ms | recall@1000 vs exact |", "|---|---|---|---|---|---|---|"]
    for r in sc["rows"]:
        L.append(f"| {r['items']:,} | {r['index']} | {r['build_s']} | {r['index_mb']} | {r['p50_ms']} | "
                 f"{r['p99_ms']} | {r['recall_at_1000']} |")
    L += ["", f"Exact search's p99 grows linearly with the catalog: at the retrieval stage's budget of "
          f"{sc['budget_ms']:g} ms it fits up to about **{sc['exact_fits_budget_up_to_items']:,} items** "
          f"(extrapolated from the largest point; the largest measured point within budget: "
          f"{sc['exact_largest_measured_within_budget']:,} items). {_advice(sc)}", ""]
    if "bench_scale.png" in images:
        L += [f"![dense retrieval latency and recall by catalog size]({img_rel}/bench_scale.png)", ""]
    return L


def plot(sc: dict, img: Path) -> list[str]:
    """bench_scale.png: p50 (and dotted p99) of a top-1000 query by catalog size and index, with the budget."""
    if sc.get("status") != "ok":
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, name in enumerate(dict.fromkeys(r["index"] for r in sc["rows"])):
        pts = [r for r in sc["rows"] if r["index"] == name]
        x, colour = [r["items"] for r in pts], f"C{i}"
        ax.plot(x, [max(r["p50_ms"], 1e-3) for r in pts], marker="o", color=colour,
                label=f"{name} (recall@1000 {min(r['recall_at_1000'] for r in pts):.3f}-{max(r['recall_at_1000'] for r in pts):.3f})")
        ax.plot(x, [max(r["p99_ms"], 1e-3) for r in pts], ls=":", marker=".", color=colour, alpha=0.6)
    ax.axhline(sc["budget_ms"], color="red", ls="--", lw=1, label=f"retrieval budget {sc['budget_ms']:g} ms")
    ax.set(xscale="log", yscale="log", xlabel="catalog items", ylabel="ms, one query, top 1,000 (p50; dotted: p99)",
           title="dense retrieval by catalog size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(img / "bench_scale.png", dpi=100)
    return ["bench_scale.png"]


def main(argv: list[str] | None = None) -> int:
    return section_main("bench.scale_bench", run, argv)


if __name__ == "__main__":
    sys.exit(main())
