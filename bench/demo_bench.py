"""The demo by stage: the newest `make demo` run's stage timings (runs/*/summary.json), as the demo
shows them (wall, KFP task start-up included) and inside each step. Read, not measured.
"""

from __future__ import annotations

import json

from bench.common import REPO


def run() -> dict:
    runs = sorted((REPO / "runs").glob("2*/summary.json"))
    if not runs:
        return {"status": "no runs/*/summary.json: run `make demo` first"}
    s = json.loads(runs[-1].read_text())
    return {"status": "ok", "source": str(runs[-1].relative_to(REPO)), "started": s.get("started"),
            "total_s": s.get("seconds"),
            "tenants": {t: {"wall": v.get("stages_wall") or {}, "inside_step": v.get("stages") or {}}
                        for t, v in s.get("tenants", {}).items()}}


def markdown(dm: dict) -> list[str]:
    L = ["## The demo (`make demo`) by stage", ""]
    if dm.get("status") == "ok":
        L += [f"From `{dm['source']}` (started {dm['started']}; total {dm['total_s']} s). Wall: as the demo shows "
              "it, KFP task start-up included; inside the step: the step's own work.", "",
              "| tenant | stage | wall s | inside the step s |", "|---|---|---|---|"]
        for tenant, st in dm["tenants"].items():
            for stage in dict.fromkeys([*st["wall"], *st["inside_step"]]):
                wall, inside = st["wall"].get(stage), st["inside_step"].get(stage)
                L.append(f"| {tenant} | {stage} | {wall if wall is not None else '-'} | "
                         f"{inside if inside is not None else '-'} |")
    else:
        L.append(dm.get("status", ""))
    return L
