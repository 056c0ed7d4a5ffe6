"""Validate rendered objects against real schemas, offline.

* Built-in kinds: the official OpenAPI-derived JSON schemas shipped by `kubernetes-validate`,
  strict mode (unknown fields are errors), for the Kubernetes version kind runs
  (K8S_VERSION in platform/cluster/versions.env).
* Custom resources: the `openAPIV3Schema` of the served CRD version, read from the pinned upstream
  CRD files in ${MLPLATFORM_CRDS_DIR:-../shared/crds} (`make crds` downloads the same files).
  Unknown fields are errors unless the schema says `x-kubernetes-preserve-unknown-fields`
  (the API server would prune them silently, which hides typos). `metadata` is checked against
  the core ObjectMeta schema. CEL rules (`x-kubernetes-validations`) are not evaluated.
* A kind with no schema at all is an error: nothing is waved through.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD files are ~9 MB: use libyaml when present


def crds_dir(repo_root: Path) -> Path:
    """Where the CRDs live: $MLPLATFORM_CRDS_DIR, else ../shared/crds next to the repo."""
    env = os.environ.get("MLPLATFORM_CRDS_DIR")
    path = Path(env) if env else Path("..") / "shared" / "crds"
    return (repo_root / path).resolve()  # an absolute $MLPLATFORM_CRDS_DIR stays as it is


def kubernetes_version(repo_root: Path) -> str:
    """K8S_VERSION from platform/cluster/versions.env (e.g. "1.36.1"), the version kind runs."""
    for line in (repo_root / "platform" / "cluster" / "versions.env").read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return line.split("=", 1)[1].strip().lstrip("v")
    raise RuntimeError("K8S_VERSION missing from platform/cluster/versions.env")


class SchemaMissing(Exception):
    """No schema exists for an object's apiVersion/kind."""


@dataclass(frozen=True)
class CrdVersion:
    group: str
    version: str
    kind: str
    schema: dict[str, Any]
    source: str


def _strict(schema: Any) -> Any:
    """OpenAPI v3 (structural CRD schema) -> JSON schema that rejects unknown fields and honours nullable."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


class CrdIndex:
    """Every served version of every CRD found under a directory, by (apiVersion, kind)."""

    def __init__(self, versions: dict[tuple[str, str], CrdVersion]):
        self.versions = versions

    @classmethod
    def load(cls, directory: Path) -> "CrdIndex":
        if not directory.is_dir():
            raise FileNotFoundError(f"CRD directory {directory} does not exist (set MLPLATFORM_CRDS_DIR or run `make crds`)")
        versions: dict[tuple[str, str], CrdVersion] = {}
        for path in sorted(directory.rglob("*.yaml")):
            with path.open() as fh:
                for doc in yaml.load_all(fh, Loader=_Loader):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    spec = doc["spec"]
                    for v in spec.get("versions", []):
                        if not v.get("served", True):
                            continue
                        schema = (v.get("schema") or {}).get("openAPIV3Schema")
                        if schema is None:
                            continue
                        api_version = f"{spec['group']}/{v['name']}"
                        versions[(api_version, spec["names"]["kind"])] = CrdVersion(
                            spec["group"], v["name"], spec["names"]["kind"], schema, str(path.relative_to(directory))
                        )
        return cls(versions)

    def get(self, api_version: str, kind: str) -> CrdVersion | None:
        return self.versions.get((api_version, kind))

    @functools.lru_cache(maxsize=None)
    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator:
        crd = self.versions[(api_version, kind)]
        schema = _strict(copy.deepcopy(crd.schema))
        # apiVersion/kind/metadata are checked separately (ObjectMeta); the CRD declares them loosely
        return jsonschema.Draft4Validator(schema)  # OpenAPI 3.0 schema objects follow draft 4 semantics


@functools.lru_cache(maxsize=4)
def _object_meta_validator(k8s_version: str) -> jsonschema.protocols.Validator:
    import importlib_resources

    base = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    minor = ".".join(k8s_version.split(".")[:2])
    folder = base / f"v{minor}.0-local-strict"
    if not folder.is_dir():
        raise SchemaMissing(f"kubernetes-validate has no schemas for Kubernetes {minor}")
    defs = json.loads((folder / "_definitions.json").read_text())["$defs"]
    schema = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "$defs": defs}
    return jsonschema.Draft202012Validator(schema)  # the dialect kubernetes-validate itself uses


def _errors(validator: jsonschema.protocols.Validator, obj: Any, prefix: str = "") -> list[str]:
    out = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in err.absolute_path)
        out.append(f"{prefix}{path or '(root)'}: {err.message[:300]}")
    return out


def validate_object(obj: dict[str, Any], k8s_version: str, crds: CrdIndex) -> list[str]:
    """All schema errors of one object (empty list: valid). Raises SchemaMissing for an unknown kind."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    if not api_version or not kind:
        return ["apiVersion and kind are required"]
    crd = crds.get(api_version, kind)
    if crd is not None:
        errors = _errors(crds.validator(api_version, kind), obj)
        errors += _errors(_object_meta_validator(k8s_version), obj.get("metadata", {}), "metadata.")
        if not obj.get("metadata", {}).get("name"):
            errors.append("metadata.name: required")
        return errors
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, k8s_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise SchemaMissing(f"no schema for {api_version} {kind}: not a built-in kind of Kubernetes "
                            f"{k8s_version} and no CRD defines it") from exc
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        return [f"{path or '(root)'}: {exc.message[:300]}"]
    return []
