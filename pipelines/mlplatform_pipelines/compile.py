"""Compile every pipeline to KFP IR YAML (checked in under pipelines/compiled/; a test diffs them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kfp import compiler

from mlplatform_pipelines.train_deploy import train_deploy

PIPELINES = {"train_deploy": train_deploy}
COMPILED_DIR = Path(__file__).resolve().parents[1] / "compiled"


def compile_pipeline(name: str, out_dir: Path = COMPILED_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.yaml"
    compiler.Compiler().compile(PIPELINES[name], package_path=str(path))
    return path


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    return [compile_pipeline(name, out_dir) for name in PIPELINES]


def stale(out_dir: Path = COMPILED_DIR) -> list[str]:
    """Names of pipelines whose checked-in IR differs from a fresh compile (or is missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in compile_all(Path(tmp))}
    return [name for name, text in fresh.items()
            if not (out_dir / name).exists() or (out_dir / name).read_text() != text]


if __name__ == "__main__":
    for path in compile_all():
        print(f"compiled {path}")
