"""The one error type for problems the user can fix.

A tenant file that does not validate, a tenant or model that does not exist, a table that cannot
become a tenant: the CLI prints the message alone and exits 2 (cli.py, in one place). Any other
exception is a bug and keeps its traceback. Modules subclass UserError next to their own error
types (TenantConfigError is also a ValueError, ModelLoadError a RuntimeError), so callers that
catch the older base classes keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected error: the message says what is wrong and how to fix it; no traceback needed."""
