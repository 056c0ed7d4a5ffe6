"""The rollout state of one tenant and where it is kept (a `StateStore`):

    FileStateStore       <home>/tenants/<name>/rollout/state.json, written atomically (embedded)
    ConfigMapStateStore  a ConfigMap in the tenant namespace (cluster: k8s_state.py), so a
                         restarted controller pod resumes where the last one stopped

Phases: idle -> shadow -> canary -> promoted | rolled_back. `pending` marks a decision taken but
not yet fully applied (promote / rollback): a rerun after an interruption finishes it (every
action is idempotent), so the state on disk is always one the next run can resume or complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from mlplatform.workspace import Workspace

Phase = Literal["idle", "shadow", "canary", "promoted", "rolled_back"]
ACTIVE: tuple[str, ...] = ("shadow", "canary")
FINAL: tuple[str, ...] = ("promoted", "rolled_back")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Step:
    time: str
    phase: str
    weight: int
    action: str  # start | hold | advance | promote | rollback | resume
    reason: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RolloutState:
    tenant: str
    phase: Phase = "idle"
    weight: int = 0  # canary traffic percent
    stable_version: str | None = None
    challenger_version: str | None = None
    failed_checks: int = 0  # failed analyses in a row
    phase_started_at: str | None = None
    pending: str | None = None  # "promote" | "rollback" while that decision is being applied
    reason: str = ""
    started_at: str | None = None
    updated_at: str | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def shadow(self) -> bool:
        return self.phase == "shadow"

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    def record(self, action: str, reason: str = "", checks: list[dict] | None = None) -> Step:
        step = Step(now_iso(), self.phase, self.weight, action, reason, list(checks or []))
        self.steps.append(step)
        return step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RolloutState":
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in raw.items() if k in known}
        data["steps"] = [Step(**s) for s in data.get("steps", [])]
        return cls(**data)


def rollout_dir(ws: Workspace, tenant: str) -> Path:
    return ws.tenant(tenant) / "rollout"


def state_path(ws: Workspace, tenant: str) -> Path:
    return rollout_dir(ws, tenant) / "state.json"


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: a reader sees the old or the new file, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(ws: Workspace, state: RolloutState) -> Path:
    state.updated_at = now_iso()
    path = state_path(ws, state.tenant)
    write_json_atomic(path, state.to_dict())
    return path


def load_state(ws: Workspace, tenant: str) -> RolloutState:
    """The saved state, or a fresh idle one."""
    path = state_path(ws, tenant)
    if not path.exists():
        return RolloutState(tenant)
    return RolloutState.from_dict(json.loads(path.read_text()))


class StateStore(Protocol):
    """Where the controller keeps a tenant's rollout state between analyses and across restarts."""

    def load(self, tenant: str) -> RolloutState: ...

    def save(self, state: RolloutState) -> None: ...


class FileStateStore:
    """The embedded store: the workspace's state.json (save_state / load_state)."""

    def __init__(self, ws: Workspace):
        self.ws = ws

    def load(self, tenant: str) -> RolloutState:
        return load_state(self.ws, tenant)

    def save(self, state: RolloutState) -> None:
        save_state(self.ws, state)
