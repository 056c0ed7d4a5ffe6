"""Render a scaffolded tenant from its plan: the tenant.yaml text, the notes the CLI prints, the README."""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from mlplatform.config import slug
from mlplatform.scaffold.columns import BOUNDS_MARGIN, MAX_CATEGORIES, native
from mlplatform.scaffold.infer import SYNTHETIC_EPOCH, TIME_UNITS
from mlplatform.scaffold.plan import Plan

MIN_ROWS_FRACTION = 0.5  # expectations.min_rows: half the rows the table holds today
LABEL_RATE_FACTOR = 2.0  # expectations.label_rate: observed rate / 2 .. observed rate * 2
MAX_DAILY_PARTITIONS = 400  # more distinct days than this: ingest writes one file instead
MIN_ROC_AUC = 0.55
MAX_REGRESSION = {"pr_auc": 0.05, "roc_auc": 0.02}


class _Flow(dict):
    """A mapping written on one line in the tenant file (columns, features, entities)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def tenant_dict(plan: Plan, data_path: str) -> dict[str, Any]:
    df, n = plan.df, len(plan.df)
    rate = float(df[plan.label].mean())
    ts = plan.times()
    span_days = (ts.max() - ts.min()).total_seconds() / 86400
    distinct_days = ts.dt.strftime("%Y-%m-%d").nunique()
    entity_name = re.sub(r"_id$", "", plan.entity) or plan.entity
    if entity_name in {plan.entity, ""} and plan.generated_entity:
        entity_name = "row"
    view = f"{slug(plan.name)}_features"
    columns = [_Flow({k: native(v) for k, v in c.items()}) for c in plan.columns]
    for c in columns:
        if "values" in c:
            c["values"] = [native(v) for v in c["values"]]
    return {
        "name": plan.name,
        "description": f"Scaffolded by `mlplatform tenant new` from {plan.source.name}: "
        f"predict {plan.label} ({n} rows, positive rate {rate:.4f}). Review README.md.",
        "task": "binary_classification",
        "data": {
            "source": "table",
            "path": data_path,
            "timestamp": plan.timestamp,
            **({"timestamp_unit": plan.timestamp_unit, "timestamp_origin": plan.timestamp_origin.isoformat()}
               if plan.timestamp_unit else {}),
            "label": plan.label,
            "partition_by_day": bool(distinct_days <= MAX_DAILY_PARTITIONS),
            "columns": columns,
            "expectations": {
                "min_rows": max(1, int(n * MIN_ROWS_FRACTION)),
                "label_rate": {
                    "min": math.floor(rate / LABEL_RATE_FACTOR * 1e4) / 1e4,
                    "max": min(1.0, math.ceil(rate * LABEL_RATE_FACTOR * 1e4) / 1e4),
                },
            },
        },
        "features": {
            "as_of": "at_event",
            "entities": [_Flow(name=entity_name, join_key=plan.entity,
                                description="one row of the table" if plan.generated_entity else "")],
            "feature_views": [{
                "name": view,
                "description": f"columns of {plan.source.name}, as of each row's time",
                "entities": [entity_name],
                "ttl_days": float(max(30, math.ceil(span_days) + 1)),
                "features": [_Flow({k: native(v) for k, v in f.items()}) for f in plan.features],
            }],
        },
        "model": {
            "features": [f["name"] for f in plan.features],
            "params": {"max_depth": 4, "eta": 0.1, "subsample": 0.9, "colsample_bytree": 0.9},
            "num_boost_round": 200,
            "early_stopping_rounds": 20,
            "imbalance": "auto",
            "split": {"validation_days": plan.validation_days, "gap_days": 0},
            "ray": {"num_cpus": 2, "num_workers": 1},
        },
        "metrics": {
            "primary": "pr_auc",
            "gates": {"minimum": {"roc_auc": MIN_ROC_AUC}, "max_regression": dict(MAX_REGRESSION)},
        },
    }


def tenant_yaml(plan: Plan, tenant: dict[str, Any]) -> str:
    """The text of tenant.yaml: a header saying where it came from, then `tenant` (columns, features and
    entities one per line)."""
    header = (f"# Tenant {plan.name}: scaffolded by `mlplatform tenant new` from {plan.source.name}.\n"
              "# Inferred, not designed: read README.md, then review and edit this file.\n")
    return header + yaml.dump(tenant, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110)


def notes(plan: Plan) -> list[str]:
    """What the user must know before running the tenant: rows left out, and how time was read.
    The CLI prints these; the README carries them too."""
    out = []
    why = {
        "missing label": f"have no label (`{plan.label}` is empty): they are dropped from the tenant's table, so "
                         "neither training nor validation sees them (nor the online store; scaffold the table "
                         "again once they are labelled)",
        "missing timestamp": f"have no timestamp (`{plan.timestamp}` is empty): they are dropped from the tenant's "
                             "table (a row without a time has no place in the time split)",
    }
    for reason, count in plan.dropped_rows.items():
        out.append(f"{count} of {plan.rows_read} rows {why[reason]}.")
    if plan.timestamp_unit:
        ts = plan.times()
        out.append(
            f"`{plan.timestamp}` holds numbers, read as {TIME_UNITS[plan.timestamp_unit]} since "
            f"{plan.timestamp_origin.isoformat()} (`data.timestamp_unit`, `data.timestamp_origin`): the table keeps "
            f"the numbers and ingest converts them, so the rows run from {ts.min().isoformat()} to "
            f"{ts.max().isoformat()} (UTC). If those dates are wrong, scaffold again with the right "
            "--timestamp-unit / --timestamp-origin."
        )
    return out


def readme(plan: Plan, tenant: dict[str, Any], data_path: str) -> str:
    df, n = plan.df, len(plan.df)
    data, model = tenant["data"], tenant["model"]
    rate = float(df[plan.label].mean())
    lines = [
        f"# Tenant `{plan.name}` (scaffolded)",
        "",
        f"Generated by `mlplatform tenant new {plan.name} --from-table {plan.source}` "
        f"from `{plan.source.name}`: a binary classifier of `{plan.label}` over {n} rows "
        f"(positive rate {rate:.4f}). Nothing here is code: every choice below lives in `tenant.yaml`; "
        "review it, edit it, then run `mlplatform run " + plan.name + "`.",
        "",
        "## The data",
        f"- The table is copied, prepared, to `{data_path}` (parquet, so the types below are the types "
        "ingest and validation see). `data.path` is relative to this folder: the tenant is self-contained. "
        "To retrain on new data, replace that file with a table prepared the same way (the columns below, "
        "including the generated ones), or scaffold the new export again with `--overwrite` (which re-infers "
        "the checks from it).",
    ]
    if plan.renamed:
        renames = ", ".join(f"`{a}` -> `{b}`" for a, b in plan.renamed.items())
        lines.append(f"- Columns renamed to identifiers: {renames}.")
    lines += [f"- **{note}**" for note in notes(plan)]
    for col, note in plan.converted.items():
        lines.append(f"- `{col}`: {note}.")
    mapping = ", ".join(f"`{k}` -> {v}" for k, v in plan.label_mapping.items())
    lines.append(f"- Label `{plan.label}` mapped to 0/1: {mapping}. Check that 1 is the class to detect; "
                 "if not, invert the label in the copied table and regenerate the expectations.")
    if plan.synthetic_timestamp:
        lines.append(
            f"- **No timestamp was given**: `{plan.timestamp}` is synthetic, one row per second from "
            f"{SYNTHETIC_EPOCH.isoformat()} in file order. The time split therefore holds out the *last rows of "
            "the file*; if the file is not in time order, that split is not a test of the future. "
            "Pass `--timestamp` when the table has event times."
        )
    elif not plan.timestamp_unit:  # numeric times: in the notes above
        lines.append(f"- Timestamp: `{plan.timestamp}` (stored as UTC).")
    if plan.generated_entity:
        lines.append(
            f"- **No entity was given**: `{plan.entity}` numbers the rows of the original file (0, 1, ...), "
            "so each row is its own entity and online features are fetched by that number."
        )
    else:
        lines.append(f"- Entity: `{plan.entity}`; each row's columns are its features as of the row's time.")
        if plan.duplicate_keys:
            lines.append(
                f"  **{plan.duplicate_keys} row(s) share an entity and a timestamp with another row**: the "
                "point-in-time join gives such rows one of the rows' features. Make timestamps finer or the key unique."
            )
    lines += ["", "## Columns", "", "| column | type | checks | model input |", "|---|---|---|---|"]
    feats = set(model["features"])
    for c in data["columns"]:
        checks = []
        if c.get("nullable"):
            checks.append("nullable")
        if c.get("unique"):
            checks.append("unique")
        if "min" in c and "max" in c:
            checks.append(f"{c['min']} .. {c['max']}")
        elif "min" in c:
            checks.append(f">= {c['min']}")
        if "values" in c:
            vals = c["values"]
            checks.append("values " + ", ".join(map(str, vals[:8])) + (" ..." if len(vals) > 8 else ""))
        role = "yes" if c["name"] in feats else f"no: {plan.excluded.get(c['name'], '')}"
        lines.append(f"| `{c['name']}` | {c['type']} | {'; '.join(checks) or '-'} | {role} |")
    lines += [
        "",
        "How the checks were inferred (the validation gate stops a run whose batch breaks one):",
        f"- numeric `min`/`max`: the observed range widened by {BOUNDS_MARGIN:.0%} of the range on each side "
        "(never below 0 when no value is negative), rounded outwards, so a fresh batch from the same source passes;",
        f"- `values`: string and integer columns with at most {MAX_CATEGORIES} distinct values (and at most half "
        "as many as rows). A new category (or a new integer) fails validation: widen the list, or drop `values` "
        "and set `min`/`max` for counts that may grow;",
        "- `nullable`: columns with missing values today; the others must stay complete;",
        f"- `expectations.min_rows` = {data['expectations']['min_rows']} ({MIN_ROWS_FRACTION:.0%} of today's rows); "
        f"`label_rate` = observed rate / {LABEL_RATE_FACTOR:g} .. x {LABEL_RATE_FACTOR:g}.",
    ]
    if plan.codes:
        lines += ["", "## Categories",
                  "String columns with few values are model inputs through an integer code column added to the "
                  "copied table (code = position in the sorted values, -1 when missing or unknown). A new batch "
                  "must carry the code column too (or write a `features.builder`)."]
        for code, (source, values) in plan.codes.items():
            lines.append(f"- `{code}` codes `{source}`: " + ", ".join(f"{i} = `{v}`" for i, v in enumerate(values)))
    regression = ", ".join(f"{v:g} {k}" for k, v in MAX_REGRESSION.items())
    lines += [
        "",
        "## Training and promotion",
        f"- Features: one entity, one feature view `{tenant['features']['feature_views'][0]['name']}` with the "
        f"{len(feats)} model inputs, joined point-in-time `as_of: at_event`.",
        f"- Time split: the newest {plan.validation_fraction:.0%} of rows are held out "
        f"(`model.split.validation_days: {model['split']['validation_days']}`; {plan.split_rows[0]} train, "
        f"{plan.split_rows[1]} validation rows today, both with positives).",
        f"- Trainer: the platform's XGBoost trainer (`{model['num_boost_round']}` rounds, early stopping), "
        "positives weighted by the class ratio.",
        f"- Gates: `roc_auc` >= {MIN_ROC_AUC} to be registered as champion/challenger; a challenger may not fall "
        f"below the champion by more than {regression}. These are deliberately modest: raise them, and add a "
        "`pr_auc` minimum, once you know what a useful model scores.",
        "",
        "## To review",
        "- the label mapping and the positive rate above;",
        "- the columns that are model inputs: drop any that are only known *after* the label (leakage);",
        "- `values` lists and numeric bounds: are they what any future batch will hold?",
        "- `metrics.costs` (cost of a missed positive vs. a false alarm) to get a cost-based decision threshold;",
        "- `serving`, `drift` and `cluster` settings use the platform defaults.",
        "",
    ]
    return "\n".join(lines)
