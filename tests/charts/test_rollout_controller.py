"""The tenant's rollout controller as rendered: its Role allows each request the controller makes
and nothing more; its Deployment runs the controller as that account, against the ConfigMap the
chart creates and the Prometheus the tenant file names.

The requests come from the real Kubernetes client (tests/rollout/k8s_wire.py records them at the
HTTP pool: NO CLUSTER), driven through every rollout phase (KubernetesBackend) and a state load and
save (ConfigMapStateStore). A new call in either class fails here until the Role allows it.
"""

from __future__ import annotations

from kubernetes import client

from cluster_helpers import tenant_files
from mlplatform.config import load_tenant
from mlplatform.rollout.backends import KubernetesBackend
from mlplatform.rollout.k8s_state import ConfigMapStateStore, state_configmap_name
from mlplatform.rollout.state import RolloutState
from tests.rollout.k8s_wire import Wire

PHASES = [("idle", 0), ("shadow", 0), ("canary", 10), ("canary", 50), ("promoted", 0), ("rolled_back", 0)]


def _controller_cases(cases):
    files = {p.parent.name: p for p in tenant_files()}
    for case in cases:
        if case.chart == "tenant" and case.release in files:
            deployments = [o for o in case.objects if o["kind"] == "Deployment"
                           and o["metadata"]["name"].endswith("-rollout")]
            if deployments:
                yield case, load_tenant(files[case.release]), deployments[0]


def _requests(cfg, namespace: str, configmap: dict) -> list:
    wire = Wire()
    wire.put_configmap(configmap)
    backend = KubernetesBackend(cfg, api=client.CustomObjectsApi(wire.api_client()), namespace=namespace)
    for phase, weight in PHASES:
        backend.apply(RolloutState(cfg.name, phase=phase, weight=weight, stable_version="3", challenger_version="4"))
    store = ConfigMapStateStore(namespace, state_configmap_name(cfg.name), api=client.CoreV1Api(wire.api_client()))
    store.save(store.load(cfg.name))
    return wire.calls


def _grants(role: dict) -> set[tuple]:
    out = set()
    for rule in role["rules"]:
        assert rule.get("resourceNames"), f"{role['metadata']['name']}: a rule without resourceNames ({rule})"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out |= {(verb, group, resource, name) for name in rule["resourceNames"]}
    return out


def test_every_tenant_file_runs_a_controller(cases):
    # the examples turn canary and shadow on in their cluster values: the controller must render
    assert {case.release for case, _, _ in _controller_cases(cases)} == {p.parent.name for p in tenant_files()}


def test_the_role_allows_each_request_and_nothing_more(cases):
    for case, cfg, deployment in _controller_cases(cases):
        objects = {(o["kind"], o["metadata"]["name"]): o for o in case.objects}
        namespace = deployment["metadata"]["namespace"]
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        (binding,) = [o for o in case.objects if o["kind"] == "RoleBinding"
                      and {"kind": "ServiceAccount", "name": account, "namespace": namespace} in o["subjects"]]
        role = objects[("Role", binding["roleRef"]["name"])]
        assert role["metadata"]["namespace"] == namespace
        configmap = objects[("ConfigMap", state_configmap_name(cfg.name))]
        assert "data" not in configmap  # the controller's to write: helm upgrade must not reset it

        calls = _requests(cfg, namespace, configmap)
        assert {c.namespace for c in calls} == {namespace}
        used = {(c.verb, c.group, c.resource, c.name) for c in calls}
        granted = _grants(role)
        assert used - granted == set(), (case.name, "requests the Role does not allow")
        assert granted - used == set(), (case.name, "grants no request needs")
        # custom objects go as JSON merge patches (CRDs accept no strategic merge patch)
        assert {c.content_type for c in calls if c.verb == "patch"} == {"application/merge-patch+json"}


def test_the_controller_pod_is_wired_to_its_account_state_and_prometheus(cases):
    for case, cfg, deployment in _controller_cases(cases):
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # never two writers
        assert pod["serviceAccountName"] == f"{cfg.name}-rollout"
        (container,) = pod["containers"]
        # its API token: a projected volume at the path load_incluster_config() reads, not automounted
        token_volumes = {v["name"] for v in pod["volumes"]
                         if any("serviceAccountToken" in src for src in v.get("projected", {}).get("sources", []))}
        assert pod["automountServiceAccountToken"] is False and len(token_volumes) == 1
        assert {m["mountPath"] for m in container["volumeMounts"] if m["name"] in token_volumes} == {
            "/var/run/secrets/kubernetes.io/serviceaccount"}
        assert container["command"] == ["mlplatform"] and container["args"][0] == "rollout-controller"
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MLPLATFORM_PROMETHEUS_URL"] == cfg.cluster.rollout.prometheus_url
        assert ".svc.cluster.local" in env["MLPLATFORM_PROMETHEUS_URL"]
        assert env["MLFLOW_TRACKING_URI"] == cfg.cluster.mlflow_tracking_uri
        # the tenant file the controller reads is the chart's ConfigMap, mounted where args say
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert container["args"][1] == f"{mounts['tenant']}/tenant.yaml"
        # no other pod of the tenant gets an API token at all
        assert _token_pods(case) == {deployment["metadata"]["name"]}, case.name


def _token_pods(case) -> set[str]:
    from mlplatform.verify.policy import pod_specs

    out = set()
    for obj in case.objects:
        for _, spec in pod_specs(obj):
            projected = [src for v in spec.get("volumes", []) for src in v.get("projected", {}).get("sources", [])]
            if spec.get("automountServiceAccountToken") is not False or any("serviceAccountToken" in s for s in projected):
                out.add(obj["metadata"]["name"])
    return out


def test_the_probes_read_the_promise_the_controller_writes(cases, tmp_path, monkeypatch):
    import subprocess
    import sys

    from mlplatform.rollout import cluster_cli

    for _, _, deployment in _controller_cases(cases):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        for probe in ("livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert f"{env['MLPLATFORM_HOME']}/{cluster_cli.ALIVE_FILE}" in command[-1]
    # the probe's own command, pointed at a promise written by the controller's function
    monkeypatch.setenv("MLPLATFORM_HOME", str(tmp_path))
    probe = [sys.executable if c == "python" else c for c in command]
    probe[-1] = probe[-1].replace(f"/tmp/mlplatform/{cluster_cli.ALIVE_FILE}", str(cluster_cli.alive_path()))
    assert subprocess.run(probe).returncode == 1  # no promise yet: not alive
    cluster_cli.promise_next_sign_of_life(60)
    assert subprocess.run(probe).returncode == 0
    monkeypatch.setattr(cluster_cli, "SLACK_SECONDS", 0)
    cluster_cli.promise_next_sign_of_life(-1)  # a promise already broken
    assert subprocess.run(probe).returncode == 1
