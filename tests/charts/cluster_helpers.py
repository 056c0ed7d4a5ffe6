"""Helpers shared by the cluster tests (imported by name: tests/ has no __init__.py files).

`require(condition, reason)`: locally a missing tool or schema skips the test with the reason;
under CI=true the same situation fails it (CI must run every check).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def require(condition: object, reason: str) -> None:
    """Skip (locally) or fail (CI=true) when a tool or schema the test needs is missing."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def tenant_files() -> list[Path]:
    from mlplatform.verify.render import tenant_files as files

    return files(REPO_ROOT)
