"""Faults survived, nothing lost: the fraud predictor of the services profile under a steady open
loop of 100 req/s while each backing service is killed (SIGKILL) and restarted in turn. Private
instances on free ports (tests/reliability/private_services.py), never the machine's own.

- Redis (the online store, on the request path): callers get 503 {"error"} while it is down (each
  answered within the stated timeout, features/repo.py REDIS_TIMEOUTS; never a 200 with a score the
  healthy server would not give), and 200 again by itself within 5 s of its return.
- PostgreSQL (MLflow's backend store and Feast's registry) and the MLflow server: not on the
  request path, so every request keeps its 200; what needs them fails with a clear error while
  they are down (a model server starting = a reload; the register step) and works once they are
  back.
- The prediction log holds exactly the requests that got a 200; the health metrics count the
  online store's failures (one per 503) and show no prediction-log loss.

The figures go to reliability.json and to the generated section of docs/reliability.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import orjson
import pytest

from bench.loadgen import fixed_rate
from mlplatform import services, steps
from mlplatform.config import load_tenant
from mlplatform.envvars import scoped_environ
from mlplatform.features.repo import REDIS_TIMEOUTS
from mlplatform.monitoring.prediction_log import read_predictions
from mlplatform.processes import free_port, stop
from mlplatform.serving.smoke import newest_rows, v1_body, v1_path
from mlplatform.tenants import apply_env_overrides
from mlplatform.workspace import Workspace
from tests.conftest import require, write_small_fraud_tenant
from tests.reliability.figures import record
from tests.reliability.outage_report import write_docs
from tests.reliability.private_services import PrivateMlflow, PrivatePostgres, PrivateRedis, missing_tools
from tests.serving.server_helpers import start_server, wait_server_ready

# the timeout covers a pipeline run on a loaded machine (13 min seen on 2 cores at load 20)
pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("restore_tracking_uri"),
              pytest.mark.timeout(1800)]

RATE = 100  # requests/s, open loop
BASELINE_S, REDIS_DOWN_S, SETTLE_S = 3.0, 4.0, 6.0
RESUME_WITHIN_S = 5.0  # the issue's promise: serving resumes by itself within 5 s of Redis' return
# a request unanswered after this long is a hang (status 0): the store's stated timeouts, plus
# queueing on a busy 2-core machine (the server scores each request in ~2 ms when healthy)
HANG_S = sum(REDIS_TIMEOUTS.values()) + 5.0
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
REGISTER = ("import json, sys; from mlplatform import steps\n"
            "r = json.load(open(sys.argv[3]))\n"
            "print(json.dumps(steps.register(sys.argv[1], sys.argv[2], 'outage', r['ingest'], r['train'])))\n")


environment = scoped_environ


def sample(metrics: str, name: str) -> float:
    """Sum of a metric family's samples for tenant fraud in a /metrics text."""
    return sum(float(m.group(1)) for m in re.finditer(rf'^{name}{{[^}}]*tenant="fraud"[^}}]*}} (\S+)$', metrics, re.M))


def health(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=60).text  # queued behind the load on a busy machine
    return {k: sample(text, f"mlplatform_{k}") for k in (
        "online_store_errors_total", "prediction_log_dropped_rows_total", "prediction_log_write_errors_total")}


def outages(events: list[tuple], t_from: float = 0.0, t_to: float = float("inf")) -> list[tuple[float, float]]:
    """Spans (first failed request's scheduled start, first later 200's) of consecutive failures."""
    spans, start = [], None
    for _, t, _, status, _ in sorted(events, key=lambda e: e[1]):
        if not t_from <= t <= t_to:
            continue
        if status != 200 and start is None:
            start = t
        elif status == 200 and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, float("inf")))
    return spans


