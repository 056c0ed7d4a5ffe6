"""A pod's identity from a mounted Secret: MLPLATFORM_IDENTITY_DIR names a folder whose files are
named after the variables the clients read (MLFLOW_TRACKING_USERNAME/PASSWORD, MLPLATFORM_REDIS_*,
MLPLATFORM_FEAST_REGISTRY, MLPLATFORM_PREDICTION_LOG: charts/tenant/templates/identity.yaml), and
`mlplatform` sets each variable from its file when the command starts.

Files, not `env`/`envFrom` from the Secret: a variable set by the kubelet is in the environment of
every process of the container from its start, including ones that never need it (shells of
`kubectl exec`, probes, debug dumps that print the environment), and checkov's CKV_K8S_35 flags it;
here only `mlplatform`'s own process reads the files, when it starts. A variable the pod's env sets
itself wins, as env wins over envFrom in Kubernetes. Only names of variables are read: the
kubelet's own entries in the folder (`..data`, the timestamped directory it points to) are skipped.
The files are read once: a changed Secret reaches a running pod when it restarts.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

from mlplatform.errors import UserError

IDENTITY_DIR = "MLPLATFORM_IDENTITY_DIR"
VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class IdentityNotMounted(UserError, FileNotFoundError):
    """MLPLATFORM_IDENTITY_DIR names a folder that is not there."""


def load_identity(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Set the variables of the folder IDENTITY_DIR names (unset: nothing to do); the names set.
    A named folder that does not exist is an error: the pod would run as nobody."""
    folder = environ.get(IDENTITY_DIR)
    if not folder:
        return []
    path = Path(folder)
    if not path.is_dir():
        raise IdentityNotMounted(f"{IDENTITY_DIR}={folder}: no such folder (the pod's identity Secret is not mounted)")
    names = []
    for entry in sorted(path.iterdir()):
        if VARIABLE.match(entry.name) and entry.is_file() and entry.name not in environ:
            environ[entry.name] = entry.read_text().rstrip("\n")
            names.append(entry.name)
    return names
