"""ScaffoldError: why a table (or LETOR files) and the options given cannot make a tenant."""

from __future__ import annotations

from mlplatform.errors import UserError


class ScaffoldError(ValueError, UserError):
    """The table and options cannot make a tenant; the message says why (nothing was written)."""