def run_py(code: str, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_services_killed_and_restarted_under_load(tmp_path):
    missing = missing_tools()
    require(not missing, f"the private services need {missing}")
    redis, pg = PrivateRedis(tmp_path / "redis"), PrivatePostgres()
    mlflow_srv = PrivateMlflow(pg.url, tmp_path / "mlflow")
    server = None
    try:
        redis.start()
        pg.start()
        mlflow_srv.start()
        svc = services.Services(postgres=pg.url, redis=redis.address).env(mlflow_srv.url)
        tenant = write_small_fraud_tenant(tmp_path / "tenant", **{"model.num_boost_round": 30})
        train_home, serve_home = tmp_path / "train", tmp_path / "serve"
        with environment(svc):  # the pipeline as the services profile runs it (test_services_profile.py)
            records = steps.run_all(tenant, train_home, "outage", isolated=False)
            cfg = apply_env_overrides(load_tenant(tenant))
            rows, cold = newest_rows(cfg, Workspace(train_home), 20)
        assert cold == 0, "every request row names an entity the online store holds"
        (tmp_path / "records.json").write_text(json.dumps(records, default=str))
        bodies = [orjson.dumps(v1_body([r])) for r in rows]

        # the model server: an empty workspace of its own, everything else from the services
        port, log = free_port(), tmp_path / "server.log"
        server = start_server(tenant, serve_home, port, log, env=svc)
        url = f"http://127.0.0.1:{port}"
        wait_server_ready(server, url, log, timeout=300)
        predict = url + v1_path(cfg)
        expected = {}
        for b in bodies:  # the healthy server's scores: a 200 during a fault must give the same
            resp = httpx.post(predict, content=b, headers={"content-type": "application/json"}, timeout=30)
            assert resp.status_code == 200, resp.text
            expected[b] = resp.json()["predictions"][0]["score"]
        health0 = health(url)

        stop_load, result = threading.Event(), {}
        load = threading.Thread(target=lambda: result.update(r=fixed_rate(
            predict, bodies, RATE, 600, timeout=HANG_S, max_in_flight=256, stop=stop_load,
            request_ids="outage-", record=True)))
        t0 = time.perf_counter()
        clock = lambda: time.perf_counter() - t0  # noqa: E731 - shifted to the load's own start below
        load.start()
        marks, attempts, incidents = {}, {}, {}
        try:
            time.sleep(BASELINE_S)
            # --- Redis: on the request path -------------------------------------------------------
            redis.save()  # the features materialised earlier are on disk, as a persistent Redis keeps them
            marks["redis_killed"] = clock()
            redis.kill()
            time.sleep(REDIS_DOWN_S)
            redis.start()
            marks["redis_back"] = clock()
            time.sleep(SETTLE_S)
            incidents["redis"] = health(url)
            # --- PostgreSQL: MLflow's backend store and Feast's registry ---------------------------
            marks["postgres_killed"] = clock()
            pg.kill()
            reload_log = tmp_path / "reload-during-postgres-outage.log"
            reload = start_server(tenant, tmp_path / "serve-reload", free_port(), reload_log, env=svc | NO_RETRIES)
            code = reload.wait(timeout=300)
            attempts["reload_while_postgres_down"] = (code, reload_log.read_text(errors="replace"))
            pg.start()
            marks["postgres_back"] = clock()
            marks["registry_answers_again"] = wait_registry(mlflow_srv.url) + marks["postgres_back"]
            incidents["postgres"] = health(url)
            # --- the MLflow server ---------------------------------------------------------------
            marks["mlflow_killed"] = clock()
            mlflow_srv.kill()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "MLFLOW_"))}
            env |= svc | NO_RETRIES | {"MLPLATFORM_HOME": str(train_home)}
            args = (str(tenant), str(train_home), str(tmp_path / "records.json"))
            attempts["register_while_mlflow_down"] = run_py(REGISTER, *args, env=env)
            mlflow_srv.start()
            marks["mlflow_back"] = clock()
            attempts["register_after"] = run_py(REGISTER, *args, env=env)
            time.sleep(1.0)
            incidents["mlflow"] = health(url)
        finally:
            stop_load.set()
            load.join(timeout=120)
        res = result["r"]
        # a reload once everything is back: a new server becomes ready
        reload_log = tmp_path / "reload-after.log"
        reload_port = free_port()
        reload = start_server(tenant, tmp_path / "serve-reload-2", reload_port, reload_log, env=svc)
        try:
            wait_server_ready(reload, f"http://127.0.0.1:{reload_port}", reload_log, timeout=300)
        finally:
            stop(reload)
        final = health(url)
        stop(server)  # its prediction log flushes at exit
        server = None
        with scoped_environ({services.PREDICTION_LOG: svc[services.PREDICTION_LOG]}):  # the server's log
            logged = read_predictions(Workspace(serve_home), cfg.name)
    finally:
        if server is not None:
            stop(server)
        mlflow_srv.stop()
        redis.stop()
        pg.stop()

    # the marks on the load's own clock: its schedule started when the generator began, not at t0
    shift = res.started - t0
    marks = {k: v - shift for k, v in marks.items()}
    events = res.events
    statuses = {}
    for _, _, _, status, _ in events:
        statuses[status] = statuses.get(status, 0) + 1
    ok_ids = {f"outage-{i}" for i, _, _, status, _ in events if status == 200}
    failed = [(i, t, ms, status, body) for i, t, ms, status, body in events if status != 200]
    # every answer is a 200 or, during the Redis outage, a 503 {"error"}; nothing went unanswered
    assert set(statuses) <= {200, 503}, statuses
    for _, t, _, _, body in failed:
        assert isinstance(orjson.loads(body).get("error"), str), body[:200]
        assert marks["redis_killed"] - 1.0 <= t <= marks["redis_back"] + RESUME_WITHIN_S, (t, marks)
    # a 200 is the healthy server's answer: no score from missing features while Redis was gone
    wrong = [(i, orjson.loads(body)) for i, _, _, status, body in events if status == 200
             and orjson.loads(body)["predictions"][0]["score"] != expected[bodies[i % len(bodies)]]]
    assert not wrong, wrong[:3]
    # the outage was seen (the test can fail) and ended by itself within 5 s of Redis' return
    redis_spans = outages(events, marks["redis_killed"] - 1.0, marks["postgres_killed"])
    assert redis_spans and statuses.get(503, 0) > 0, "Redis was down and no caller noticed"
    resumed_after = max(end for _, end in redis_spans) - marks["redis_back"]
    assert resumed_after <= RESUME_WITHIN_S, (redis_spans, marks)
    assert outages(events, marks["postgres_killed"]) == [], "serving was touched by PostgreSQL or MLflow"
    # what needs PostgreSQL / MLflow failed clearly, then worked
    code, text = attempts["reload_while_postgres_down"]
    assert code == 2 and "MLflow registry" in text and "unavailable" in text, text[-2000:]
    down = attempts["register_while_mlflow_down"]
    assert down.returncode != 0 and "RegistryUnavailable" in down.stderr and "unavailable" in down.stderr, down.stderr[-2000:]
    after = attempts["register_after"]
    assert after.returncode == 0, after.stderr[-2000:]
    registered = json.loads(after.stdout.strip().splitlines()[-1])
    # nothing lost: the log has exactly the requests that got a 200
    ours = logged[logged["request_id"].str.startswith("outage-")]
    assert set(ours["request_id"]) == ok_ids and len(ours) == len(ok_ids)
    # the health metrics: one online-store error per 503 (the Redis incident), none from the others;
    # the prediction log lives in PostgreSQL (the services profile's MLPLATFORM_PREDICTION_LOG): its
    # writes failed while PostgreSQL was down, counted, with the rows kept for the next flush, none dropped
    errors = {k: v["online_store_errors_total"] - health0["online_store_errors_total"] for k, v in incidents.items()}
    assert errors["redis"] == statuses.get(503, 0) and errors["postgres"] == errors["mlflow"] == errors["redis"]
    log_errors = final["prediction_log_write_errors_total"] - health0["prediction_log_write_errors_total"]
    assert final["prediction_log_dropped_rows_total"] == 0 and log_errors > 0

    longest = max((end - start for start, end in outages(events)), default=0.0)
    figures = {
        "rate_rps": RATE, "seconds": round(res.seconds, 1), "requests": len(events), "ok": statuses.get(200, 0),
        "errors_503": statuses.get(503, 0), "unanswered": statuses.get(0, 0),
        "longest_outage_s": round(longest, 2), "resumed_after_redis_back_s": round(resumed_after, 2),
        "max_503_latency_ms": round(max((ms for _, _, ms, _, _ in failed), default=0.0), 1),
        "max_latency_ms": round(max(ms for _, _, ms, _, _ in events), 1),
        "prediction_log_rows": len(ours), "prediction_log_write_errors": int(log_errors), "wrong_scores": len(wrong),
        "online_store_errors": {k: int(v) for k, v in errors.items()},
        "registry_answers_after_postgres_back_s": round(marks["registry_answers_again"] - marks["postgres_back"], 2),
        "reload_while_postgres_down": message_line(attempts["reload_while_postgres_down"][1], "cannot serve"),
        "register_while_mlflow_down": message_line(down.stderr, "RegistryUnavailable"),
        "register_after": f"v{registered['version']} registered, aliases {registered['aliases']}",
        "marks_s": {k: round(v, 2) for k, v in marks.items()},
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
    }
    record("outages", **figures)
    write_docs(Path(__file__).resolve().parents[2] / "docs" / "reliability.md", figures)


def message_line(text: str, marker: str) -> str:
    """The message: the last line naming `marker` (a traceback names it in source lines first)."""
    lines = [ln.strip() for ln in text.splitlines() if marker in ln] or text.strip().splitlines() or [""]
    return lines[-1][:300]


def wait_registry(url: str, timeout: float = 60) -> float:
    """Seconds until the running MLflow server answers a registry call again (its database back)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if httpx.get(f"{url}/api/2.0/mlflow/registered-models/get", params={"name": "fraud"},
                         timeout=5).status_code == 200:
                return time.perf_counter() - start
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the MLflow server at {url} still fails registry calls {timeout} s after PostgreSQL is back")
