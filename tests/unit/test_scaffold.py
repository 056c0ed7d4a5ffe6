"""scaffold_tenant on small tables the tests write: inference, generated columns, label mapping, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlplatform.config import load_tenant
from mlplatform.data.ingest import ingest, load_raw
from mlplatform.scaffold import ScaffoldError, scaffold_tenant
from mlplatform.scaffold.columns import BOUNDS_MARGIN
from mlplatform.scaffold.infer import SYNTHETIC_EPOCH
from mlplatform.training.dataset import time_split
from mlplatform.workspace import Workspace

N = 60


def table(n: int = N, seed: int = 0, **extra) -> pd.DataFrame:
    """A labelled table with every kind of column; the positives are spread over the file."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "amount": np.round(rng.uniform(10, 110, n), 2),
        "visits": rng.integers(100, 200, n),                # int, many values -> min/max
        "tier": rng.integers(1, 4, n),                      # int, few values -> values
        "city": rng.choice(["paris", "rome", "oslo"], n),   # low-cardinality string -> code column
        "comment": [f"free text {i}" for i in range(n)],   # high-cardinality string -> excluded
        "member": rng.random(n) < 0.5,                      # bool
        "ts": pd.date_range("2024-03-01", periods=n, freq="6h", tz="UTC"),
        "is_bad": (np.arange(n) % 5 == 0).astype(int),      # 20% positives, every fifth row
    })
    for k, v in extra.items():
        df[k] = v
    return df


