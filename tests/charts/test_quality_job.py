"""The delayed-label quality job reaches Prometheus on a cluster: each tenant's CronJob runs
`mlplatform quality-job` and pushes to the Pushgateway charts/mlplatform renders, which a
ServiceMonitor scrapes with its pushed labels kept; the webhook has a ServiceMonitor too; the
NetworkPolicies on both sides let exactly that push through. (That the job pushes the right
gauges: tests/monitoring/test_quality_push.py, against a real Pushgateway.)"""

from __future__ import annotations

from cluster_helpers import tenant_files
from mlplatform.config import load_tenant
from test_access import _versions


def _platform(cases):
    (case,) = [c for c in cases if c.name == "mlplatform/defaults"]
    return {(o["kind"], o["metadata"]["name"]): o for o in case.objects}


def _labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_the_platform_runs_a_scraped_pushgateway_and_scrapes_the_webhook(cases):
    objs = _platform(cases)
    deploy, service = objs[("Deployment", "pushgateway")], objs[("Service", "pushgateway")]
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":" + _versions()["PUSHGATEWAY_VERSION"])
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert _labels_match({"matchLabels": service["spec"]["selector"]}, pod_labels)
    for name, honour in (("pushgateway", True), ("retrain-webhook", False)):
        monitor, svc = objs[("ServiceMonitor", name)], objs[("Service", name)]
        assert _labels_match(monitor["spec"]["selector"], svc["metadata"]["labels"]), name
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]} and endpoint["path"] == "/metrics"
        # pushed series keep their job and tenant (the tenant's rules match on tenant); the webhook's own don't
        assert endpoint.get("honorLabels", False) is honour, name


def test_every_tenant_pushes_its_quality_to_that_gateway(cases):
    objs = _platform(cases)
    gateway_pod = objs[("Deployment", "pushgateway")]["spec"]["template"]["metadata"]["labels"]
    service = objs[("Service", "pushgateway")]
    platform_ns = service["metadata"]["namespace"]
    (ingress,) = objs[("NetworkPolicy", "pushgateway")]["spec"]["ingress"]
    files = {p.parent.name: p for p in tenant_files()}
    seen = set()
    for case in cases:
        if case.chart != "tenant" or case.release not in files:
            continue
        cfg = load_tenant(files[case.release])
        tenant = {(o["kind"], o["metadata"]["name"]): o for o in case.objects}
        cron = tenant[("CronJob", f"{cfg.name}-quality")]
        job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]
        (container,) = job_pod["spec"]["containers"]
        assert container["args"][:1] == ["quality-job"] and container["command"] == ["mlplatform"]
        env = {e["name"]: e["value"] for e in container["env"]}
        host, port = env["MLPLATFORM_PUSHGATEWAY"].rsplit(":", 1)
        assert host == f"{service['metadata']['name']}.{platform_ns}.svc.cluster.local"
        assert int(port) == service["spec"]["ports"][0]["port"]
        # tenant side: the job's egress allows the gateway pod on that port
        egress = [p for p in case.objects if p["kind"] == "NetworkPolicy"
                  and _labels_match(p["spec"]["podSelector"], job_pod["metadata"]["labels"])
                  and "Egress" in p["spec"]["policyTypes"] and p["spec"].get("egress")]
        assert any(_labels_match(to.get("podSelector", {}), gateway_pod)
                   and to["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": platform_ns}
                   and {"protocol": "TCP", "port": int(port)} in rule["ports"]
                   for p in egress for rule in p["spec"]["egress"] for to in rule.get("to", [])), case.name
        # platform side: the gateway admits the job's pods from a tenant namespace
        ns = tenant[("Namespace", cfg.name)]
        assert any(_labels_match(src.get("namespaceSelector", {}), ns["metadata"]["labels"])
                   and _labels_match(src.get("podSelector", {}), job_pod["metadata"]["labels"])
                   for src in ingress["from"]), case.name
        seen.add(case.release)
    assert seen == set(files)
