"""checkov on the rendered manifests: no failed check; every skipped check has a reason."""

from __future__ import annotations

import pytest

from mlplatform.verify import checkov_scan

from cluster_helpers import REPO_ROOT, require

# A workload breaking several rules checkov knows (root, no limits, privileged, latest image):
# scanned together with the real manifests to prove the scan reports failures.
KNOWN_BAD = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "known-bad", "namespace": "checkov-canary"},
    "spec": {
        "selector": {"matchLabels": {"app": "bad"}},
        "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {"containers": [{"name": "bad", "image": "nginx:latest", "securityContext": {"privileged": True}}]},
        },
    },
}


@pytest.fixture(scope="module")
def scan(cases):
    exe = checkov_scan.find_checkov(REPO_ROOT)
    require(exe, "checkov not found: `make tools` creates .venv/tools/checkov (or set MLPLATFORM_CHECKOV)")
    groups = {c.name: c.objects for c in cases}
    groups["known-bad"] = [KNOWN_BAD]
    return checkov_scan.scan(groups, exe)


def test_rendered_manifests_pass_checkov(scan):
    real = [f for f in scan.failed if "known-bad" not in f["file"]]
    assert not real, "\n".join(f"{f['check_id']} {f['resource']} {f['file']}: {f['name']}" for f in real)
    assert scan.passed > 100, "checkov ran almost no checks: were the manifests found?"


def test_checkov_reports_a_bad_workload(scan):
    bad = {f["check_id"] for f in scan.failed if "known-bad" in f["file"]}
    assert {"CKV_K8S_16", "CKV_K8S_11"} <= bad, bad  # privileged container, no CPU limit


def test_every_skipped_check_has_a_reason():
    for check_id, reason in checkov_scan.SKIPPED.items():
        assert check_id.startswith("CKV") and len(reason) > 20, check_id
