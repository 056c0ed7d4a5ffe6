"""Faults: what the platform does when a dependency fails. Destructive faults run on private copies
of the session's trained workspace (`copy_workspace`), never on the shared one."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from mlplatform.config import load_tenant
from mlplatform.processes import free_port, stop
from mlplatform.serving.smoke import newest_rows, v1_body, v1_path
from mlplatform.workspace import Workspace
from tests.reliability.conftest import STARTUP_SECONDS, copy_workspace, launch
from tests.reliability.figures import record
from tests.serving.server_helpers import wait_server_ready

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def cfg(trained_fraud):
    return load_tenant(trained_fraud.tenant_file)


@pytest.fixture(scope="module")
def good(trained_fraud, cfg):
    rows, _ = newest_rows(cfg, Workspace(trained_fraud.home), 1)
    return orjson.dumps(v1_body(rows))


def refuses_to_start(trained_fraud, home: Path, tmp_path: Path, env: dict | None = None,
                     timeout: float = STARTUP_SECONDS) -> tuple[int, str]:
    """Start a server that must not become ready; returns (exit code, log)."""
    log = tmp_path / "server.log"
    proc, url = launch(trained_fraud.tenant_file, home, log, env)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                assert httpx.get(f"{url}/v2/health/ready", timeout=1).status_code != 200, "became ready"
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert proc.poll() is not None, f"still running after {timeout}s:\n{log.read_text()[-2000:]}"
        return proc.returncode, log.read_text()
    finally:
        stop(proc)


# --- feature store ------------------------------------------------------------------------------


def test_unknown_entity_is_scored_as_cold_start(server, cfg, good):
    body = orjson.loads(good)
    body["instances"][0]["customer_id"] = 2**62
    resp = httpx.post(server.base_url + v1_path(cfg), content=orjson.dumps(body), headers=JSON)
    assert resp.status_code == 200, resp.text
    (pred,) = resp.json()["predictions"]
    assert pred["cold_start"] is True and pred["missing"] == ["customer_velocity"]
    assert httpx.get(f"{server.base_url}/v2/health/ready").status_code == 200
    record("faults", unknown_entity="scored as cold start (missing views named); server ready")


def test_online_store_missing_at_start_refuses_to_serve(trained_fraud, tmp_path):
    home = copy_workspace(trained_fraud.home, tmp_path / "home")
    (Workspace(home).feature_repo("fraud") / "online_store.db").unlink()
    code, log = refuses_to_start(trained_fraud, home, tmp_path)
    assert code == 2 and "online feature store cannot be read" in log, log[-2000:]
    record("faults", online_store_missing_at_start=f"exit {code}, never ready")


def test_online_store_locked_while_serving_is_503_then_recovers(trained_fraud, cfg, good, tmp_path):
    """A writer holding an exclusive lock (e.g. a long materialization) for longer than SQLite's busy
    timeout: requests fail with 503 {"error"}, the process stays up, and serving resumes after."""
    home = copy_workspace(trained_fraud.home, tmp_path / "home")
    log = tmp_path / "server.log"
    proc, url = launch(trained_fraud.tenant_file, home, log)
    try:
        wait_server_ready(proc, url, log, timeout=STARTUP_SECONDS)
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post(v1_path(cfg), content=good, headers=JSON).status_code == 200
            db = sqlite3.connect(Workspace(home).feature_repo("fraud") / "online_store.db", isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")
            try:
                resp = client.post(v1_path(cfg), content=good, headers=JSON)
                assert resp.status_code == 503, resp.text
                assert "online feature store unavailable" in resp.json()["error"]
                assert client.get("/v2/health/live").status_code == 200
            finally:
                db.execute("ROLLBACK")
                db.close()
            assert proc.poll() is None
            ok = [client.post(v1_path(cfg), content=good, headers=JSON).status_code for _ in range(5)]
            assert ok == [200] * 5, ok
        record("faults", online_store_locked="503 {error} while locked; 200 again after; process up")
    finally:
        stop(proc)


def test_a_dead_redis_fails_each_lookup_at_once_and_a_restarted_one_serves_again(trained_fraud, tmp_path):
    """The request path's Redis client does not retry: with Redis killed, each lookup fails as soon
    as the connection is refused (redis-py's default, 3 retries with exponential backoff, held each
    lookup for seconds on the predictor's event loop, and every queued request with it:
    features/repo.py, REQUEST_PATH_REDIS). Redis back on its port: the same store object reads again."""
    import shutil

    import redis as redis_py

    from mlplatform.features.store import OnlineFeatures
    from mlplatform.tenants import apply_env_overrides
    from tests.conftest import require
    from tests.reliability.private_services import PrivateRedis

    require(shutil.which("redis-server") is not None, "redis-server (Debian redis-server) for a private Redis")
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        cfg = apply_env_overrides(load_tenant(trained_fraud.tenant_file), {"MLPLATFORM_REDIS_ADDRESS": server.address})
        online = OnlineFeatures(cfg, Workspace(copy_workspace(trained_fraud.home, tmp_path / "home")))
        keys = {k: [1, 2] for k in cfg.features.join_keys}
        names = {ref.split(":", 1)[1] for ref in online.refs}
        assert names <= set(online.lookup(keys))  # up: read (this Redis holds no rows: values None)
        server.kill()
        for _ in range(5):
            t = time.monotonic()
            with pytest.raises(redis_py.ConnectionError):
                online.lookup(keys)
            assert time.monotonic() - t < 0.5, "a lookup on a dead Redis waited (retries with backoff?)"
        server.start()
        assert names <= set(online.lookup(keys))
    finally:
        server.stop()


# --- MLflow -------------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["closed-port", "missing-sqlite-dir"])
def test_mlflow_unavailable_at_start_never_ready(trained_fraud, tmp_path, what):
    if what == "closed-port":
        uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    else:
        uri = f"sqlite:///{tmp_path}/no/such/dir/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    code, log = refuses_to_start(trained_fraud, trained_fraud.home, tmp_path, env)
    assert code != 0
    assert "cannot serve" in log or "MLflow" in log or "mlflow" in log, log[-2000:]
    record("faults", **{f"mlflow_{what}": f"exit {code}, never ready"})


# --- Prometheus ---------------------------------------------------------------------------------


def test_serving_does_not_depend_on_prometheus(server, cfg, good):
    """Metrics are pulled (/metrics), never pushed: with no Prometheus anywhere the predictor serves,
    exposes its metrics, and holds no connection to anything but its own clients."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        statuses = [client.post(v1_path(cfg), content=good, headers=JSON).status_code for _ in range(20)]
        metrics = client.get("/metrics")
    assert statuses == [200] * 20
    assert metrics.status_code == 200 and "mlplatform_" in metrics.text
    port = int(server.base_url.rsplit(":", 1)[1])
    outbound = [c for c in psutil.Process(server.proc.pid).connections(kind="inet")
                if c.raddr and c.status == psutil.CONN_ESTABLISHED and c.laddr.port != port]
    assert outbound == [], outbound
    record("faults", prometheus_down="served 20/20 and /metrics with no Prometheus; no outbound connections")


