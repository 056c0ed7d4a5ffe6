"""Alert routing rendered from the tenant files: Alertmanager's own amtool accepts the config and
sends each tenant's alerts to its owner's receiver (`amtool config routes test`), the retraining
alerts to the webhook as well; the rules carry the owner's team label."""

from __future__ import annotations

import pytest
import yaml

from mlplatform.config import TenantConfigError, load_tenant, parse_tenant
from mlplatform.monitoring.alert_routing import RoutingError, Smtp, alertmanager_config, cluster_values
from mlplatform.monitoring.rules import rule_groups
from mlplatform.monitoring.stack import MonitoringStack
from mlplatform.verify.amtool import check_config, find_amtool, routes_test

from tests.conftest import FRAUD_TENANT, require

SEARCH_TENANT = FRAUD_TENANT.parents[1] / "search" / "tenant.yaml"


def tenant(path, name=None, **owner):
    raw = yaml.safe_load(path.read_text())
    if name:
        raw["name"] = name
    if owner:
        raw["owner"] = owner
    return parse_tenant(raw)


@pytest.fixture(scope="module")
def amtool():
    exe = find_amtool()
    require(exe, "amtool not found (Debian/Ubuntu: apt-get install prometheus-alertmanager)")
    return exe


@pytest.fixture(scope="module")
def tenants():
    hook = "http://127.0.0.1:9/"
    return [tenant(FRAUD_TENANT, team="fraud-ops", receiver={"webhook_url": hook + "fraud-ops"}),
            tenant(FRAUD_TENANT, "cardfraud", team="cards", receiver={"webhook_url": hook + "cards"}),
            tenant(SEARCH_TENANT, team="search-relevance", receiver={"email": "search@example.com"}),
            tenant(FRAUD_TENANT, "unowned")]


def test_the_cluster_config_routes_each_team_to_its_receiver(tenants, amtool):
    with pytest.raises(RoutingError, match="no SMTP relay"):
        cluster_values(tenants[2:3], "http://x/alerts")  # email without the platform's relay
    config = alertmanager_config(tenants, webhook_url="http://retrain-webhook.mlplatform.svc:9095/alerts",
                                 smtp=Smtp("smtp.example.com:587", "alerts@example.com"))
    ok, out = check_config(config, amtool)
    assert ok, out
    drift = {"alertname": "MLPlatformFeatureDrift", "action": "retrain", "severity": "warning"}
    assert routes_test(config, {"tenant": "fraud", "team": "fraud-ops", **drift}, amtool) == [
        "retrain-webhook", "team-fraud-ops"]
    assert routes_test(config, {"tenant": "cardfraud", "team": "cards", "alertname": "MLPlatformHighLatency"},
                       amtool) == ["team-cards"]
    assert routes_test(config, {"tenant": "search", "team": "search-relevance",
                                "alertname": "MLPlatformQualityJobStale"}, amtool) == ["team-search-relevance"]
    # a tenant without an owner: the platform's default receiver; its retraining alerts: the webhook alone
    assert routes_test(config, {"tenant": "unowned", "alertname": "MLPlatformHighLatency"}, amtool) == ["null"]
    assert routes_test(config, {"tenant": "unowned", **drift}, amtool) == ["retrain-webhook"]


def test_the_cluster_values_pass_amtool(tenants, amtool):
    config = cluster_values([t for t in tenants if t.name != "search"], "http://x:9095/alerts")["alertmanager"]["config"]
    ok, out = check_config(config, amtool)
    assert ok, out
    assert routes_test(config, {"tenant": "fraud", "team": "fraud-ops", "alertname": "MLPlatformHighLatency"},
                       amtool) == ["team-fraud-ops"]


def test_amtool_rejects_a_broken_config(tenants, amtool):
    config = alertmanager_config(tenants[:1])
    config["route"]["receiver"] = "nobody"
    ok, out = check_config(config, amtool)
    assert not ok and "nobody" in out


def test_the_embedded_stack_sends_every_tenant_alert_to_the_webhook_and_the_owner(tenants, amtool, tmp_path):
    stack = MonitoringStack(tmp_path / "stack", webhook_url="http://127.0.0.1:9095/alerts", tenants=tenants[:2])
    config = stack.alertmanager_config()
    ok, out = check_config(config, amtool)
    assert ok, out
    assert routes_test(config, {"tenant": "cardfraud", "team": "cards", "alertname": "MLPlatformHighLatency"},
                       amtool) == ["retrain-webhook", "team-cards"]
    assert routes_test(config, {"tenant": "other", "alertname": "MLPlatformHighLatency"}, amtool) == [
        "retrain-webhook"]


def test_one_team_one_receiver(tenants):
    clash = tenant(FRAUD_TENANT, "fraud2", team="fraud-ops", receiver={"webhook_url": "http://127.0.0.1:9/other"})
    with pytest.raises(RoutingError, match="team 'fraud-ops' names two receivers"):
        alertmanager_config([tenants[0], clash])


def test_a_receiver_needs_exactly_one_destination():
    with pytest.raises(TenantConfigError, match="exactly one of webhook_url, email"):
        tenant(FRAUD_TENANT, team="x-team", receiver={})
    with pytest.raises(TenantConfigError, match="owner.team"):
        tenant(FRAUD_TENANT, team="Fraud Ops", receiver={"email": "a@b.org"})


def test_every_alert_of_an_owned_tenant_carries_its_team(tmp_path):
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["owner"] = {"team": "fraud-ops", "receiver": {"webhook_url": "http://127.0.0.1:9/hook"}}
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(raw))
    alerts = [r for g in rule_groups(path)["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all(a["labels"]["team"] == "fraud-ops" for a in alerts)
    assert all("team" not in r["labels"] for g in rule_groups(FRAUD_TENANT)["groups"] for r in g["rules"]
               if "alert" in r)
    assert load_tenant(FRAUD_TENANT).owner is None
