"""Cluster mode of the retraining webhook: a tenant's file is the ConfigMap its chart installed.

charts/tenant installs the tenant file as ConfigMap `<tenant>-tenant` (key `tenant.yaml`) in the
tenant's namespace, which is named after the tenant (templates/_helpers.tpl, "tenant.namespace"),
and grants the platform's webhook ServiceAccount `get` on that one ConfigMap (templates/rbac.yaml).
The webhook reads it at each alert, so a retraining run gets the configuration the cluster holds
(the retrain CronJob passes the same ConfigMap), for every installed tenant, not only the ones
whose files happen to be in the image.

What the API answers becomes the webhook's outcome:
- 404 (the Role is there, the ConfigMap is not): UnknownTenant (`ignored:unknown-tenant`);
- 403, or a ConfigMap without the key: TenantConfigError (`error:invalid-tenant-file`, and
  mlplatform_webhook_tenant_file_valid{tenant} 0: retraining is off for it, visibly). The API
  server authorizes before it looks the object up, so an alert naming a tenant that is not
  installed at all gets 403 too (no Role grants it in that namespace): the message says both;
  telling them apart would need a right to list namespaces, which the webhook does not get;
- anything else (API server unreachable, 5xx): TenantApiUnavailable -> HTTP 503, and Alertmanager
  sends the alert again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from mlplatform.config import TenantConfigError
from mlplatform.tenants import UnknownTenant

KEY = "tenant.yaml"
WEBHOOK_SERVICE_ACCOUNT = "retrain-webhook"  # charts/mlplatform/templates/webhook.yaml (a test checks)


def configmap_name(tenant: str) -> str:
    """charts/tenant/templates/configmap.yaml names it so (a test checks)."""
    return f"{tenant}-tenant"


class TenantApiUnavailable(RuntimeError):
    """The Kubernetes API did not answer; the alert should be delivered again later."""


def _in_cluster_api() -> Any:
    from kubernetes import client, config

    config.load_incluster_config()  # the webhook pod's own ServiceAccount token (projected volume)
    return client.CoreV1Api()


class TenantConfigMaps:
    """`resolve_tenant` of RetrainController: the tenant's name -> its file, read from its ConfigMap
    and written under `scratch` (the pod's emptyDir), fresh at every call."""

    def __init__(self, scratch: Path, api_factory: Callable[[], Any] = _in_cluster_api):
        self.scratch = Path(scratch)
        self._factory = api_factory
        self._api: Any = None  # made on first use: the webhook starts even while the API is away

    def __call__(self, tenant: str) -> Path:
        from kubernetes.client.exceptions import ApiException

        where = f"ConfigMap {tenant}/{configmap_name(tenant)}"
        try:
            if self._api is None:
                self._api = self._factory()
            configmap = self._api.read_namespaced_config_map(configmap_name(tenant), tenant)
        except ApiException as err:
            if err.status == 404:
                raise UnknownTenant(f"no {where}: charts/tenant is not installed for {tenant!r}") from None
            if err.status == 403:
                raise TenantConfigError(
                    f"the webhook may not read {where} (403 {err.reason}): either no tenant {tenant!r} is installed "
                    f"on this cluster, or its chart predates Role {tenant}-tenant-file-reader, which grants it to "
                    f"ServiceAccount {WEBHOOK_SERVICE_ACCOUNT} of the platform namespace (charts/tenant)") from None
            self._api = None
            raise TenantApiUnavailable(f"Kubernetes API: reading {where} failed: {err.status} {err.reason}") from err
        except Exception as err:  # noqa: BLE001 - urllib3, TLS and in-cluster config errors all mean "not now"
            self._api = None
            raise TenantApiUnavailable(f"Kubernetes API: reading {where} failed: {type(err).__name__}: {err}") from err
        text = (configmap.data or {}).get(KEY)
        if not text:
            raise TenantConfigError(f"{where} has no key {KEY!r}")
        path = self.scratch / tenant / KEY
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path
