"""Build a Great Expectations suite from a tenant's declared schema and expectations."""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from mlplatform.config import Column, Expectations, TenantConfig

# pandas dtypes accepted for each declared column type
PANDAS_TYPES: dict[str, list[str]] = {
    "int": ["int64", "int32", "int16", "int8", "Int64", "Int32"],
    "float": ["float64", "float32", "Float64"],
    "str": ["object", "string", "str"],
    "bool": ["bool", "boolean"],
    # tz-aware columns are validated as naive UTC (see gate.as_naive_utc): GE cannot name tz dtypes
    "datetime": [f"datetime64[{u}]" for u in ("ns", "us", "ms", "s")],
}


def column_expectations(col: Column) -> list[gxe.Expectation]:
    exps: list[gxe.Expectation] = [
        gxe.ExpectColumnToExist(column=col.name),
        gxe.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=PANDAS_TYPES[col.type]),
    ]
    if not col.nullable:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col.name))
    if col.unique:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=col.name))
    if col.min is not None or col.max is not None:
        exps.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min, max_value=col.max))
    if col.values is not None:
        exps.append(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.values)))
    return exps


def group_size_column(column: str) -> str:
    """The helper column the gate adds for `min_group_size`: rows sharing this row's value of `column`."""
    return f"rows_per_{column}"


def with_group_sizes(df, exp: Expectations):
    """The batch plus one `rows_per_<col>` column per `min_group_size` entry (GE has no group-count check)."""
    if not exp.min_group_size:
        return df
    df = df.copy(deep=False)
    for col in exp.min_group_size:
        if col in df.columns:
            # dropna=False: null keys form a group too (else NaN sizes crash the cast; nulls fail their own check)
            df[group_size_column(col)] = df.groupby(col, sort=False, dropna=False)[col].transform("size").astype("int64")
    return df


def table_expectations(columns: list[Column], exp: Expectations,
                       reference: dict[str, list] | None = None) -> list[gxe.Expectation]:
    """Row count, per-column checks, compound uniqueness, group sizes and cross-table membership.

    `reference` maps 'table.column' to the values a `values_in` check compares with."""
    out: list[gxe.Expectation] = [gxe.ExpectTableRowCountToBeBetween(min_value=exp.min_rows, max_value=exp.max_rows)]
    for col in columns:
        out += column_expectations(col)
    for cols in exp.unique_together:
        out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(cols)))
    for col, least in exp.min_group_size.items():
        out.append(gxe.ExpectColumnValuesToBeBetween(column=group_size_column(col), min_value=least))
    for col, ref in exp.values_in.items():
        values = (reference or {}).get(ref)
        if values is None:
            raise ValueError(f"values_in: {col} in {ref!r}: no such table column to compare with")
        out.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(values)))
    return out


def build_table_suite(cfg: TenantConfig, table: str, reference: dict[str, list] | None = None) -> gx.ExpectationSuite:
    spec = cfg.data.tables[table]
    suite = gx.ExpectationSuite(name=f"{cfg.name}_{table}")
    for e in table_expectations(spec.columns, spec.expectations, reference):
        suite.add_expectation(e)
    return suite


def build_suite(cfg: TenantConfig, reference: dict[str, list] | None = None) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=f"{cfg.name}_raw")
    exp = cfg.data.expectations
    for e in table_expectations(cfg.data.columns, exp, reference):
        suite.add_expectation(e)
    if exp.label_rate is not None:
        # the label is 0/1, so its mean is the positive rate
        suite.add_expectation(
            gxe.ExpectColumnMeanToBeBetween(
                column=cfg.data.label, min_value=exp.label_rate.min, max_value=exp.label_rate.max
            )
        )
    return suite
