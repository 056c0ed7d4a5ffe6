"""platform/cluster: one source of pinned versions, consistent with the charts and the CRDs;
scripts that parse (bash -n) and pass shellcheck; Makefile targets documented."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from cluster_helpers import REPO_ROOT, require
from mlplatform.config import Namespaces

CLUSTER = REPO_ROOT / "platform" / "cluster"
SCRIPTS = sorted(CLUSTER.glob("*.sh")) + sorted((CLUSTER / "install").glob("*.sh"))


def _versions() -> dict[str, str]:
    out = {}
    for line in (CLUSTER / "versions.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key] = value
    return out


def test_versions_env_is_plain_and_pins_every_component():
    v = _versions()
    for key in ["KIND_VERSION", "K8S_VERSION", "KIND_NODE_IMAGE", "CERT_MANAGER_VERSION", "GATEWAY_API_VERSION",
                "ENVOY_GATEWAY_VERSION", "KSERVE_VERSION", "KUBERAY_VERSION", "KFP_VERSION",
                "KUBE_PROMETHEUS_STACK_VERSION", "PROMETHEUS_OPERATOR_VERSION", "MLPLATFORM_IMAGE", "CHECKOV_VERSION"]:
        assert v.get(key), key
        assert "latest" not in v[key] and "$" not in v[key] and " " not in v[key], key


def test_versions_match_the_crd_releases():
    """The cluster installs exactly the releases whose CRDs verification validates against."""
    readme = (REPO_ROOT / ".." / "shared" / "crds" / "README.md")
    require(readme.exists(), f"no {readme}")
    text = readme.read_text()
    v = _versions()
    for component, version in [("kserve", v["KSERVE_VERSION"]), ("kuberay", f"v{v['KUBERAY_VERSION']}"),
                               ("prometheus-operator", v["PROMETHEUS_OPERATOR_VERSION"]),
                               ("gateway-api", v["GATEWAY_API_VERSION"]), ("kubeflow pipelines", v["KFP_VERSION"])]:
        assert f"{component} {version}" in text, f"{component} {version} is not the CRD release in ../shared/crds"


def test_kind_node_image_matches_k8s_version():
    v = _versions()
    assert re.fullmatch(r"kindest/node:v[0-9.]+@sha256:[0-9a-f]{64}", v["KIND_NODE_IMAGE"])
    assert v["KIND_NODE_IMAGE"].startswith(f"kindest/node:v{v['K8S_VERSION']}@")
    assert tuple(int(x) for x in v["KIND_VERSION"].lstrip("v").split(".")[:2]) >= (0, 24)
    kind = yaml.safe_load((CLUSTER / "kind.yaml").read_text())
    assert kind["name"] == v["KIND_CLUSTER_NAME"]
    assert "image" not in str(kind["nodes"]), "the node image is pinned in versions.env only"


def test_pod_security_version_follows_k8s_version(cases):
    minor = ".".join(_versions()["K8S_VERSION"].split(".")[:2])
    for case in cases:
        for o in case.objects:
            if o["kind"] == "Namespace":
                assert o["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == f"v{minor}"


def test_namespace_defaults_equal_versions_env():
    v = _versions()
    ns = Namespaces()
    assert (ns.platform, ns.gateway, ns.gateway_proxy, ns.monitoring, ns.kubeflow, ns.kuberay) == (
        v["NS_PLATFORM"], v["NS_GATEWAY"], v["NS_GATEWAY_PROXY"], v["NS_MONITORING"], v["NS_KUBEFLOW"], v["NS_KUBERAY"])
    platform_values = yaml.safe_load((REPO_ROOT / "charts" / "mlplatform" / "values.yaml").read_text())
    assert platform_values["global"]["namespaces"] == {"kubeflow": v["NS_KUBEFLOW"], "monitoring": v["NS_MONITORING"]}


def test_image_is_the_same_everywhere():
    image = _versions()["MLPLATFORM_IMAGE"]
    from mlplatform.config import ClusterConfig

    assert ClusterConfig().image == image
    values = yaml.safe_load((REPO_ROOT / "charts" / "mlplatform" / "values.yaml").read_text())["image"]
    assert f"{values['repository']}:{values['tag']}" == image


def test_every_dependency_has_an_install_script():
    names = {p.stem for p in (CLUSTER / "install").glob("*.sh")}
    assert {"cert-manager", "gateway", "kserve", "kfp", "kuberay", "monitoring", "mlplatform", "tenants"} <= names
    up = (CLUSTER / "up.sh").read_text()
    for name in names:
        assert name in up, f"up.sh does not run install/{name}.sh"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(CLUSTER)))
def test_script_parses_and_is_executable(script):
    if script.name != "lib.sh":  # lib.sh is sourced, not run
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash")
        if script.parent.name == "install":
            assert "install)" in text and "uninstall)" in text
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_scripts_pass_shellcheck():
    exe = shutil.which("shellcheck")
    require(exe, "shellcheck not found (Debian/Ubuntu: apt-get install shellcheck)")
    proc = subprocess.run([exe, "-x", "-P", "SCRIPTDIR", "-S", "info", *map(str, SCRIPTS)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_makefile_targets_are_documented():
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ["up", "down", "status", "verify", "crds", "schema-check", "tools"]:
        assert re.search(rf"^{re.escape(target)}:.*## \S", makefile, flags=re.M), target
