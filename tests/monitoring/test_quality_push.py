"""The cluster's quality job pushes the embedded monitor's gauges to a real Prometheus Pushgateway
(Debian's prometheus-pushgateway, started here on a free port), where Prometheus would scrape them.
Prediction log and delayed labels: the constructed case of test_quality_and_log.py."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.config import load_tenant
from mlplatform.monitoring.quality_push import PUSH_JOB, NothingToMeasure, run_and_push
from mlplatform.processes import free_port
from mlplatform.workspace import Workspace
from tests.conftest import FRAUD_TENANT, require
from tests.monitoring.test_quality_and_log import T0, log_traffic

CFG = load_tenant(FRAUD_TENANT)
AS_OF = T0 + timedelta(days=30)


@pytest.fixture(scope="module")
def gateway():
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    require(binary is not None, "prometheus-pushgateway not installed (apt-get install prometheus-pushgateway)")
    port = free_port()
    # in memory only: Debian's build persists to /var/lib/prometheus/pushgateway.data by default,
    # which every gateway started here would then share (and a later run would inherit)
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"pushgateway exited with {proc.returncode}")
            time.sleep(0.1)
        else:
            pytest.fail("pushgateway never became ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def quality_series(url: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
        if family.name.startswith("mlplatform_model_quality"):
            for s in family.samples:
                if s.labels.get("job") == PUSH_JOB:
                    out[(s.name, s.labels.get("tenant"), s.labels.get("version"), s.labels.get("metric"))] = s.value
    return out


def test_the_job_pushes_the_quality_gauges_and_each_run_replaces_the_group(gateway, tmp_path):
    ws = Workspace(tmp_path / "a")
    _, _, events = log_traffic(ws, version="3")
    record = run_and_push(CFG, ws, gateway, events=events, as_of=AS_OF)
    series = quality_series(gateway)
    pr_auc = record["versions"]["3"]["pr_auc"]
    assert series[("mlplatform_model_quality", "fraud", "3", "pr_auc")] == pytest.approx(pr_auc)
    assert ("mlplatform_model_quality_computed_timestamp_seconds", "fraud", None, None) in series

    ws = Workspace(tmp_path / "b")  # the next run: the model is now v4
    _, _, events = log_traffic(ws, version="4", seed=1)
    run_and_push(CFG, ws, gateway, events=events, as_of=AS_OF)
    versions = {k[2] for k in quality_series(gateway) if k[0] == "mlplatform_model_quality"}
    assert versions == {"4"}  # PUT replaced the tenant's group: v3 left with the window


def test_no_logged_predictions_fails_and_pushes_nothing(gateway, tmp_path):
    before = quality_series(gateway)
    with pytest.raises(NothingToMeasure, match="no logged predictions for fraud"):
        run_and_push(CFG, Workspace(tmp_path), gateway)
    assert quality_series(gateway) == before  # no fresh timestamp over no measurement


def test_an_unreachable_gateway_fails_the_job(tmp_path):
    ws = Workspace(tmp_path)
    _, _, events = log_traffic(ws, n=50)
    with pytest.raises(urllib.error.URLError):
        run_and_push(CFG, ws, f"127.0.0.1:{free_port()}", events=events, as_of=AS_OF, timeout=5)
