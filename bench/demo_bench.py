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


BUDGET_S = 300  # `make demo` on 2 cores, both tenants (issue 18)


def _budget(dm: dict) -> str:
    """The total against the budget, and the stage that costs most (wall)."""
    stages = [(w, t, s) for t, st in dm["tenants"].items() for s, w in st["wall"].items() if w is not None]
    if not dm.get("total_s") or not stages:
        return ""
    w, t, s = max(stages)
    return (f"Budget: {BUDGET_S} s on 2 cores; this run {dm['total_s'] / BUDGET_S:.2f}x the budget "
            f"({'within' if dm['total_s'] <= BUDGET_S else 'over'}); its largest stage: {t} {s}, {w} s "
            f"({w / dm['total_s']:.0%}). Read it with the machine above: per-core speed differs between machines "
            "of this kind (compare the sections' baselines between runs).")


def markdown(dm: dict) -> list[str]:
    L = ["## The demo (`make demo`) by stage", ""]
    if dm.get("status") == "ok":
        L += [f"From `{dm['source']}` (started {dm['started']}; total {dm['total_s']} s). Wall: as the demo shows "
              "it, KFP task start-up included; inside the step: the step's own work. " + _budget(dm), "",
              "| tenant | stage | wall s | inside the step s |", "|---|---|---|---|"]
        for tenant, st in dm["tenants"].items():
            for stage in dict.fromkeys([*st["wall"], *st["inside_step"]]):
                wall, inside = st["wall"].get(stage), st["inside_step"].get(stage)
                L.append(f"| {tenant} | {stage} | {wall if wall is not None else '-'} | "
                         f"{inside if inside is not None else '-'} |")
    else:
        L.append(dm.get("status", ""))
    return L
