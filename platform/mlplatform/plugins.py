"""Resolve the dotted paths a tenant file names ("package.module:function").

Tenants are named by dotted paths, never discovered by scanning folders, so mlplatform never
imports a tenant by name and dependencies point one way.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def resolve(dotted: str) -> Callable[..., Any]:
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"cannot import {module_name!r} (from {dotted!r}): {err}") from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"{module_name!r} has no attribute {attr!r} (from {dotted!r})") from None
