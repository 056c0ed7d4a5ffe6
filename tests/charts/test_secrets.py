"""Credentials in the charts: generated at install into Secrets (helm `lookup` + randAlphaNum, kept
across upgrades), read by the pods from mounted files, and nowhere else: not in a values file, not
in any other rendered object (docs/security.md)."""

from __future__ import annotations

import base64
import re

import yaml

from cluster_helpers import REPO_ROOT
from mlplatform.identity.mlflow_auth import auth_ini

SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key)", re.IGNORECASE)


def _case(cases, name):
    return next(c for c in cases if c.name == name)


def _find(case, kind, name):
    return next(o for o in case.objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_mlflow_runs_the_basic_auth_app_with_a_generated_admin_password(cases):
    case = _case(cases, "mlplatform/defaults")
    secret = _find(case, "Secret", "mlflow-admin")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)  # randAlphaNum 32 (a fresh one offline)
    ini = _find(case, "ConfigMap", "mlflow-auth")["data"]["basic_auth.ini"]
    assert ini == auth_ini("sqlite:////mlartifacts/basic_auth.db")  # the platform's own settings
    pod = _find(case, "Deployment", "mlflow")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    script = container["args"][0]
    assert "--app-name basic-auth" in script
    assert 'MLFLOW_AUTH_ADMIN_PASSWORD="$(cat /etc/mlflow-admin/password)"' in script
    assert 'MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat /etc/mlflow-admin/flask-secret-key)"' in script
    assert len(base64.b64decode(secret["data"]["flask-secret-key"])) == 48
    assert {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": "/etc/mlflow-auth/basic_auth.ini"} in container["env"]
    assert {"name": "mlflow-admin", "secret": {"secretName": "mlflow-admin"}} in pod["volumes"]
    off = _find(_case(cases, "mlplatform/no-mlflow-auth"), "Deployment", "mlflow")  # an operator's choice
    assert "basic-auth" not in off["spec"]["template"]["spec"]["containers"][0]["args"][0]


def test_no_credential_outside_a_secret(cases):
    """Every Secret's values (decoded and encoded) appear in no other object of any rendered case,
    and no container carries a credential-named variable with a literal value."""
    for case in cases:
        secrets = [o for o in case.objects if o["kind"] == "Secret"]
        values = {v for s in secrets for v in (s.get("data") or {}).values()}
        values |= {base64.b64decode(v).decode(errors="replace") for v in list(values)}
        values |= {v for s in secrets for v in (s.get("stringData") or {}).values()}
        values = {v for v in values if len(v) >= 12}  # user names ("admin") are not credentials
        for obj in case.objects:
            if obj["kind"] == "Secret":
                continue
            text = yaml.safe_dump(obj)
            leaked = [v for v in values if v in text]
            assert not leaked, f"{case.name}: {obj['kind']}/{obj['metadata']['name']} holds a Secret's value"
            for name, value in re.findall(r"- name: (\S+)\n\s+value: (.+)", text):
                value = value.strip().strip("'\"")
                literal = value and not value.startswith("/")  # a path (…_FILE) names a mounted Secret
                assert not (SECRET_KEY.search(name) and literal), \
                    f"{case.name}: {obj['kind']}/{obj['metadata']['name']} sets {name} literally"


def test_no_values_file_holds_a_credential():
    files = [*REPO_ROOT.glob("charts/*/values.yaml"), *REPO_ROOT.glob("charts/*/charts/*/values.yaml"),
             *REPO_ROOT.glob("examples/*/tenant.yaml")]
    assert files

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if SECRET_KEY.search(str(k)) and isinstance(v, (str, int)) and str(v) != "":
                    raise AssertionError(f"{path}.{k} holds a literal credential")
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    for f in files:
        walk(yaml.safe_load(f.read_text()), f.relative_to(REPO_ROOT).as_posix())
