"""A local HTTPS endpoint that STANDS IN FOR THE KUBERNETES API SERVER for the one call a sandboxed
container makes here: get a ConfigMap (the webhook reading a tenant's file).

No API server can run here. This one does what the real one does for that call and nothing more:
- TLS with its own CA (the pod gets the CA as `ca.crt`, as from kube-root-ca.crt);
- authentication by bearer token: each token was issued for one ServiceAccount (what the kubelet's
  projected serviceAccountToken binds to the pod), anything else is 401;
- authorization by the RBAC objects of the rendered charts (Roles and RoleBindings in the object's
  namespace): `get` on `configmaps`, limited by resourceNames when the rule names any; otherwise a
  403 Status worded as the API server words it;
- the ConfigMaps the rendered charts install; 404 for any other.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlplatform.processes import free_port

HOST = "127.0.0.1"  # the `kubernetes` Service's address, as KUBERNETES_SERVICE_HOST gives it to pods


def status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code}, status_code=code)


class KubeApiStandIn:
    def __init__(self, objects: list[dict[str, Any]], folder: Path):
        self.objects = objects
        self.folder = Path(folder)
        self.tokens: dict[str, tuple[str, str]] = {}  # token -> (namespace, service account)
        self.calls: list[tuple[str, str, str, int]] = []  # (user, namespace, name, status code)
        self.port = free_port()
        self.ca_pem = self._certificate()
        self._server = None

    def issue_token(self, namespace: str, service_account: str) -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (namespace, service_account)
        return token

    def _certificate(self) -> str:
        """A self-signed serving certificate for HOST; it is its own CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(hours=2))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)),
                                                            x509.DNSName("kubernetes.default.svc")]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.folder.mkdir(parents=True, exist_ok=True)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        (self.folder / "tls.crt").write_text(pem)
        (self.folder / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                                serialization.PrivateFormat.PKCS8,
                                                                serialization.NoEncryption()))
        return pem

    def _of(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind and o["metadata"].get("namespace") == namespace]

    def may_get_configmap(self, namespace: str, name: str, user: tuple[str, str]) -> bool:
        roles = {r["metadata"]["name"]: r for r in self._of("Role", namespace)}
        for binding in self._of("RoleBinding", namespace):
            subject = {"kind": "ServiceAccount", "namespace": user[0], "name": user[1]}
            if binding["roleRef"]["kind"] != "Role" or not any(
                    {k: s.get(k) for k in subject} == subject for s in binding.get("subjects", [])):
                continue
            for rule in roles.get(binding["roleRef"]["name"], {}).get("rules", []):
                if ("" in rule.get("apiGroups", []) and "configmaps" in rule.get("resources", [])
                        and "get" in rule.get("verbs", []) and name in rule.get("resourceNames", [name])):
                    return True
        return False

    def app(self) -> Starlette:
        async def get_configmap(request: Request):
            namespace, name = request.path_params["namespace"], request.path_params["name"]
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            # the scheme is case-insensitive (RFC 9110); the Python client sends "bearer"
            user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                self.calls.append(("", namespace, name, 401))
                return status(401, "Unauthorized", "Unauthorized")
            who = f"system:serviceaccount:{user[0]}:{user[1]}"
            if not self.may_get_configmap(namespace, name, user):
                self.calls.append((who, namespace, name, 403))
                return status(403, "Forbidden", f'configmaps "{name}" is forbidden: User "{who}" cannot get resource '
                                                f'"configmaps" in API group "" in the namespace "{namespace}"')
            found = [c for c in self._of("ConfigMap", namespace) if c["metadata"]["name"] == name]
            self.calls.append((who, namespace, name, 200 if found else 404))
            if not found:
                return status(404, "NotFound", f'configmaps "{name}" not found')
            return JSONResponse(found[0])

        return Starlette(routes=[Route("/api/v1/namespaces/{namespace}/configmaps/{name}", get_configmap)])

    def start(self) -> "KubeApiStandIn":
        import uvicorn

        config = uvicorn.Config(self.app(), host=HOST, port=self.port, log_level="warning", lifespan="off",
                                ssl_certfile=str(self.folder / "tls.crt"), ssl_keyfile=str(self.folder / "tls.key"))
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API stand-in did not start on {HOST}:{self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