# --- corrupted model artifact -------------------------------------------------------------------


def test_corrupted_model_artifact_is_rejected_at_start(trained_fraud, tmp_path):
    home = copy_workspace(trained_fraud.home, tmp_path / "home")
    files = [p for p in (home / "mlartifacts").rglob("model.ubj")]
    assert files, "no model.ubj in the copied artifact store"
    for f in files:
        f.write_bytes(b"\x00garbage, not a UBJSON model" * 10)
    code, log = refuses_to_start(trained_fraud, home, tmp_path)
    assert code == 2 and "load_model failed" in log, log[-2000:]
    record("faults", corrupted_model="exit 2: load_model failed, never ready")


# --- crash during registration ------------------------------------------------------------------

# the records the pipeline hands the register task (ingest's and train's), read from the step log
RECORDS = ("from mlplatform.workspace import Workspace\n"
           "def records(home): return [Workspace(home).read_step('fraud', 'session', s) for s in ('ingest', 'train')]\n")
CRASH = RECORDS + textwrap.dedent("""
    import os, signal, sys
    from mlflow import MlflowClient
    from mlplatform import steps
    point = sys.argv[3]
    original = MlflowClient.set_registered_model_alias
    def crash(self, *a, **k):
        if point == "after-alias":
            original(self, *a, **k)
        os.kill(os.getpid(), signal.SIGKILL)
    MlflowClient.set_registered_model_alias = crash
    steps.register(sys.argv[1], sys.argv[2], "session", *records(sys.argv[2]))
""")


def registry_state(home: Path) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    versions = {v.version: v for v in client.search_model_versions("name='fraud'")}
    aliases = dict(client.get_registered_model("fraud").aliases)
    return {"versions": sorted(versions, key=int), "aliases": aliases,
            "loadable": {a: Path(client.get_model_version_download_uri("fraud", v).removeprefix("file://")).exists()
                         for a, v in aliases.items() if v in versions}}


@pytest.mark.parametrize("point", ["before-alias", "after-alias"])
def test_crash_during_registration_loses_nothing(trained_fraud, tmp_path, point):
    home = copy_workspace(trained_fraud.home, tmp_path / "home")
    before = registry_state(home)
    assert before["aliases"] == {"champion": before["versions"][-1]}
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("MLPLATFORM_", "MLFLOW_"))}
    proc = subprocess.run([sys.executable, str(script), str(trained_fraud.tenant_file), str(home), point],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    after = registry_state(home)
    # no version lost; the new one is registered
    assert set(before["versions"]) < set(after["versions"])
    # aliases consistent: every alias names an existing version whose artifacts exist
    assert set(after["aliases"].values()) <= set(after["versions"])
    assert all(after["loadable"].values()), after
    assert after["aliases"]["champion"] == before["aliases"]["champion"]  # the champion is untouched
    if point == "after-alias":
        assert after["aliases"].get("challenger") == after["versions"][-1]
    else:
        assert "challenger" not in after["aliases"]
    # the step can be run again: a further version, nothing overwritten
    rerun = subprocess.run([sys.executable, "-c", RECORDS + "import sys; from mlplatform import steps; "
                            "print(steps.register(sys.argv[1], sys.argv[2], 'session', *records(sys.argv[2])))",
                            str(trained_fraud.tenant_file), str(home)], env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = registry_state(home)
    assert set(after["versions"]) < set(final["versions"])
    assert final["aliases"]["challenger"] == final["versions"][-1]
    record("faults", **{f"crash_register_{point}": f"versions {before['versions']} -> {after['versions']} -> "
                                                   f"{final['versions']}; aliases {after['aliases']}"})
