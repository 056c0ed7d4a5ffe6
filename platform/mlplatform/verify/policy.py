"""Container security policy for every rendered workload, whatever its kind.

A pod spec is found anywhere in an object (Deployment, StatefulSet, CronJob, KServe predictor,
RayJob head/worker/submitter templates ...) as a mapping with a `containers` list. Each container
(init containers included) must have:
  * requests and limits for cpu and memory,
  * runAsNonRoot true and seccompProfile RuntimeDefault (on the container or its pod),
  * capabilities.drop containing ALL and allowPrivilegeEscalation false,
  * a pinned image: a tag other than `latest`, or a digest.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_TAG = re.compile(r":([\w][\w.-]{0,127})$")


def image_pinned(image: str) -> bool:
    if _DIGEST.search(image):
        return True
    last = image.rsplit("/", 1)[-1]  # a registry port (host:5000/x) is not a tag
    m = _TAG.search(last)
    return bool(m) and m.group(1) != "latest"


def pod_specs(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, pod spec) for every mapping holding a `containers` list, at any depth."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield path or "(root)", node
        for key, value in node.items():
            yield from pod_specs(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from pod_specs(value, f"{path}[{i}]")


def _effective(container: dict[str, Any], pod: dict[str, Any], key: str) -> Any:
    """A securityContext setting on the container, else inherited from the pod."""
    csc = container.get("securityContext") or {}
    psc = pod.get("securityContext") or {}
    return csc.get(key, psc.get(key))


def container_violations(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    problems = []
    res = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if not (res.get(kind) or {}).get(r):
                problems.append(f"no {kind}.{r}")
    if _effective(container, pod, "runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if (_effective(container, pod, "seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("seccompProfile is not RuntimeDefault")
    csc = container.get("securityContext") or {}
    if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities.drop does not contain ALL")
    if csc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if csc.get("privileged"):
        problems.append("privileged")
    image = container.get("image", "")
    if not image_pinned(image):
        problems.append(f"image {image!r} is not pinned (tag other than latest, or digest)")
    return problems


def check_object(obj: dict[str, Any]) -> list[str]:
    """Violations of one object, each as '<path> container <name>: <problem>'."""
    out = []
    for path, pod in pod_specs(obj.get("spec", {}), "spec"):
        for field in ("initContainers", "containers"):
            for c in pod.get(field) or []:
                for problem in container_violations(c, pod):
                    out.append(f"{path}.{field} {c.get('name', '?')}: {problem}")
    return out
