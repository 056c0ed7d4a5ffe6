"""A shared service's own refusal, reported as AccessDenied: which tenant (identity) was refused
what, on which resource, and the server's words. Any other error passes through unchanged.

Where a refusal shows up (MLflow 3.17.2):
- REST calls: MlflowException whose HTTP status is 401/403 (mlflow/utils/rest_utils.py,
  verify_rest_response maps the basic-auth app's plain "Permission denied" 403 to PERMISSION_DENIED);
- artifact proxy: requests.HTTPError with the response's status 401/403
  (mlflow/store/artifact/http_artifact_repo.py, augmented_raise_for_status);
- Redis: redis.exceptions.NoPermissionError (the server's NOPERM reply to an ACL denial);
- PostgreSQL (a tenant's Feast registry): SQLSTATE 42501 insufficient_privilege (psycopg's
  InsufficientPrivilege, the cause of SQLAlchemy's ProgrammingError).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from mlplatform.errors import UserError

REFUSED = (401, 403)


class AccessDenied(PermissionError, UserError):
    """A service refused this identity an action on another tenant's (or an unknown) resource."""

    def __init__(self, identity: str, action: str, resource: str, reason: str):
        self.identity, self.action, self.resource, self.reason = identity, action, resource, reason
        super().__init__(f"{identity!r} may not {action} {resource}: the server refused ({reason})")


def _status(err: BaseException) -> int | None:
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        return err.get_http_status_code()
    response = getattr(err, "response", None)  # requests.HTTPError
    return getattr(response, "status_code", None)


def refusal_in(err: BaseException) -> BaseException | None:
    """The refusal in `err` or in what caused it (MLflow wraps some), else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if (_status(err) in REFUSED or type(err).__name__ == "NoPermissionError"
                or getattr(err, "sqlstate", None) == "42501"):
            return err
        err = err.__cause__ or err.__context__
    return None


def _reason(err: BaseException) -> str:
    """The server's words, one line. redis-py prefixes a pipeline's error with the failed command,
    binary key included ("Command # 1 (HMGET <key>) of pipeline caused error: ..."): only the
    error is kept, marked NOPERM as Redis marks it."""
    text = str(err).strip()
    if type(err).__name__ == "NoPermissionError":
        text = "NOPERM " + text.rpartition("caused error: ")[2]
    return text.splitlines()[0][:300] if text else type(err).__name__


def current_identity(default: str = "anonymous") -> str:
    """The MLflow identity this process acts as (MLflow's own variable)."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or default


def redis_identity(default: str = "default") -> str:
    """The Redis ACL user this process acts as (identity/redis_acl.py names the variable)."""
    return os.environ.get("MLPLATFORM_REDIS_USERNAME") or default


@contextlib.contextmanager
def refused(action: str, resource: str, identity: str | None = None) -> Iterator[None]:
    """Turn a refusal raised inside into AccessDenied(identity, action, resource)."""
    try:
        yield
    except AccessDenied:
        raise
    except Exception as err:  # noqa: BLE001 - only refusals are translated; the rest re-raised as is
        found = refusal_in(err)
        if found is None:
            raise
        raise AccessDenied(identity or current_identity(), action, resource, _reason(found)) from err


def is_refusal(err: BaseException) -> bool:
    return refusal_in(err) is not None
