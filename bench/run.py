"""`make bench`: every benchmark, each beside its baseline in the same run.

    python -m bench.run [--quick] [--home H --tenant-file T] [--out bench/results.json] [--doc docs/benchmarks.md]

Without --home, a fraud workspace is built first (quick: a small one; full: the tenant file's own
size) in a temporary folder; the search and LETOR sections (bench/search_bench.py, bench/letor_bench.py)
always build their own workspaces there, from scratch. Writes the results JSON, the Markdown report and its plots. Benchmarks
are not tests: nothing here asserts a timing; targets are reported beside the measured figures.
Load only ever targets 127.0.0.1, with bounded counts and durations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import yaml

REPO = Path(__file__).resolve().parents[1]
FRAUD = REPO / "examples" / "fraud" / "tenant.yaml"
QUICK = {"rates": [50], "rate_seconds": 3, "sat_seconds": 3, "repeats": 1, "inproc_n": 200, "lookup_n": 100,
         "train_sizes": [2_000], "train_rounds": 20, "drift_rows": 100_000, "train_repeats": 1,
         "shadow_rate": 50, "shadow_seconds": 3, "shadow_rounds": 1}
FULL = {"rates": [50, 100, 200], "rate_seconds": 20, "sat_seconds": 15, "repeats": 3, "inproc_n": 2000,
        "lookup_n": 1000, "train_sizes": [20_000, 100_000, 500_000], "train_rounds": 100,
        "drift_rows": 1_000_000, "train_repeats": 3,
        "shadow_rate": 50, "shadow_seconds": 10, "shadow_rounds": 5}
TARGETS = {"serving_p99_ms_at_200rps": 10.0, "lookup_p99_ms_1": 5.0, "lookup_p99_ms_200": 40.0,
           "training_ratio": 1.5, "training_startup_s": 15.0, "drift_seconds": 5.0,
           "shadow_added_p99_ms": 2.0,
           "search_e2e_p99_ms": 50.0,  # bench/search_bench.py: HTTP, zero errors
           "letor_ndcg_at_10_vs_lgbm_defaults": 1.0}  # bench/letor_bench.py: platform / LGBMRanker() >= 1


def pct(values, q) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3)


def median(values) -> float:
    return round(float(statistics.median(values)), 3)


def ratio(a, b) -> float | None:
    return round(a / b, 2) if a and b else None


def section_main(prog: str, run, argv: list[str] | None) -> int:
    """`python -m bench.<section> [--quick] [--json F]`: one section alone, in a temporary folder."""
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix=prog.rsplit(".", 1)[-1] + "-") as tmp:
        res = run({}, Path(tmp), args.quick)
    text = json.dumps(res, indent=2, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


# --- machine and workspace ------------------------------------------------------------------------


def machine() -> dict:
    import psutil

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for pkg in ("kserve", "feast", "ray", "xgboost", "mlflow", "numpy", "uvicorn"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            pass
    wrk = shutil.which("wrk")
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()], "python": pyplatform.python_version(),
            "os": pyplatform.platform(), "versions": versions,
            "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[0] if wrk else None}


def build_workspace(quick: bool, work: Path) -> tuple[Path, Path]:
    from mlplatform import steps

    raw = yaml.safe_load(FRAUD.read_text())
    if quick:
        raw["data"]["generator_args"] = {"customers": 300, "terminals": 600, "days": 40, "seed": 11}
        raw["model"]["num_boost_round"] = 80
    tenant = work / "fraud" / "tenant.yaml"
    tenant.parent.mkdir(parents=True, exist_ok=True)
    tenant.write_text(yaml.safe_dump(raw, sort_keys=False))
    home = work / "home"
    steps.run_all(tenant, home, "bench", on_step=lambda name: print(f"bench: workspace step {name}", flush=True))
    return tenant, home


# --- serving --------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], home: Path, ready_url: str, log: Path) -> subprocess.Popen:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "MLFLOW_"))}
    env |= {"MLPLATFORM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd}: exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            r = httpx.get(ready_url, timeout=1) if "health" in ready_url else httpx.post(
                ready_url, content=b"{}", timeout=1)
            if r.status_code < 500:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{cmd}: not ready in 180 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wrk_saturation(url: str, body: bytes, seconds: float, work: Path) -> dict:
    wrk = shutil.which("wrk")
    if not wrk:
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        "done = function(s, latency, requests)\n"
        '  io.write(string.format("WRKJSON {\\"requests\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, '
        '\\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n", s.requests, '
        "s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status, s.duration, "
        "latency:percentile(50), latency:percentile(99)))\nend\n")
    out = subprocess.run([wrk, "-t1", "-c8", f"-d{int(seconds)}s", "--timeout", "5s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        return {"error": out[-500:]}
    r = json.loads(m.group(1))
    return {"rps": round(r["requests"] / (r["duration_us"] / 1e6), 1), "requests": r["requests"],
            "errors": r["errors"] + r["non2xx"], "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "connections": 8, "seconds": seconds}


def bench_serving(tenant: Path, home: Path, p: dict, work: Path) -> dict:
    import gc

    import psutil

    from bench.loadgen import fixed_rate
    from mlplatform.config import load_tenant
    from mlplatform.serving.predictor import TenantPredictor
    from mlplatform.serving.server import freeze_startup_heap, limit_native_threads
    from mlplatform.serving.smoke import newest_rows, v1_body, v1_path
    from mlplatform.workspace import Workspace

    cfg, ws = load_tenant(tenant), Workspace(home)
    rows, _ = newest_rows(cfg, ws, 200)
    bodies = [orjson.dumps(v1_body([r])) for r in rows]
    out: dict = {"request": "V1, 1 row, 2 feature views looked up per request", "rows_cycled": len(rows)}

    # in-process: the same predictor object, predict() on a parsed V1 request (no HTTP), in a process
    # set up as the server sets itself up (one native thread, start-up heap frozen)
    pred = TenantPredictor(cfg, ws)
    pred.load()
    limit_native_threads()
    freeze_startup_heap()
    payloads = [orjson.loads(b) for b in bodies]
    try:
        for b in payloads[:20]:
            pred.predict(b)
        lat = []
        for i in range(p["inproc_n"]):
            t = time.perf_counter()
            pred.predict(payloads[i % len(payloads)])
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        gc.unfreeze()  # the bench process goes on to other sections
    out["in_process"] = {"n": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
    del pred

    targets = {}
    port = free_port()
    try:
        targets["kserve"] = (start([sys.executable, "-m", "mlplatform.serving.server", str(tenant), "--port", str(port)],
                                   home, f"http://127.0.0.1:{port}/v2/health/ready", work / "kserve.log"),
                             f"http://127.0.0.1:{port}{v1_path(cfg)}")
        port2 = free_port()
        targets["minimal"] = (start([sys.executable, "-m", "bench.minimal_app", str(tenant), str(home), str(port2)],
                                    home, f"http://127.0.0.1:{port2}/predict", work / "minimal.log"),
                              f"http://127.0.0.1:{port2}/predict")
        for _, url in targets.values():
            fixed_rate(url, bodies, rate=50, seconds=2)  # warm-up
        # the two targets take turns, run by run: a noisy neighbour then hits both alike
        reps: dict = {(name, rate): [] for name in targets for rate in p["rates"]}
        for rate in p["rates"]:
            for _ in range(p["repeats"]):
                for name, (proc, url) in targets.items():
                    server = psutil.Process(proc.pid)
                    cpu = sum(server.cpu_times()[:2])
                    r = fixed_rate(url, bodies, rate=rate, seconds=p["rate_seconds"]).summary()
                    # the server's CPU time per request: robust to a busy machine, unlike latency
                    r["server_cpu_ms"] = (sum(server.cpu_times()[:2]) - cpu) * 1000 / max(r["sent"], 1)
                    reps[name, rate].append(r)
        for name, (_, url) in targets.items():
            runs = {}
            for rate in p["rates"]:
                rr = reps[name, rate]
                runs[str(rate)] = {"p50_ms": median([r["p50_ms"] for r in rr]),
                                   "p99_ms": median([r["p99_ms"] for r in rr]),
                                   "errors": sum(r["errors"] for r in rr), "sent": sum(r["sent"] for r in rr),
                                   "achieved_rps": median([r["achieved_rps"] for r in rr]),
                                   "server_cpu_ms_per_request": median([r["server_cpu_ms"] for r in rr]),
                                   "p99_ms_each": [r["p99_ms"] for r in rr],
                                   "repeats": len(rr), "seconds_each": p["rate_seconds"]}
            sat = [wrk_saturation(url, bodies[0], p["sat_seconds"], work) for _ in range(p["repeats"])]
            ok = [s for s in sat if "rps" in s]
            out[name] = {"fixed_rate": runs, "saturation": {
                "rps": median([s["rps"] for s in ok]) if ok else None,
                "p50_ms": median([s["p50_ms"] for s in ok]) if ok else None,
                "p99_ms": median([s["p99_ms"] for s in ok]) if ok else None,
                "errors": sum(s.get("errors", 0) for s in ok), "runs": sat}}
    finally:
        for proc, _ in targets.values():
            stop(proc)
    k, m = out["kserve"], out["minimal"]
    out["ratios"] = {
        "kserve_vs_minimal_p50": {r: ratio(k["fixed_rate"][r]["p50_ms"], m["fixed_rate"][r]["p50_ms"]) for r in k["fixed_rate"]},
        "kserve_vs_minimal_p99": {r: ratio(k["fixed_rate"][r]["p99_ms"], m["fixed_rate"][r]["p99_ms"]) for r in k["fixed_rate"]},
        "kserve_vs_in_process_p50": {r: ratio(k["fixed_rate"][r]["p50_ms"], out["in_process"]["p50_ms"]) for r in k["fixed_rate"]},
        "saturation_rps_kserve_vs_minimal": ratio(k["saturation"]["rps"], m["saturation"]["rps"]),
    }
    out["target"] = f"p99 < {TARGETS['serving_p99_ms_at_200rps']} ms at 200 req/s on 2 cores, zero errors"
    return out


# --- feature lookup -------------------------------------------------------------------------------


def bench_lookup(tenant: Path, home: Path, p: dict) -> dict:
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
    views = [(f"{cfg.name}_{v.name}", cfg.features.entity(v.entities[0]).join_key) for v in cfg.features.feature_views]
    # the entity ids themselves, from the offline feature tables (what a caller would send)
    import pandas as pd

    ids = {}
    for v in cfg.features.feature_views:
        jk = cfg.features.entity(v.entities[0]).join_key
        ids[jk] = pd.read_parquet(ws.features_dir(cfg.name) / f"{v.name}.parquet", columns=[jk])[jk].unique()
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


# --- training -------------------------------------------------------------------------------------


def bench_training(tenant: Path, p: dict) -> dict:
    import xgboost

    from mlplatform.config import TenantConfig
    from mlplatform.training import xgboost_trainer

    raw = yaml.safe_load(Path(tenant).read_text())
    raw["model"]["num_boost_round"] = p["train_rounds"]
    raw["model"]["early_stopping_rounds"] = p["train_rounds"] + 1  # same number of rounds both ways
    cfg = TenantConfig.model_validate(raw)
    feats, label = cfg.model.features, cfg.data.label
    rng = np.random.default_rng(0)

    def frame(n):
        import pandas as pd

        x = rng.normal(size=(n, len(feats)))
        y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=n) > 2.5).astype(np.int64)
        df = pd.DataFrame(x, columns=feats)
        df[label] = y
        return df

    def ray_startup_s() -> float:
        """ray.init as a fresh process (a pipeline step) pays it; this process may run Ray already (an
        earlier section trained), where ensure_ray costs nothing. Imports are not counted."""
        code = ("import sys, time, yaml\n"
                "from mlplatform.config import TenantConfig\n"
                "from mlplatform.training import xgboost_trainer\n"
                "cfg = TenantConfig.model_validate(yaml.safe_load(open(sys.argv[1])))\n"
                "t = time.perf_counter()\n"
                "xgboost_trainer.ensure_ray(cfg)\n"
                "print(time.perf_counter() - t)\n")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
        out = subprocess.run([sys.executable, "-c", code, str(tenant)], capture_output=True, text=True,
                             check=True, timeout=300, env=env, cwd=REPO)
        return float(out.stdout.strip().splitlines()[-1])

    init_s = [ray_startup_s() for _ in range(p["train_repeats"])]
    xgboost_trainer.ensure_ray(cfg)  # here: already up if an earlier section trained
    storage = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    sizes = {}
    try:
        for n in p["train_sizes"]:
            tr, va = frame(n), frame(max(1000, n // 5))
            params = xgboost_trainer.base_params(cfg, tr)
            ray_s, direct_s = [], []
            for _ in range(p["train_repeats"]):  # interleaved: both see the same background load
                t = time.perf_counter()
                xgboost_trainer.train(cfg, tr, va, storage)
                ray_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                xgboost.train(params, xgboost.DMatrix(tr[feats], label=tr[label]),
                              num_boost_round=cfg.model.num_boost_round,
                              evals=[(xgboost.DMatrix(va[feats], label=va[label]), "valid")],
                              early_stopping_rounds=cfg.model.early_stopping_rounds, verbose_eval=False)
                direct_s.append(time.perf_counter() - t)
            r, d = median(ray_s), median(direct_s)
            sizes[str(n)] = {"ray_s": r, "direct_s": d, "ratio": ratio(r, d), "overhead_s": round(r - d, 2),
                             "ray_all_s": [round(v, 2) for v in ray_s], "direct_all_s": [round(v, 2) for v in direct_s],
                             "repeats": len(ray_s)}
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    init = median(init_s)
    direct, ray_fit = [v["direct_s"] for v in sizes.values()], [v["ray_s"] for v in sizes.values()]
    if len(sizes) >= 2:  # Ray s = fixed per fit + slope x direct s, least squares over the sizes
        slope, fixed = (round(float(c), 2) for c in np.polyfit(direct, ray_fit, 1))
    else:
        slope, fixed = None, round(ray_fit[0] - direct[0], 2)
    startup = round(init + fixed, 2)  # what a fresh process (a pipeline step) pays before any data counts
    met = slope is not None and slope <= TARGETS["training_ratio"] and startup <= TARGETS["training_startup_s"]
    return {"ray_init_s": init, "ray_init_all_s": [round(v, 2) for v in init_s], "per_fit_fixed_s": fixed,
            "slope_vs_direct": slope, "fixed_startup_s": startup, "target_met": met,
            "rounds": cfg.model.num_boost_round, "features": len(feats), "workers": cfg.model.ray.num_workers,
            "nthread": params["nthread"], "sizes": sizes,
            "target": f"Ray <= {TARGETS['training_ratio']}x direct + fixed start-up <= {TARGETS['training_startup_s']} s"}


# --- drift, search, demo --------------------------------------------------------------------------


def bench_drift(p: dict, work: Path) -> dict:
    script = REPO / "bench" / "drift_bench.py"
    try:
        from mlplatform.monitoring.drift import psi_ks  # noqa: F401
    except ImportError:
        return {"status": "not yet available (mlplatform.monitoring.drift.psi_ks missing)"}
    if not script.exists():
        return {"status": "not yet available (bench/drift_bench.py missing)"}
    out = work / "drift.json"
    proc = subprocess.run([sys.executable, str(script), "--rows", str(p["drift_rows"]), "--features", "30",
                           "--repeat", str(p["repeats"]), "--json", str(out)], capture_output=True, text=True,
                          timeout=900, cwd=REPO)
    if proc.returncode != 0:
        return {"status": "failed", "stderr": proc.stderr[-1000:]}
    res = json.loads(out.read_text())
    # baseline in the same run: scipy's exact two-sample KS over the same shapes (one feature, scaled x30)
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=200_000), rng.normal(size=p["drift_rows"])
    t = time.perf_counter()
    ks_2samp(ref, cur)
    one = time.perf_counter() - t
    res["baseline_scipy_ks_2samp_30_features_s"] = round(one * 30, 3)
    res["ratio_vs_scipy_ks"] = ratio(res["seconds_best"], one * 30)
    res["status"] = "ok"
    return res


def bench_shadow(tenant: Path, home: Path, p: dict, work: Path) -> dict:
    from bench import shadow_bench

    return shadow_bench.run(tenant, home, p, work)


def shadow_markdown(sh: dict) -> list[str]:
    L = ["## Shadow (what a mirrored challenger adds to stable p99)", ""]
    if sh.get("status") != "ok":
        return L + [str(sh.get("status")), ""]
    L += [f"Path: {sh['path']} (`bench/shadow_bench.py`); stable is the fraud KServe server behind the embedded "
          f"nginx; {sh['rate']} req/s open loop, {sh['seconds_each']} s per run, {sh['rounds']} interleaved rounds "
          f"(median of the runs' p99). Target: {sh['target']}. Passed: **{sh['passed']}**"
          f"{' (' + sh['verdict'] + ')' if sh.get('verdict') else ''}; spread of the no-shadow p99 over rounds: "
          f"{sh.get('baseline_p99_spread')}x.", "",
          "| shadow | p50 ms | p99 ms | added p99 ms | p99 ratio vs none | callers' statuses |", "|---|---|---|---|---|---|"]
    for name, v in sh["shadows"].items():
        L.append(f"| {name} | {v['p50_ms']} | {v['p99_ms']} | {v['added_p99_ms']} | {v['p99_ratio_vs_none']} | "
                 f"{v['statuses']} |")
    return L + ([""] + [sh["note"]] if sh.get("note") else []) + [""]


def bench_search(p: dict, work: Path, quick: bool) -> dict:
    from bench import search_bench  # builds its own search workspace (clean, under work)

    return _reported(lambda: search_bench.run(p, work, quick))


def bench_letor(p: dict, work: Path, quick: bool) -> dict:
    from bench import letor_bench

    return _reported(lambda: letor_bench.run(p, work, quick))


def _reported(fn) -> dict:
    """A failing section says so in the report (with the traceback's tail) instead of losing the others."""
    import traceback

    try:
        return fn()
    except Exception as err:  # noqa: BLE001
        return {"status": f"failed: {type(err).__name__}: {err}"[:500], "traceback": traceback.format_exc()[-3000:]}


def search_markdown(sr: dict) -> list[str]:
    if sr.get("status") != "ok":
        return ["## Search (two-stage funnel: retrieve, rank, return the top n)", "", str(sr.get("status")), ""]
    w, f, q, st, h, b = (sr["workspace"], sr["funnel"], sr["queries"], sr["in_process"]["stages"], sr["http"],
                         sr["baseline_bm25_only"])
    L = [f"## Search (retrieve {f['candidates']:,} candidates, rank {f['rerank']}, return {f['top_n']})", ""]
    ip = sr["in_process"]
    L += [f"`bench/search_bench.py`: the search tenant built from a clean workspace ({w['generator_args']}; "
          f"pipeline steps {w['seconds']} s; ranker NDCG@10 {w['ndcg_at_10']} vs BM25 only "
          f"{w['ndcg_at_10_baseline_bm25']}), the real `RankingPredictor` in process: catalog {f['catalog']:,} items "
          f"-> {f['candidates']:,} candidates (BM25 + MiniLM/faiss, RRF) -> {f['rerank']} ranked by LightGBM -> "
          f"top {f['top_n']}. {q['measured']} distinct generated queries, none cached (every request embeds its "
          f"query), {q['passes']} pass(es), median of the passes' percentiles. Over HTTP: the KServe server, V1, "
          f"{h['rate']} req/s open loop, {h['seconds_each']} s x {h['repeats']}, {h['distinct_queries_sent']} "
          f"distinct queries ({h['requests_with_a_repeated_query']} requests repeat one). Target: {sr['target']}. "
          f"Met: **{sr['target_met']}** (in process: {sr['target_met_in_process']}).", "",
          "| stage | p50 ms | p99 ms |", "|---|---|---|"]
    for name, label in sr["stage_names"].items():
        L.append(f"| {label} | {st[name]['p50_ms']} | {st[name]['p99_ms']} |")
    L += [f"| **end to end, in process** (parse, rank, response rows) | {st['stages_total']['p50_ms']} | "
          f"{st['stages_total']['p99_ms']} |",
          f"| `predict()` in process (as the server calls it, with the prediction log) | {ip['predict']['p50_ms']} | "
          f"{ip['predict']['p99_ms']} |",
          f"| `predict()`, query embedding cached (a repeated query) | {ip['predict_cached_embedding']['p50_ms']} | "
          f"{ip['predict_cached_embedding']['p99_ms']} |",
          f"| **end to end over HTTP** ({h['rate']} req/s; errors {h['errors']} / {h['sent']}) | {h['p50_ms']} | "
          f"{h['p99_ms']} |",
          f"| baseline: BM25 only, top {f['top_n']} (no embedding, dense, fusion or ranking), in process | "
          f"{b['p50_ms']} | {b['p99_ms']} |", "",
          f"Ratios: funnel / BM25-only p50 {sr['ratios']['funnel_vs_bm25_only_p50']}, p99 "
          f"{sr['ratios']['funnel_vs_bm25_only_p99']}; HTTP / in-process `predict()` p50 "
          f"{sr['ratios']['http_vs_in_process_predict_p50']}, p99 {sr['ratios']['http_vs_in_process_predict_p99']}; "
          f"HTTP p99 / target {sr['ratios']['http_p99_vs_target']}.", ""]
    return L


def letor_markdown(lt: dict) -> list[str]:
    L = ["## LETOR (a tenant from LETOR files vs. LightGBM lambdarank with default parameters)", ""]
    if lt.get("status") != "ok":
        return L + [str(lt.get("status")), ""]
    d = lt["data"]
    L += [f"`bench/letor_bench.py`: synthetic LETOR files ({d['generator']}, {d['features']} features, "
          f"{d['docs_per_query'][0]}-{d['docs_per_query'][1]} documents per query, labels {d['labels']}, queries "
          f"{d['queries']}). Platform: `mlplatform tenant new --from-letor` then the pipeline "
          f"({lt['per_seed'][0]['platform']['path']}); baseline: `LGBMRanker()` fitted on the training file. Both "
          f"scored by `mlplatform.ranking.metrics` on the test file. Target: {lt['target']}. "
          f"Met: **{lt['target_met']}** (every seed: {lt['target_met_every_seed']}).", "",
          "| seed | train docs | platform NDCG@10 | LGBMRanker() NDCG@10 | ratio | platform MRR / baseline MRR | "
          "pipeline s / baseline fit s |", "|---|---|---|---|---|---|---|"]
    for r in lt["per_seed"]:
        pl, bl = r["platform"], r["baseline"]
        L.append(f"| {r['seed']} | {r['train_documents']:,} | {pl['test_ndcg_at_10']:.4f} | {bl['test_ndcg_at_10']:.4f} | "
                 f"{r['ratio']} | {pl['test_mrr']:.3f} / {bl['test_mrr']:.3f} | {pl['pipeline_seconds']} / "
                 f"{bl['fit_seconds']} |")
    L += [f"| **mean** | | **{lt['platform_test_ndcg_at_10']}** | **{lt['baseline_test_ndcg_at_10']}** | "
          f"**{lt['ratio']}** | | |", ""]
    return L


def demo_stages() -> dict:
    runs = sorted((REPO / "runs").glob("2*/summary.json"))
    if not runs:
        return {"status": "no runs/*/summary.json: run `make demo` first"}
    s = json.loads(runs[-1].read_text())
    return {"status": "ok", "source": str(runs[-1].relative_to(REPO)), "started": s.get("started"),
            "total_s": s.get("seconds"),
            "tenants": {t: {"wall": v.get("stages_wall") or {}, "inside_step": v.get("stages") or {}}
                        for t, v in s.get("tenants", {}).items()}}


# --- report ---------------------------------------------------------------------------------------


def plots(results: dict, img: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    made = []
    s = results["serving"]
    if "kserve" in s:
        rates = list(s["kserve"]["fixed_rate"])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = np.arange(len(rates))
        for i, (name, q) in enumerate([("kserve", "p50_ms"), ("kserve", "p99_ms"), ("minimal", "p50_ms"),
                                       ("minimal", "p99_ms")]):
            ax.bar(x + (i - 1.5) * 0.2, [s[name]["fixed_rate"][r][q] for r in rates], 0.2, label=f"{name} {q[:3]}")
        ax.axhline(TARGETS["serving_p99_ms_at_200rps"], color="red", ls="--", lw=1, label="p99 target")
        ax.set(xticks=x, xticklabels=[f"{r} req/s" for r in rates], ylabel="ms", title="fraud predictor latency")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(img / "bench_serving.png", dpi=100)
        made.append("bench_serving.png")
    t = results["training"]
    if "sizes" in t:
        n = list(t["sizes"])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([int(k) for k in n], [t["sizes"][k]["ray_s"] for k in n], "o-", label="Ray Train")
        ax.plot([int(k) for k in n], [t["sizes"][k]["direct_s"] for k in n], "o-", label="xgboost direct")
        ax.set(xscale="log", xlabel="training rows", ylabel="seconds", title="training time")
        ax.legend()
        fig.tight_layout()
        fig.savefig(img / "bench_training.png", dpi=100)
        made.append("bench_training.png")
    sr = results.get("search", {})
    if sr.get("status") == "ok":
        st, f = sr["in_process"]["stages"], sr["funnel"]
        rows = [("embed query", st["embed"]), (f"retrieve {f['candidates']:,}", st["retrieve"]),
                (f"features {f['rerank']}", st["features"]), (f"LightGBM {f['rerank']}", st["score"]),
                (f"top {f['top_n']} + response", st["respond"]), ("end to end, in process", st["stages_total"]),
                (f"HTTP {sr['http']['rate']} req/s", sr["http"]), ("baseline: BM25 only", sr["baseline_bm25_only"])]
        fig, ax = plt.subplots(figsize=(7, 4))
        y = np.arange(len(rows))
        ax.barh(y - 0.2, [max(r["p50_ms"], 1e-3) for _, r in rows], 0.4, label="p50")
        ax.barh(y + 0.2, [max(r["p99_ms"], 1e-3) for _, r in rows], 0.4, label="p99")
        ax.axvline(sr["target_p99_ms"], color="red", ls="--", lw=1, label="p99 target")
        ax.set(yticks=y, yticklabels=[name for name, _ in rows], xscale="log", xlabel="ms (log scale)",
               title="search latency by stage")
        ax.invert_yaxis()
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(img / "bench_search.png", dpi=100)
        made.append("bench_search.png")
    plt.close("all")
    return made


def serving_markdown(s: dict, img_rel: str, images: list[str]) -> list[str]:
    L: list[str] = []
    if s.get("status", "ok") != "ok":  # skipped or failed: say so, keep the rest of the report
        return ["## Serving", "", str(s['status']), ""]
    L += ["## Serving (fraud predictor, HTTP, online feature lookup per request)", "",
          f"{s['request']}. Target: {s['target']}. Fixed rates: open-loop generator (`bench/loadgen.py`: raw "
          "HTTP/1.1 on asyncio, latency from the scheduled send time, so server stalls are not omitted; it runs "
          "on the same 2 cores and its own ~0.3 ms of CPU per request is inside every figure); the two servers "
          "take turns run by run. Server CPU: the server process's CPU time per request at that rate (it "
          "includes the cost of waking an idle event loop per request, so compare it at equal rates). Saturation: `wrk -t1 "
          "-c8` (closed loop: its latencies omit queueing, read them as throughput only). Baselines: the same "
          "predictor in-process (`predict()` on a parsed request), and a minimal Starlette/uvicorn endpoint "
          "doing the same parse, lookup and prediction without kserve (`bench/minimal_app.py`; no metrics, "
          "drift or prediction log).", "",
          "| target | rate | p50 ms | p99 ms | errors / sent | achieved req/s | server CPU ms / request |",
          "|---|---|---|---|---|---|---|"]
    for name in ("kserve", "minimal"):
        for r, v in s[name]["fixed_rate"].items():
            L.append(f"| {name} | {r} req/s | {v['p50_ms']} | {v['p99_ms']} | {v['errors']} / {v['sent']} | "
                     f"{v['achieved_rps']} | {v.get('server_cpu_ms_per_request', '-')} |")
        sat = s[name]["saturation"]
        L.append(f"| {name} | saturation | {sat['p50_ms']} | {sat['p99_ms']} | {sat['errors']} | {sat['rps']} | - |")
    L += [f"| in-process | - | {s['in_process']['p50_ms']} | {s['in_process']['p99_ms']} | - | - | - |", "",
          f"Ratios: kserve/minimal p50 {s['ratios']['kserve_vs_minimal_p50']}, p99 {s['ratios']['kserve_vs_minimal_p99']}; "
          f"kserve/in-process p50 {s['ratios']['kserve_vs_in_process_p50']}; saturation throughput kserve/minimal "
          f"{s['ratios']['saturation_rps_kserve_vs_minimal']}.", ""]
    if "bench_serving.png" in images:
        L += [f"![serving latency]({img_rel}/bench_serving.png)", ""]
    return L


def lookup_markdown(f: dict) -> list[str]:
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


def training_markdown(t: dict, img_rel: str, images: list[str]) -> list[str]:
    L: list[str] = []
    if t.get("status", "ok") != "ok":  # skipped or failed: say so, keep the rest of the report
        return ["## Training", "", str(t['status']), ""]
    slope = t.get("slope_vs_direct")
    L += ["", "## Training (Ray Train vs. the same xgboost in one process)", "",
          f"{t['features']} features, {t['rounds']} rounds, {t['workers']} Ray worker(s), nthread {t['nthread']}. "
          f"Ray start-up (ray.init in a fresh process, paid once per process): {t['ray_init_s']} s. Per fit, "
          f"least squares over the sizes: Ray s = {t['per_fit_fixed_s']} s"
          + (f" + {slope} x direct s" if slope is not None else " + direct s (one size: no slope)") + ". "
          f"Fixed start-up (ray.init + per-fit fixed): {t['fixed_startup_s']} s. Target: {t['target']}: "
          f"**{'met' if t['target_met'] else 'not met'}**.", "",
          "| rows | Ray s | direct s | ratio | overhead s |", "|---|---|---|---|---|"]
    for n, v in t["sizes"].items():
        L.append(f"| {int(n):,} | {v['ray_s']} | {v['direct_s']} | {v['ratio']} | {v['overhead_s']} |")
    if "bench_training.png" in images:
        L += ["", f"![training time]({img_rel}/bench_training.png)"]
    return L


def markdown(results: dict, img_rel: str, images: list[str]) -> str:
    m, s, f, t, d = results["machine"], results["serving"], results["lookup"], results["training"], results["drift"]
    L = ["# Benchmarks", "",
         f"Generated by `{results['command']}` on {results['date']} ({results['mode']} mode). "
         "Regenerate with `make bench` (full) or `make bench BENCH_ARGS=--quick`. **Publish only figures from "
         "`make bench` on an otherwise idle machine**: each figure is beside its baseline from the same run, "
         "so ratios survive some noise better than absolute numbers do.", "",
         "## Machine", "",
         f"- {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB; load average at start {m['load_avg_at_start']}",
         f"- Python {m['python']}, {m['os']}; {', '.join(f'{k} {v}' for k, v in m['versions'].items())}; {m['wrk']}",
         ""]
    if len(set(results.get("section_dates", {}).values())) > 1:
        L += ["Sections measured on different runs (each run on an idle machine; `--skip ... --merge`): "
              + ", ".join(f"{k} {v}" for k, v in results["section_dates"].items()) + ".", ""]
    if results["mode"] == "quick":
        L += ["> **Quick mode**: tiny sizes and short durations, to prove the machinery runs. "
              "These numbers are not the platform's figures.", ""]
    L += serving_markdown(s, img_rel, images) + lookup_markdown(f) + training_markdown(t, img_rel, images)
    L += ["", "## Drift (PSI and KS)", ""]
    if d.get("status") == "ok":
        L += [f"`bench/drift_bench.py` (monitoring): {d['rows']:,} rows x {d['features']} features, best of "
              f"{len(d['seconds_all'])}: **{d['seconds_best']} s** (target < {TARGETS['drift_seconds']} s); baseline "
              f"scipy `ks_2samp` (exact KS, one feature timed, x30): {d['baseline_scipy_ks_2samp_30_features_s']} s; "
              f"ratio {d['ratio_vs_scipy_ks']}. Streaming update per request: "
              f"{d.get('streaming_update_us_per_request_18_columns')} µs."]
    else:
        L += [f"{d.get('status')}"]
    L += [""] + shadow_markdown(results.get("shadow", {"status": "not run"}))
    L += search_markdown(results.get("search", {"status": "not run"}))
    if "bench_search.png" in images:
        L += [f"![search latency by stage]({img_rel}/bench_search.png)", ""]
    L += letor_markdown(results.get("letor", {"status": "not run"}))
    L += ["## The demo (`make demo`) by stage", ""]
    dm = results["demo"]
    if dm.get("status") == "ok":
        L += [f"From `{dm['source']}` (started {dm['started']}; total {dm['total_s']} s). Wall: as the demo shows "
              "it, KFP task start-up included; inside the step: the step's own work.", "",
              "| tenant | stage | wall s | inside the step s |", "|---|---|---|---|"]
        for tenant, st in dm["tenants"].items():
            for stage in dict.fromkeys([*st["wall"], *st["inside_step"]]):
                wall, inside = st["wall"].get(stage), st["inside_step"].get(stage)
                L.append(f"| {tenant} | {stage} | {wall if wall is not None else '-'} | "
                         f"{inside if inside is not None else '-'} |")
    else:
        L.append(dm.get("status", ""))
    L += ["", "## Reproduce", "", "```bash",
          "make bench                        # full: ~15-25 min on 2 cores, plus the search and LETOR builds",
          "make bench BENCH_ARGS=--quick     # a few minutes, what CI runs (tests/bench/test_bench_quick.py)",
          "python -m bench.run --home H --tenant-file T   # reuse a trained workspace", "```", "",
          "Raw figures: `bench/results.json`.", ""]
    return "\n".join(L)


SECTIONS = ("serving", "lookup", "training", "drift", "shadow", "search", "letor")


def merge_results(old: dict, new: dict, skipped: set[str]) -> dict:
    """`new` with each skipped section taken from an earlier full run `old`; `section_dates` says
    when each section was measured (a section re-measured alone is dated apart from the rest)."""
    dates = old.get("section_dates") or {name: old["date"] for name in SECTIONS if name in old}
    merged = dict(new)
    for name in SECTIONS:
        if name in skipped and old.get(name, {}).get("status") != "skipped" and name in old:
            merged[name] = old[name]
        elif name not in skipped and name in new:
            dates[name] = new["date"]
    merged["section_dates"] = {name: dates[name] for name in SECTIONS
                               if name in dates and merged.get(name, {}).get("status") != "skipped"}
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.run")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, short durations (CI)")
    ap.add_argument("--home", help="a trained workspace to reuse (with --tenant-file)")
    ap.add_argument("--tenant-file", help="the fraud tenant file of --home")
    ap.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    ap.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--img-dir", default=None, help="default: <doc dir>/img")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip (serving,lookup,training,drift,shadow,search,letor)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the skipped sections' figures (and their dates) from the existing --out file")
    args = ap.parse_args(argv)
    p = QUICK if args.quick else FULL
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = Path(tempfile.mkdtemp(prefix="mlplatform-bench-"))
    started = time.monotonic()
    try:
        if args.home:
            tenant, home = Path(args.tenant_file or FRAUD), Path(args.home)
        else:
            tenant, home = build_workspace(args.quick, work)
        results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "mode": "quick" if args.quick else "full", "params": p,
                   "command": "python -m bench.run" + (" --quick" if args.quick else ""), "machine": machine(),
                   "targets": TARGETS}
        sections = {"serving": lambda: bench_serving(tenant, home, p, work), "lookup": lambda: bench_lookup(tenant, home, p),
                    "training": lambda: bench_training(tenant, p), "drift": lambda: bench_drift(p, work),
                    "shadow": lambda: bench_shadow(tenant, home, p, work)}
        sections |= {"search": lambda: bench_search(p, work, args.quick),
                     "letor": lambda: bench_letor(p, work, args.quick)}
        for name, fn in sections.items():
            if name in skip:
                results[name] = {"status": "skipped"}
                continue
            print(f"bench: {name}", flush=True)
            t = time.monotonic()
            results[name] = fn()
            results[name]["bench_seconds"] = round(time.monotonic() - t, 1)
        results["demo"] = demo_stages()
        results["seconds"] = round(time.monotonic() - started, 1)
        if args.merge and Path(args.out).exists():
            results = merge_results(json.loads(Path(args.out).read_text()), results, skip)
            skip = {name for name in skip if results.get(name, {}).get("status") == "skipped"}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        doc = Path(args.doc)
        img = Path(args.img_dir) if args.img_dir else doc.parent / "img"
        images = plots(results, img) if not skip else []
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(markdown(results, os.path.relpath(img, doc.parent), images))
        print(f"bench: wrote {out} and {doc} in {results['seconds']} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
