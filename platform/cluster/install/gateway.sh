#!/usr/bin/env bash
# Gateway API CRDs (standard channel) and Envoy Gateway, plus the GatewayClass and the Gateway
# KServe routes through (kserve/kserve-ingress-gateway, KServe's default name).
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
case "$(action "$@")" in
  install)
    log "installing Gateway API ${GATEWAY_API_VERSION} CRDs"
    k apply --server-side --force-conflicts \
      -f "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
    wait_crds gateways.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io gatewayclasses.gateway.networking.k8s.io
    log "installing Envoy Gateway ${ENVOY_GATEWAY_VERSION}"
    # Only the gateway.envoyproxy.io CRDs: the chart also bundles Gateway API CRDs, ours are pinned above.
    helm show crds oci://docker.io/envoyproxy/gateway-helm --version "${ENVOY_GATEWAY_VERSION}" \
      | "${REPO_ROOT}/.venv/bin/python" -c 'import sys, yaml; sys.stdout.write(yaml.safe_dump_all([d for d in yaml.safe_load_all(sys.stdin) if d and d["spec"]["group"] == "gateway.envoyproxy.io"]))' \
      | k apply --server-side --force-conflicts -f -
    h upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "${ENVOY_GATEWAY_VERSION}" \
      -n "${NS_GATEWAY_PROXY}" --create-namespace --skip-crds --wait --timeout 10m \
      --set deployment.envoyGateway.resources.requests.cpu=50m  # budget.yaml
    wait_deployments "${NS_GATEWAY_PROXY}"
    k create namespace "${NS_GATEWAY}" --dry-run=client -o yaml | k apply -f -
    k apply -f - <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: envoy
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: kserve-ingress-gateway
  namespace: ${NS_GATEWAY}
spec:
  gatewayClassName: envoy
  listeners:
    - name: http
      protocol: HTTP
      port: 80
      allowedRoutes:
        namespaces:
          from: All
YAML
    # The Gateway's Service is type LoadBalancer; on kind it stays <pending> (no cloud LB):
    # programmed is enough, traffic comes in through port-forward (make status prints it).
    log "waiting for the Gateway to be accepted"
    k -n "${NS_GATEWAY}" wait gateway/kserve-ingress-gateway --for=condition=Accepted --timeout="${WAIT_TIMEOUT}"
    ;;
  uninstall)
    k -n "${NS_GATEWAY}" delete gateway kserve-ingress-gateway --ignore-not-found
    k delete gatewayclass envoy --ignore-not-found
    h uninstall eg -n "${NS_GATEWAY_PROXY}" --ignore-not-found --wait
    k delete namespace "${NS_GATEWAY_PROXY}" --ignore-not-found --wait=false
    k delete --ignore-not-found \
      -f "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
    ;;
esac
