"""The whole kind stack and one RayJob fit the runner the e2e workflow uses (4 CPUs, 16 GB):
requests summed from the rendered charts (charts/mlplatform and every example tenant, as
install/tenants.sh installs them), the largest tenant's RayJob as training/rayjob.py builds it, and
the upstream components listed in platform/cluster/budget.yaml (whose own figures, where we set
them, must be what the install scripts set)."""

from __future__ import annotations

from decimal import Decimal

import yaml

from cluster_helpers import REPO_ROOT, tenant_files
from mlplatform.config import load_tenant
from mlplatform.training.rayjob import build_rayjob
from mlplatform.verify.policy import pod_specs

BUDGET = yaml.safe_load((REPO_ROOT / "platform" / "cluster" / "budget.yaml").read_text())
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def cpu(q) -> Decimal:
    """CPU cores of a quantity ("250m", "1", 0.5)."""
    q = str(q)
    return Decimal(q[:-1]) / 1000 if q.endswith("m") else Decimal(q)


def mem(q) -> int:
    q = str(q)
    for unit, factor in UNITS.items():
        if q.endswith(unit):
            return int(Decimal(q[: -len(unit)]) * factor)
    return int(Decimal(q))


def pod_requests(spec: dict) -> tuple[Decimal, int]:
    """What the scheduler reserves for a pod: the containers' sum, or the largest init container."""
    def req(c):
        r = (c.get("resources") or {}).get("requests") or {}
        return cpu(r.get("cpu", 0)), mem(r.get("memory", 0))
    main = [req(c) for c in spec["containers"]]
    init = [req(c) for c in spec.get("initContainers", [])]
    return (max([sum(c for c, _ in main)] + [c for c, _ in init]),
            max([sum(m for _, m in main)] + [m for _, m in init]))


def object_requests(obj: dict) -> tuple[Decimal, int]:
    """Requests of one rendered object's pods at their steady count (CronJob: one run at a time,
    concurrencyPolicy Forbid; InferenceService: minReplicas)."""
    kind = obj["kind"]
    if kind == "InferenceService":
        pred = obj["spec"]["predictor"]
        c, m = pod_requests(pred)
        return c * pred.get("minReplicas", 1), m * pred.get("minReplicas", 1)
    if kind in ("Deployment", "StatefulSet"):
        c, m = pod_requests(obj["spec"]["template"]["spec"])
        return c * obj["spec"].get("replicas", 1), m * obj["spec"].get("replicas", 1)
    if kind in ("CronJob", "Job", "DaemonSet"):
        (_, spec), = list(pod_specs(obj))
        return pod_requests(spec)
    assert not list(pod_specs(obj)), f"{kind} {obj['metadata']['name']}: pods this test does not count"
    return Decimal(0), 0


def rayjob_requests(job: dict) -> tuple[Decimal, int]:
    cluster = job["spec"]["rayClusterSpec"]
    parts = [(pod_requests(cluster["headGroupSpec"]["template"]["spec"]), 1),
             (pod_requests(job["spec"]["submitterPodTemplate"]["spec"]), 1)]
    parts += [(pod_requests(g["template"]["spec"]), g["replicas"]) for g in cluster["workerGroupSpecs"]]
    return sum(c * n for (c, _), n in parts), sum(m * n for (_, m), n in parts)


def _installed(cases):
    """charts/mlplatform with its defaults and each example tenant as its own file configures it."""
    names = {p.parent.name for p in tenant_files()}
    return [c for c in cases if c.name == "mlplatform/defaults" or (c.chart == "tenant" and c.name == f"tenant/{c.release}"
                                                                   and c.release in names)]


def test_upstream_figures_we_set_are_what_the_install_sets():
    for entry in BUDGET["upstream"]:
        if "set_in" in entry:
            text = (REPO_ROOT / entry["set_in"]["file"]).read_text()
            assert entry["set_in"]["text"] in text, (entry["name"], entry["set_in"])
        else:
            assert entry.get("source"), f"{entry['name']}: a figure we do not set needs its source"


def test_the_stack_and_one_rayjob_fit_the_runner(cases):
    rows = []
    for case in _installed(cases):
        for obj in case.objects:
            c, m = object_requests(obj)
            if c or m:
                rows.append((f"{case.name} {obj['kind']}/{obj['metadata']['name']}", c, m))
    rayjobs = {p.parent.name: rayjob_requests(build_rayjob(load_tenant(p), run_id="budget")) for p in tenant_files()}
    biggest = max(rayjobs, key=lambda t: rayjobs[t])
    rows.append((f"RayJob of {biggest}", *rayjobs[biggest]))
    rows += [(e["name"], cpu(e["cpu"]), mem(e["memory"])) for e in BUDGET["upstream"]]

    total_cpu, total_mem = sum(r[1] for r in rows), sum(r[2] for r in rows)
    runner = BUDGET["runner"]
    table = "\n".join(f"{c * 1000:>6.0f}m {m / 2**20:>7.0f}Mi  {name}" for name, c, m in rows)
    assert total_cpu <= cpu(runner["cpu"]), f"requests {total_cpu} CPUs > {runner['cpu']}:\n{table}"
    assert total_mem <= mem(runner["memory"]), f"requests {total_mem / 2**30:.2f} GiB > {runner['memory']}:\n{table}"
    # what we render is counted at all: both tenants' three predictors, the platform's services
    assert sum(1 for name, _, _ in rows if "InferenceService/" in name) == 3 * len(rayjobs)
    assert any("mlplatform/defaults Deployment/mlflow" in name for name, _, _ in rows)


def test_cpu_and_memory_units():
    assert cpu("250m") == Decimal("0.25") and cpu("1") == 1 and cpu(2) == 2
    assert mem("512Mi") == 512 * 2**20 and mem("1Gi") == 2**30 and mem("0") == 0
