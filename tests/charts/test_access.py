"""How a user reaches a tenant on kind, checked without a cluster: one port (GATEWAY_LOCAL_PORT in
platform/cluster/versions.env) in kind.yaml, `make gateway`, `make status`, the tenant chart's NOTES and
docs/cluster.md, and request files that exist (tests/serving/test_request_files.py and
tests/search/test_search_request_files.py send them to a real model server)."""

from __future__ import annotations

import re

import yaml

from cluster_helpers import REPO_ROOT, tenant_files
from mlplatform.config import ClusterConfig

CLUSTER = REPO_ROOT / "platform" / "cluster"
# a request through the Gateway: a Host header and a localhost URL on the same command line
GATEWAY_CALL = re.compile(r"-H 'Host: (?P<host>[^']+)'.*http://localhost:(?P<port>[^/\s]+)/(?P<path>\S+)"
                          r"(?:.*-d @(?P<file>\S+))?")


def _versions() -> dict[str, str]:
    lines = (CLUSTER / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


PORT = _versions()["GATEWAY_LOCAL_PORT"]


def _gateway_calls(text: str) -> list[re.Match]:
    return [m for m in map(GATEWAY_CALL.search, text.splitlines()) if m]


def test_one_port_is_defined_and_mirrored():
    assert PORT.isdigit() and 1024 <= int(PORT) <= 65535
    assert ClusterConfig().gateway_local_port == int(PORT)
    values = yaml.safe_load((REPO_ROOT / "charts" / "tenant" / "values.yaml").read_text())
    assert values["cluster"]["gateway_local_port"] == int(PORT)
    # the release gets versions.env's value, so the NOTES follow a changed port
    assert '--set cluster.gateway_local_port="${GATEWAY_LOCAL_PORT}"' in (CLUSTER / "install" / "tenants.sh").read_text()


def test_kind_binds_no_host_port():
    """A host port bound by a kind node is taken before any port-forward can listen on it."""
    kind = yaml.safe_load((CLUSTER / "kind.yaml").read_text())
    assert [n.get("extraPortMappings") for n in kind["nodes"] if n.get("extraPortMappings")] == []


def test_scripts_use_the_variable():
    forward = (CLUSTER / "forward-gateway.sh").read_text()
    assert '"${GATEWAY_LOCAL_PORT}:80"' in forward
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^gateway:.*\n\tplatform/cluster/forward-gateway.sh$", makefile, flags=re.M)
    status = (CLUSTER / "status.sh").read_text()
    calls = _gateway_calls(status)
    assert len(calls) == 2 and {c["port"] for c in calls} == {"${GATEWAY_LOCAL_PORT}"}
    assert "port-forward" in status and "${GATEWAY_LOCAL_PORT}:80" in status
    for script in [*CLUSTER.glob("*.sh"), *CLUSTER.glob("install/*.sh")]:
        text = script.read_text()
        assert f"localhost:{PORT}" not in text and f" {PORT}:80" not in text, f"{script.name}: the port typed by hand"


def _check_calls(calls, tenants: set[str], where: str) -> set[tuple[str, str]]:
    """Each call: the tenant's host, the port, a V1 or V2 path of that tenant, a request file that exists.
    Returns the (tenant, protocol) pairs seen."""
    seen = set()
    for m in calls:
        tenant = m["host"].split(".", 1)[0]
        assert tenant in tenants and m["host"] == f"{tenant}.mlplatform.local", (where, m[0])
        assert m["port"] == PORT, f"{where}: {m[0]!r} uses port {m['port']}, versions.env says {PORT}"
        protocol = {f"v2/models/{tenant}/infer": "v2", f"v1/models/{tenant}:predict": "v1"}.get(m["path"])
        assert protocol, (where, m["path"])
        assert m["file"] == f"examples/{tenant}/requests/{protocol}.json", (where, m[0])
        assert (REPO_ROOT / m["file"]).is_file(), f"{where}: {m['file']} is not in the repository"
        seen.add((tenant, protocol))
    return seen


def test_every_tenant_has_v1_and_v2_request_files():
    for path in tenant_files():
        for protocol in ("v1", "v2"):
            body = yaml.safe_load((path.parent / "requests" / f"{protocol}.json").read_text())
            assert ("instances" if protocol == "v1" else "inputs") in body


def test_notes_send_the_request_files_on_the_port(cases):
    tenants = {p.parent.name for p in tenant_files()}
    for case in cases:
        if case.chart != "tenant" or case.release not in tenants:
            continue
        assert f"forwards http://localhost:{PORT} " in case.notes
        seen = _check_calls(_gateway_calls(case.notes), tenants, f"NOTES of {case.name}")
        assert seen == {(case.release, "v1"), (case.release, "v2")}


def test_cluster_doc_agrees():
    doc = (REPO_ROOT / "docs" / "cluster.md").read_text()
    tenants = {p.parent.name for p in tenant_files()}
    seen = _check_calls(_gateway_calls(doc), tenants, "docs/cluster.md")
    assert {("fraud", "v1"), ("fraud", "v2")} <= seen
    for m in re.finditer(r"localhost:(\d+)", doc):
        line = doc[doc.rfind("\n", 0, m.start()) + 1:doc.find("\n", m.end())]
        if "gateway" in line.lower() or "Host:" in line:
            assert m[1] == PORT, line
    assert "request.json" not in doc
