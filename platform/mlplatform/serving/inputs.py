"""Prediction request parsing and validation, built once per tenant from its config.

What a request carries: the entity join keys (`features.entities[].join_key`, typed by their
column in `data.columns`, default int) and the request fields (`features.request.fields`).
Two wire formats, one result (a dict of validated columns):

V1      {"instances": [{"customer_id": 1, "terminal_id": 7, "amount": 12.5,
                        "tx_datetime": "2024-05-01T12:00:00Z"}, ...]}
V2/OIP  {"inputs": [{"name": "amount", "datatype": "FP64", "shape": [n], "data": [...]}, ...]}
        one input per field; BYTES for strings and datetimes, INT* for ints, FP*/INT* for floats,
        BOOL for booleans.

Rules: every key and field is required; values have the declared type (a bool is not a number,
a numeric string is not a number); numbers are finite and within the declared min/max;
categorical values are among the declared ones; datetimes are ISO 8601 strings (naive = UTC).
Unknown extra fields are ignored, so clients may send whole records. Any violation raises
`kserve.errors.InvalidInput` (HTTP 400, body {"error": ...}) naming the row and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

from mlplatform.config import Column, TenantConfig

MAX_ROWS = 1000  # one request is one batch; bigger ones belong to the batch pipeline
JSON_TYPES = {"application/json", "application/cloudevents+json", "application/ld+json"}
V2_DATATYPES = {
    "int": {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"},
    "float": {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"},
    "str": {"BYTES"},
    "datetime": {"BYTES"},
    "bool": {"BOOL"},
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# the range of datetime64[ns] (pandas Timestamp), with a margin
DATETIME_MIN = datetime(1678, 1, 1, tzinfo=timezone.utc)
DATETIME_MAX = datetime(2261, 12, 31, tzinfo=timezone.utc)
# what _parse_datetime accepts within DATETIME_MIN..MAX (a subset: years 1700-2199, days 1-28), as a
# JSON Schema pattern for the served OpenAPI document: generated clients and fuzzers send valid ones
DATETIME_PATTERN = (r"^(1[7-9][0-9]{2}|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
                    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?$")
METADATA_DATATYPE = {"int": "INT64", "float": "FP64", "str": "BYTES", "datetime": "BYTES", "bool": "BOOL"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: frozenset | None = None

    @classmethod
    def of(cls, col: Column) -> "FieldSpec":
        return cls(col.name, col.type, col.min, col.max, frozenset(col.values) if col.values else None)


def _parse_datetime(value: str) -> datetime:
    ts = datetime.fromisoformat(value)  # Python 3.11: full ISO 8601 including "Z"
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def check_value(spec: FieldSpec, value: Any, row: int) -> Any:
    """The value converted to its Python type, or InvalidInput naming row and field."""
    where = f"row {row}, field {spec.name!r}"
    t = spec.type
    if value is None:
        raise InvalidInput(f"{where}: value is required")
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"{where}: expected a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float range (V2 JSON is parsed by the json module)
            raise InvalidInput(f"{where}: {str(value)[:32]}... is beyond the range of a number") from None
        if not math.isfinite(value):
            raise InvalidInput(f"{where}: must be a finite number, got {value}")
    elif t == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # FP tensors and some JSON encoders send 7.0 for 7
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        if not INT64_MIN <= value <= INT64_MAX:  # entity keys are int64 in the feature store
            raise InvalidInput(f"{where}: {value} does not fit a 64-bit integer")
    elif t == "bool":
        if not isinstance(value, bool):
            raise InvalidInput(f"{where}: expected a boolean, got {type(value).__name__}")
        return value
    elif t == "datetime":
        if not isinstance(value, str):
            raise InvalidInput(f"{where}: expected an ISO 8601 datetime string, got {type(value).__name__}")
        try:
            ts = _parse_datetime(value)
        except ValueError:
            raise InvalidInput(f"{where}: not an ISO 8601 datetime: {value[:64]!r}") from None
        if not DATETIME_MIN <= ts <= DATETIME_MAX:  # the model's frame holds nanosecond timestamps
            raise InvalidInput(f"{where}: {value[:64]!r} is outside {DATETIME_MIN.year}-{DATETIME_MAX.year}")
        return ts
    else:  # str
        if not isinstance(value, str):
            raise InvalidInput(f"{where}: expected a string, got {type(value).__name__}")
    if spec.min is not None and value < spec.min:
        raise InvalidInput(f"{where}: {value} is below the minimum {spec.min}")
    if spec.max is not None and value > spec.max:
        raise InvalidInput(f"{where}: {value} is above the maximum {spec.max}")
    if spec.values is not None and value not in spec.values:
        raise InvalidInput(f"{where}: {value!r} is not one of {sorted(spec.values, key=str)}")
    return value


class RequestSchema:
    """Join keys and request fields of a tenant; turns a V1 payload or V2 request into columns."""

    def __init__(self, cfg: TenantConfig):
        declared = {c.name: c for c in cfg.data.columns}
        self.keys = [FieldSpec.of(declared[k]) if k in declared else FieldSpec(k, "int") for k in cfg.features.join_keys]
        key_names = {k.name for k in self.keys}
        self.fields = [FieldSpec.of(c) for c in cfg.features.request.fields if c.name not in key_names]
        self.specs = self.keys + self.fields
        self.names = {s.name for s in self.specs}

    def input_types(self) -> list[dict]:
        """V2 model metadata: one input per key and field, variable batch size."""
        return [{"name": s.name, "datatype": METADATA_DATATYPE[s.type], "shape": [-1]} for s in self.specs]

    def json_schemas(self) -> dict[str, dict]:
        """The V1 and V2 request bodies this schema accepts, as JSON Schema (the served OpenAPI
        document, serving/openapi.py). V2 is described for one row per request (shape [1]: JSON
        Schema cannot tie `shape` to the length of `data`); larger batches are accepted too."""
        values = {s.name: value_schema(s) for s in self.specs}
        row = {"type": "object", "properties": values, "required": list(values)}
        v1 = {"type": "object", "required": ["instances"], "properties": {
            "instances": {"type": "array", "items": row, "minItems": 1, "maxItems": MAX_ROWS}}}
        tensors = [{"type": "object", "required": ["name", "datatype", "shape", "data"], "properties": {
            "name": {"const": s.name}, "datatype": {"enum": sorted(V2_DATATYPES[s.type])},
            "shape": {"type": "array", "items": {"const": 1}, "minItems": 1, "maxItems": 2},
            "data": {"type": "array", "items": values[s.name], "minItems": 1, "maxItems": 1}}} for s in self.specs]
        v2 = {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "prefixItems": tensors, "items": False,
                       "minItems": len(tensors), "maxItems": len(tensors)}}}
        return {"v1": v1, "v2": v2}

    def columns(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, list]:
        if isinstance(payload, InferRequest):
            return self.from_v2(payload)
        return self.from_v1(decode_json(payload, headers))

    def from_v1(self, payload: Any) -> dict[str, list]:
        if not isinstance(payload, dict) or "instances" not in payload:
            raise InvalidInput('expected a JSON object {"instances": [{...}, ...]}')
        rows = payload["instances"]
        self._check_count(rows, "instances")
        cols: dict[str, list] = {s.name: [] for s in self.specs}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InvalidInput(f"row {i}: expected an object of fields, got {type(row).__name__}")
            for spec in self.specs:
                if spec.name not in row:
                    raise InvalidInput(f"row {i}: missing field {spec.name!r}")
                cols[spec.name].append(check_value(spec, row[spec.name], i))
        return cols

    def from_v2(self, request: InferRequest) -> dict[str, list]:
        given = {inp.name: inp for inp in request.inputs}
        names = [inp.name for inp in request.inputs]
        extra = sorted({n for n in names if n not in self.names or names.count(n) > 1})
        if extra:  # a tensor the model does not take, or one given twice: a client's mistake, not ignored
            raise InvalidInput(f"unknown or repeated input(s) {extra}; expected one input per field: "
                               f"{[s.name for s in self.specs]}")
        missing = [s.name for s in self.specs if s.name not in given]
        if missing:
            raise InvalidInput(f"missing input(s) {missing}; expected one input per field: "
                               f"{[s.name for s in self.specs]}")
        cols: dict[str, list] = {}
        n = None
        for spec in self.specs:
            inp = given[spec.name]
            if inp.datatype not in V2_DATATYPES[spec.type]:
                allowed = sorted(V2_DATATYPES[spec.type])
                raise InvalidInput(f"input {spec.name!r}: datatype {inp.datatype} does not fit a {spec.type} field "
                                   f"(use {' or '.join(allowed) if len(allowed) < 4 else allowed})")
            data = _flat(inp.data, spec.name)
            if math.prod(inp.shape or [0]) != len(data):
                raise InvalidInput(f"input {spec.name!r}: shape {inp.shape} does not match {len(data)} values")
            if n is None:
                self._check_count(data, f"input {spec.name!r}")
                n = len(data)
            elif len(data) != n:
                raise InvalidInput(f"input {spec.name!r} has {len(data)} values, other inputs have {n}")
            if spec.type in ("str", "datetime"):
                data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data]
            cols[spec.name] = [check_value(spec, v, i) for i, v in enumerate(data)]
        return cols

    @staticmethod
    def _check_count(values: Any, what: str) -> None:
        if not isinstance(values, list):
            raise InvalidInput(f"{what}: expected a list")
        if not values:
            raise InvalidInput(f"{what}: is empty; send at least one row")
        if len(values) > MAX_ROWS:
            raise InvalidInput(f"{what}: {len(values)} rows is more than the limit of {MAX_ROWS} per request")


def value_schema(spec: FieldSpec) -> dict:
    """JSON Schema of one field's values, as check_value accepts them."""
    if spec.type == "datetime":
        return {"type": "string", "pattern": DATETIME_PATTERN,
                "description": f"ISO 8601 (naive = UTC), {DATETIME_MIN.year}-{DATETIME_MAX.year}"}
    out: dict[str, Any] = {"type": {"int": "integer", "float": "number", "bool": "boolean"}.get(spec.type, "string")}
    low, high = spec.min, spec.max
    if spec.type == "int":  # JSON Schema integers: whole bounds within int64
        low = INT64_MIN if low is None else max(math.ceil(low), INT64_MIN)
        high = INT64_MAX if high is None else min(math.floor(high), INT64_MAX)
    if low is not None and spec.type != "bool":
        out["minimum"] = low
    if high is not None and spec.type != "bool":
        out["maximum"] = high
    if spec.values is not None:
        out["enum"] = sorted(spec.values, key=str)
    return out


def _flat(data: Any, name: str) -> list:
    """V2 data may be flat or nested row-major ([[v], [v]] for shape [n, 1])."""
    if not isinstance(data, list):
        raise InvalidInput(f"input {name!r}: data must be a list")
    if data and isinstance(data[0], list):
        return [v for sub in data for v in (sub if isinstance(sub, list) else [sub])]
    return data


def decode_json(payload: Any, headers: dict[str, str] | None) -> Any:
    """kserve hands the raw body to the model when the content type is not one it knows (it
    compares the whole header, so even `application/json; charset=utf-8`): decode JSON media
    types here, and reject everything else as a wrong content type."""
    if not isinstance(payload, (bytes, bytearray, str)):
        return payload
    content_type = (headers or {}).get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES:
        raise InvalidInput(f"unsupported content type {content_type!r}; send application/json")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"malformed JSON: {err}") from None
