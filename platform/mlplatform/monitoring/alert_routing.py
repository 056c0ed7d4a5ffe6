"""Alertmanager's configuration, rendered from the tenant files: each tenant's alerts reach its owner.

A tenant file names its owner (`owner: {team, receiver}`); the tenant's alert rules carry the label
`team=<owner.team>` (charts/tenant/templates/prometheusrule.yaml). The route tree:

    route: receiver <default>, group_by [tenant, alertname]
      - <webhook matchers> -> retrain-webhook, continue: true   (the retraining webhook decides per alert)
      - team="fraud-ops"   -> team-fraud-ops                     (owner.receiver)
      - ...                                                      (one route per team)
    anything else -> <default> ("null" unless the platform names one)

One receiver per team, so the tenants of one team must name the same receiver (RoutingError
otherwise). Receivers carry no credentials (config.Receiver); email needs the platform's SMTP
settings (`Smtp`).

Rendered for the embedded stack (monitoring/stack.py: every alert with a tenant label also goes to
the webhook) and for the cluster (`mlplatform alertmanager-config`, which
platform/cluster/install/monitoring.sh passes to kube-prometheus-stack: only action="retrain" goes
to the webhook). `amtool check-config` validates it and `amtool config routes test` shows where a
label set goes (mlplatform.verify.amtool).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mlplatform.config import Receiver, TenantConfig
from mlplatform.errors import UserError

DEFAULT = "null"
WEBHOOK = "retrain-webhook"


class RoutingError(ValueError, UserError):
    """The tenant files cannot be routed as they are (two receivers for one team, email without SMTP)."""


@dataclass(frozen=True)
class Smtp:
    """The platform's mail relay (no password here: Alertmanager reads one from smtp_auth_password_file)."""

    smarthost: str
    sender: str
    require_tls: bool = True


def receiver_name(team: str) -> str:
    return f"team-{team}"


def team_receivers(tenants: Iterable[TenantConfig]) -> dict[str, Receiver]:
    """team -> its receiver, from every tenant that names an owner."""
    out: dict[str, Receiver] = {}
    named_by: dict[str, str] = {}
    for cfg in tenants:
        if cfg.owner is None:
            continue
        team, receiver = cfg.owner.team, cfg.owner.receiver
        if team in out and out[team] != receiver:
            raise RoutingError(f"team {team!r} names two receivers: {out[team].model_dump(exclude_none=True)} "
                               f"(tenant {named_by[team]}) and {receiver.model_dump(exclude_none=True)} (tenant "
                               f"{cfg.name}); one team, one receiver")
        out[team], named_by[team] = receiver, named_by.get(team, cfg.name)
    return dict(sorted(out.items()))


def _receiver(team: str, receiver: Receiver, smtp: Smtp | None) -> dict[str, Any]:
    if receiver.webhook_url:
        return {"name": receiver_name(team),
                "webhook_configs": [{"url": receiver.webhook_url, "send_resolved": True}]}
    if smtp is None:
        raise RoutingError(f"team {team!r} is told by email ({receiver.email}), but the platform's Alertmanager has "
                           "no SMTP relay configured")
    return {"name": receiver_name(team), "email_configs": [{"to": receiver.email, "send_resolved": True}]}


def alertmanager_config(tenants: Iterable[TenantConfig], *, webhook_url: str | None = None,
                        webhook_matchers: Sequence[str] = ('action="retrain"',),
                        webhook_repeat_interval: str | None = None, webhook_send_resolved: bool = True,
                        smtp: Smtp | None = None,
                        group_wait: str = "30s", group_interval: str = "5m", repeat_interval: str = "12h",
                        resolve_timeout: str = "5m") -> dict[str, Any]:
    """The whole alertmanager.yml as a dict."""
    receivers: list[dict[str, Any]] = [{"name": DEFAULT}]
    routes: list[dict[str, Any]] = []
    if webhook_url:
        receivers.append({"name": WEBHOOK, "webhook_configs": [{"url": webhook_url,
                                                                "send_resolved": webhook_send_resolved}]})
        # continue: the webhook sees the alert and the owner is told too
        route = {"receiver": WEBHOOK, "matchers": list(webhook_matchers), "continue": True}
        if webhook_repeat_interval:
            route["repeat_interval"] = webhook_repeat_interval
        routes.append(route)
    for team, receiver in team_receivers(tenants).items():
        receivers.append(_receiver(team, receiver, smtp))
        routes.append({"receiver": receiver_name(team), "matchers": [f'team="{team}"']})
    config: dict[str, Any] = {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {"receiver": DEFAULT, "group_by": ["tenant", "alertname"], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval, "routes": routes},
        "receivers": receivers,
    }
    if smtp is not None:
        config["global"] |= {"smtp_smarthost": smtp.smarthost, "smtp_from": smtp.sender,
                             "smtp_require_tls": smtp.require_tls}
    return config


def cluster_values(tenants: Iterable[TenantConfig], webhook_url: str, smtp: Smtp | None = None) -> dict[str, Any]:
    """kube-prometheus-stack values holding the cluster's Alertmanager config: drift and quality
    alerts (action=retrain) go to the retraining webhook at most once a day, every alert of a tenant
    with an owner to its team (platform/cluster/install/monitoring.sh)."""
    config = alertmanager_config(tenants, webhook_url=webhook_url, webhook_matchers=['action="retrain"'],
                                 webhook_repeat_interval="24h", webhook_send_resolved=False, smtp=smtp)
    return {"alertmanager": {"config": config}}
