#!/usr/bin/env bash
# make gateway: forward http://localhost:${GATEWAY_LOCAL_PORT} to the shared Gateway (the Envoy proxy
# Envoy Gateway runs for kserve/kserve-ingress-gateway) until Ctrl-C. kind has no LoadBalancer, so
# this is how tenants' HTTPRoutes are reached from the host; send each tenant's Host header.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/lib.sh"
svc="$(k -n "${NS_GATEWAY_PROXY}" get svc -o name \
  -l "gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway,gateway.envoyproxy.io/owning-gateway-namespace=${NS_GATEWAY}" \
  | head -1)"
[[ -n "${svc}" ]] || die "no Envoy proxy Service for Gateway ${NS_GATEWAY}/kserve-ingress-gateway (make up, then make status)"
log "http://localhost:${GATEWAY_LOCAL_PORT} -> ${NS_GATEWAY_PROXY}/${svc#service/}:80 (Ctrl-C stops)"
k -n "${NS_GATEWAY_PROXY}" port-forward "${svc}" "${GATEWAY_LOCAL_PORT}:80"
