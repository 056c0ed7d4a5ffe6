"""Scan rendered manifests with checkov (its Kubernetes framework).

checkov runs from its own virtualenv (.venv/tools/checkov, created by `make tools`): checkov 3.3
pins packaging<24, while ray and pytest need packaging>=24, so it cannot share .venv. It is called
as a subprocess; $MLPLATFORM_CHECKOV overrides the executable.

No check may fail. Skipped checks are listed in SKIPPED with the reason, nowhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SKIPPED: dict[str, str] = {
    # The mlplatform image is built locally and loaded into kind (`kind load docker-image`), so it
    # has no registry digest and must not be pulled: IfNotPresent, pinned by an immutable tag.
    # The policy check (mlplatform.verify.policy) still rejects `latest` and untagged images.
    "CKV_K8S_43": "images are pinned by tag; the locally built image has no registry digest",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent is required for images loaded into kind",
}


def find_checkov(repo_root: Path) -> str | None:
    env = os.environ.get("MLPLATFORM_CHECKOV")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    local = repo_root / ".venv" / "tools" / "checkov" / "bin" / "checkov"
    if local.exists():
        return str(local)
    return shutil.which("checkov")


@dataclass
class CheckovResult:
    passed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # {check_id, name, resource, file}
    skipped: list[str] = field(default_factory=list)
    raw: Any = None


def scan(manifests: dict[str, list[dict[str, Any]]], checkov: str, skip: dict[str, str] | None = None,
         timeout: int = 600) -> CheckovResult:
    """Write each group of objects to <group>.yaml in a temp dir and scan that dir once."""
    skip = SKIPPED if skip is None else skip
    with tempfile.TemporaryDirectory(prefix="mlplatform-checkov-") as tmp:
        for group, objects in manifests.items():
            name = group.replace("/", "__").replace("+", "_") + ".yaml"
            Path(tmp, name).write_text(yaml.safe_dump_all(objects, sort_keys=False))
        cmd = [checkov, "--directory", tmp, "--framework", "kubernetes", "--output", "json",
               "--compact", "--skip-download"]
        if skip:
            cmd += ["--skip-check", ",".join(sorted(skip))]
        env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"checkov failed to run (exit {proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    result = CheckovResult(raw=data)
    for rep in reports:
        if not isinstance(rep, dict) or "results" not in rep:  # "no resources found" summary
            continue
        res = rep["results"]
        result.passed += len(res.get("passed_checks", []))
        result.skipped += [c["check_id"] for c in res.get("skipped_checks", [])]
        for c in res.get("failed_checks", []):
            result.failed.append({"check_id": c["check_id"], "name": c.get("check_name", ""),
                                  "resource": c.get("resource", ""), "file": c.get("file_path", "")})
    return result