def write(df: pd.DataFrame, folder: Path, fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"input.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def columns(cfg) -> dict:
    return {c.name: c for c in cfg.data.columns}


def copied(cfg) -> pd.DataFrame:
    return pd.read_parquet(cfg.tenant_dir / cfg.data.path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_inferred_tenant_loads_with_types_bounds_and_values(tmp_path, fmt):
    df = table()
    df.loc[3, "amount"] = np.nan
    src = write(df, tmp_path / "in", fmt)
    path = scaffold_tenant("shop", src, "is_bad", timestamp="ts", out_dir=tmp_path / "tenants")

    assert path == tmp_path / "tenants" / "shop" / "tenant.yaml"
    cfg = load_tenant(path)
    cols = columns(cfg)
    assert {n: c.type for n, c in cols.items()} == {
        "amount": "float", "visits": "int", "tier": "int", "city": "str", "comment": "str", "member": "bool",
        "ts": "datetime", "is_bad": "int", "row_id": "int", "city_code": "int",
    }
    assert cols["amount"].nullable and not cols["visits"].nullable
    # observed range widened by the margin (and rounded outwards), never narrower
    for name in ("amount", "visits"):
        lo, hi = df[name].min(), df[name].max()
        assert cols[name].min <= lo - BOUNDS_MARGIN * (hi - lo) + 1e-9
        assert cols[name].max >= hi + BOUNDS_MARGIN * (hi - lo) - 1e-9
        assert cols[name].max - cols[name].min <= (hi - lo) * (1 + 2 * BOUNDS_MARGIN) * 1.5
    assert cols["tier"].values == sorted(df["tier"].unique().tolist()) and cols["tier"].min is None
    assert cols["city"].values == ["oslo", "paris", "rome"]
    assert cols["comment"].values is None
    assert cols["is_bad"].values == [0, 1]

    # the copy lives in the tenant folder and is what ingest reads
    assert not Path(cfg.data.path).is_absolute() and cfg.data.path.startswith("data/")
    data = copied(cfg)
    assert len(data) == N and (path.parent / "README.md").is_file()

    # features: one entity, one view, numeric/bool inputs plus the category code
    assert cfg.data.timestamp == "ts" and cfg.features.as_of == "at_event"
    assert [v.name for v in cfg.features.feature_views] == ["shop_features"]
    assert cfg.model.features == ["amount", "visits", "tier", "member", "city_code"]
    dtypes = {f.name: f.dtype for f in cfg.features.feature_views[0].features}
    assert dtypes == {"amount": "float64", "visits": "int64", "tier": "int64", "member": "bool",
                      "city_code": "int64"}
    assert cfg.metrics.gates.minimum["roc_auc"] >= 0.5 and cfg.metrics.gates.max_regression

    # expectations hold on today's data
    exp = cfg.data.expectations
    assert 0 < exp.min_rows < N
    assert exp.label_rate.min < data["is_bad"].mean() < exp.label_rate.max


def test_category_codes_follow_sorted_values(tmp_path):
    df = table()
    df.loc[5, "city"] = None
    src = write(df, tmp_path, "parquet")
    cfg = load_tenant(scaffold_tenant("shop", src, "is_bad", timestamp="ts", out_dir=tmp_path / "t"))
    data = copied(cfg)
    expected = df["city"].map({"oslo": 0, "paris": 1, "rome": 2}).fillna(-1).astype(int)
    assert data["city_code"].tolist() == expected.tolist()
    assert columns(cfg)["city_code"].values == [-1, 0, 1, 2]
    assert columns(cfg)["city"].nullable
    assert "0 = `oslo`" in (cfg.tenant_dir / "README.md").read_text()


def test_row_id_and_synthetic_time_when_no_entity_or_timestamp(tmp_path):
    df = table().drop(columns=["ts"])
    src = write(df, tmp_path)
    cfg = load_tenant(scaffold_tenant("rows", src, "is_bad", out_dir=tmp_path / "t"))

    key = cfg.features.entities[0].join_key
    assert key == "row_id" and cfg.data.timestamp == "event_time"
    cols = columns(cfg)
    assert cols["row_id"].unique and cols["row_id"].type == "int"
    assert cols["event_time"].type == "datetime"
    data = copied(cfg)
    assert data["row_id"].tolist() == list(range(N))  # stable: the row's position in the file
    assert data["event_time"].tolist() == [SYNTHETIC_EPOCH + pd.Timedelta(seconds=i) for i in range(N)]
    assert data["amount"].tolist() == df["amount"].tolist()  # file order kept
    assert "row_id" not in cfg.model.features and "event_time" not in cfg.model.features
    readme = (cfg.tenant_dir / "README.md").read_text()
    assert "synthetic" in readme and "No entity was given" in readme


def test_given_entity_is_the_join_key_and_not_a_feature(tmp_path):
    df = table(customer_id=np.arange(N) % 7)
    src = write(df, tmp_path, "parquet")
    cfg = load_tenant(scaffold_tenant("cust", src, "is_bad", timestamp="ts", entity="customer_id",
                                      out_dir=tmp_path / "t"))
    assert cfg.features.join_keys == ["customer_id"]
    assert cfg.features.entities[0].name == "customer"
    assert "row_id" not in columns(cfg) and "row_id" not in copied(cfg).columns
    assert "customer_id" not in cfg.model.features


def test_time_split_leaves_both_classes_on_both_sides(tmp_path):
    for kwargs in ({"timestamp": "ts"}, {}):
        src = write(table(), tmp_path / str(len(kwargs)))
        cfg = load_tenant(scaffold_tenant("split", src, "is_bad", out_dir=tmp_path / str(len(kwargs)) / "t",
                                          **kwargs))
        data = copied(cfg)
        data[cfg.data.timestamp] = pd.to_datetime(data[cfg.data.timestamp], utc=True)
        train, valid = time_split(cfg, data)
        assert train["is_bad"].nunique() == 2 and valid["is_bad"].nunique() == 2
        assert 0.1 * N <= len(valid) <= 0.5 * N


@pytest.mark.parametrize(
    ("values", "mapping"),
    [
        ([True, False], {"False": 0, "True": 1}),
        ([1, 2], {"1": 0, "2": 1}),
        (["yes", "no"], {"no": 0, "yes": 1}),
        (["churned", "stayed"], {"stayed": 0, "churned": 1}),  # no positive word: the rarer value is 1
    ],
)
def test_binary_labels_are_mapped_to_0_1_and_the_mapping_recorded(tmp_path, values, mapping):
    first, second = values
    labels = [first if i % 5 == 0 else second for i in range(N)]
    df = table().drop(columns=["is_bad"]).assign(outcome=labels)
    src = write(df, tmp_path, "parquet")
    cfg = load_tenant(scaffold_tenant("lbl", src, "outcome", timestamp="ts", out_dir=tmp_path / "t"))
    data = copied(cfg)
    positive = [k for k, v in mapping.items() if v == 1][0]
    assert data["outcome"].tolist() == [int(str(v) == positive) for v in labels]
    assert columns(cfg)["outcome"].values == [0, 1]
    readme = (cfg.tenant_dir / "README.md").read_text()
    for k, v in mapping.items():
        assert f"`{k}` -> {v}" in readme


def test_rows_without_label_are_dropped_and_reported(tmp_path):
    df = table()
    df["is_bad"] = df["is_bad"].astype(float)
    df.loc[[1, 2], "is_bad"] = np.nan
    notes = []
    cfg = load_tenant(scaffold_tenant("drop", write(df, tmp_path), "is_bad", timestamp="ts",
                                      out_dir=tmp_path / "t", on_note=notes.append))
    data = copied(cfg)
    assert len(data) == N - 2 and data["is_bad"].dtype == np.int64
    assert data["row_id"].tolist() == [i for i in range(N) if i not in (1, 2)]
    said = f"2 of {N} rows have no label (`is_bad` is empty): they are dropped from the tenant's table, so neither " \
           "training nor validation sees them"
    assert len(notes) == 1 and notes[0].startswith(said)
    assert said in (cfg.tenant_dir / "README.md").read_text()


def test_the_cli_reports_rows_without_label(tmp_path):
    from typer.testing import CliRunner

    from mlplatform.cli import app

    df = table()
    df.loc[[1, 2, 7], "is_bad"] = None
    args = ["tenant", "new", "drop", "--from-table", str(write(df, tmp_path)), "--label", "is_bad",
            "--timestamp", "ts", "--dir", str(tmp_path / "t")]
    result = CliRunner().invoke(app, args)
    out = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"note: 3 of {N} rows have no label (`is_bad` is empty): they are dropped" in out
    assert "created" in out


def test_awkward_column_names_are_renamed(tmp_path):
    df = table().rename(columns={"amount": "Amount (EUR)", "visits": "2nd visits"})
    df["event_timestamp"] = 1.0
    cfg = load_tenant(scaffold_tenant("names", write(df, tmp_path), "is_bad", timestamp="ts",
                                      out_dir=tmp_path / "t"))
    names = set(columns(cfg))
    assert {"amount_eur", "c_2nd_visits", "event_timestamp_2"} <= names
    assert "event_timestamp" not in names  # Feast's own column name
    assert "`Amount (EUR)` -> `amount_eur`" in (cfg.tenant_dir / "README.md").read_text()


@pytest.mark.parametrize("option", ["label", "timestamp", "entity"])
def test_unknown_column_lists_the_available_ones(tmp_path, option):
    src = write(table(), tmp_path)
    kwargs = {"label": "is_bad", "timestamp": "ts", "entity": None} | {option: "nope"}
    with pytest.raises(ValueError, match=rf"{option} column 'nope'.*available columns: amount, visits"):
        scaffold_tenant("x-tenant", src, kwargs.pop("label"), out_dir=tmp_path / "t", **kwargs)
    assert not (tmp_path / "t" / "x-tenant").exists()


def test_label_that_is_not_binary_is_refused(tmp_path):
    src = write(table(grade=np.arange(N) % 3), tmp_path)
    with pytest.raises(ValueError, match="must be binary.*3 distinct"):
        scaffold_tenant("multi", src, "grade", out_dir=tmp_path / "t")
    src = write(table(one=np.ones(N, dtype=int)), tmp_path / "b")
    with pytest.raises(ValueError, match="must be binary.*1 distinct"):
        scaffold_tenant("single", src, "one", out_dir=tmp_path / "t")


def test_label_sorted_file_without_timestamp_cannot_be_split(tmp_path):
    df = table().drop(columns=["ts"]).sort_values("is_bad")
    with pytest.raises(ValueError, match="both classes"):
        scaffold_tenant("sorted", write(df, tmp_path), "is_bad", out_dir=tmp_path / "t")


def test_bad_inputs(tmp_path):
    src = write(table(), tmp_path)
    with pytest.raises(ValueError, match="tenant name"):
        scaffold_tenant("Bad_Name", src, "is_bad", out_dir=tmp_path / "t")
    with pytest.raises(ValueError, match="different columns"):
        scaffold_tenant("same", src, "is_bad", timestamp="is_bad", out_dir=tmp_path / "t")
    with pytest.raises(ScaffoldError, match="is numeric.*--timestamp-unit s|ms|us|ns"):
        scaffold_tenant("numts", src, "is_bad", timestamp="visits", out_dir=tmp_path / "t")
    with pytest.raises(ScaffoldError, match="no such table"):
        scaffold_tenant("missing", tmp_path / "nope.csv", "is_bad", out_dir=tmp_path / "t")


def test_existing_tenant_is_not_overwritten_unless_asked(tmp_path):
    src = write(table(), tmp_path)
    out = tmp_path / "t"
    path = scaffold_tenant("again", src, "is_bad", timestamp="ts", out_dir=out)
    marker = path.parent / "notes.txt"
    marker.write_text("mine")
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold_tenant("again", src, "is_bad", timestamp="ts", out_dir=out)
    assert marker.exists()
    again = scaffold_tenant("again", src, "is_bad", out_dir=out, overwrite=True)
    assert again == path and not marker.exists()
    assert load_tenant(again).data.timestamp == "event_time"
    assert [p.name for p in out.iterdir()] == ["again"]  # no staging folder left behind


def test_string_values_that_look_like_yaml_scalars_stay_strings(tmp_path):
    words = ["no", "yes", "null", "1.5", "on"]
    src = write(table(answer=[words[i % len(words)] for i in range(N)]), tmp_path, "parquet")
    cfg = load_tenant(scaffold_tenant("words", src, "is_bad", timestamp="ts", out_dir=tmp_path / "t"))
    assert columns(cfg)["answer"].values == sorted(words)
    assert all(isinstance(v, str) for v in columns(cfg)["answer"].values)


# --- numeric time columns (--timestamp-unit, --timestamp-origin) -------------------------------------

START = pd.Timestamp("2024-03-01T00:00:00Z")
STEP = pd.Timedelta(hours=6)
EXPECTED_TIMES = [START + i * STEP for i in range(N)]
UNIX_EPOCH = pd.Timestamp("1970-01-01T00:00:00Z")


def as_utc(when: str | None) -> pd.Timestamp:
    """An origin as the scaffold reads it: the Unix epoch by default, naive means UTC."""
    t = pd.Timestamp(when) if when else UNIX_EPOCH
    return t.tz_localize("UTC") if t.tzinfo is None else t


def ingested_times(tenant_file: Path, home: Path) -> list[pd.Timestamp]:
    """What the pipeline sees: the real ingest of the scaffolded table, read back."""
    cfg = load_tenant(tenant_file)
    ingest(cfg, Workspace(home))
    raw = load_raw(cfg, Workspace(home))
    assert len(raw) == N and str(raw["ts"].dt.tz) == "UTC"
    return raw["ts"].tolist()


@pytest.mark.parametrize(
    ("unit", "origin", "numbers"),
    [
        ("s", None, [int((t - UNIX_EPOCH).total_seconds()) for t in EXPECTED_TIMES]),
        ("ms", None, [int((t - UNIX_EPOCH).total_seconds()) * 1000 for t in EXPECTED_TIMES]),
        # seconds since the first row, as in the best-known public card-fraud table (its `Time`)
        ("s", "2024-03-01T00:00:00Z", [i * 6 * 3600 for i in range(N)]),
        ("us", "2024-03-01 00:00:00", [i * 6 * 3600 * 10**6 for i in range(N)]),  # naive origin: UTC
    ],
)
def test_numeric_timestamps_are_converted_at_ingest(tmp_path, unit, origin, numbers):
    df = table().assign(ts=numbers)
    notes = []
    path = scaffold_tenant("numeric", write(df, tmp_path), "is_bad", timestamp="ts", timestamp_unit=unit,
                           timestamp_origin=origin, out_dir=tmp_path / "t", on_note=notes.append)
    cfg = load_tenant(path)
    assert cfg.data.timestamp_unit == unit
    assert pd.Timestamp(cfg.data.timestamp_origin) == as_utc(origin)
    assert copied(cfg)["ts"].tolist() == numbers  # the copy keeps the numbers; ingest converts
    assert {c.name: c.type for c in cfg.data.columns}["ts"] == "datetime"
    assert ingested_times(path, tmp_path / "home") == EXPECTED_TIMES

    # the split was chosen on the converted times
    train, valid = time_split(cfg, load_raw(cfg, Workspace(tmp_path / "home")))
    assert train["is_bad"].nunique() == 2 and valid["is_bad"].nunique() == 2
    # what was assumed, in the CLI's notes and in the README
    said = f"`ts` holds numbers, read as {dict(s='seconds', ms='milliseconds', us='microseconds')[unit]} since " \
           f"{as_utc(origin).isoformat()}"
    assert len(notes) == 1 and notes[0].startswith(said)
    assert f"from {EXPECTED_TIMES[0].isoformat()} to {EXPECTED_TIMES[-1].isoformat()} (UTC)" in notes[0]
    assert said in (cfg.tenant_dir / "README.md").read_text()


def test_the_cli_takes_the_timestamp_unit_and_origin(tmp_path):
    from typer.testing import CliRunner

    from mlplatform.cli import app

    df = table().assign(ts=[i * 6 * 3600 * 1000 for i in range(N)])
    args = ["tenant", "new", "offsets", "--from-table", str(write(df, tmp_path)), "--label", "is_bad",
            "--timestamp", "ts", "--timestamp-unit", "ms", "--timestamp-origin", "2024-03-01T00:00:00Z",
            "--dir", str(tmp_path / "t")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "read as milliseconds since 2024-03-01T00:00:00+00:00" in " ".join(result.output.split())
    assert ingested_times(tmp_path / "t" / "offsets" / "tenant.yaml", tmp_path / "home") == EXPECTED_TIMES


def test_bad_timestamp_options(tmp_path):
    numeric = write(table().assign(ts=np.arange(N) * 3600), tmp_path / "n")
    dates = write(table(), tmp_path / "d")
    cases = [
        (numeric, {"timestamp_unit": "h"}, "must be one of s, ms, us, ns"),
        (numeric, {"timestamp_origin": "2024-01-01"}, "--timestamp-origin needs --timestamp-unit"),
        (numeric, {"timestamp_unit": "s", "timestamp_origin": "yesterday-ish"}, "is not a date/time"),
        (numeric, {"timestamp": None, "timestamp_unit": "s"}, "--timestamp-unit needs --timestamp COL"),
        (dates, {"timestamp_unit": "s"}, "--timestamp-unit is for a numeric time column"),
        # milliseconds taken for seconds: 1.7e12 s is 54,000 years
        (write(table().assign(ts=1_700_000_000_000 + np.arange(N) * 1000), tmp_path / "ms"), {"timestamp_unit": "s"},
         "do not fit in a timestamp .* is the unit right"),
    ]
    for src, options, message in cases:
        with pytest.raises(ScaffoldError, match=message):
            scaffold_tenant("opts", src, "is_bad", out_dir=tmp_path / "t", **({"timestamp": "ts"} | options))
    assert not (tmp_path / "t").exists()
