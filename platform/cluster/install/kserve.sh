#!/usr/bin/env bash
# KServe in Standard (raw Deployment) mode with Gateway API ingress; no Knative, no Istio.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
case "$(action "$@")" in
  install)
    log "installing KServe ${KSERVE_VERSION} CRDs"
    h upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "${KSERVE_VERSION}" \
      -n "${NS_KSERVE}" --create-namespace --wait
    wait_crds inferenceservices.serving.kserve.io servingruntimes.serving.kserve.io
    log "installing the KServe controller (Standard mode, Gateway API)"
    h upgrade --install kserve-resources oci://ghcr.io/kserve/charts/kserve-resources --version "${KSERVE_VERSION}" \
      -n "${NS_KSERVE}" --wait --timeout 10m \
      --set kserve.version="${KSERVE_VERSION}" \
      --set kserve.controller.deploymentMode=Standard \
      --set kserve.controller.gateway.ingressGateway.enableGatewayApi=true \
      --set kserve.controller.gateway.ingressGateway.kserveGateway="${NS_GATEWAY}/kserve-ingress-gateway" \
      --set kserve.controller.gateway.ingressGateway.className=envoy \
      --set kserve.controller.resources.requests.cpu=50m \
      --set kserve.controller.rbacProxy.resources.requests.cpu=20m  # budget.yaml
    wait_deployments "${NS_KSERVE}"
    ;;
  uninstall)
    h uninstall kserve-resources -n "${NS_KSERVE}" --ignore-not-found --wait
    h uninstall kserve-crd -n "${NS_KSERVE}" --ignore-not-found --wait
    ;;
esac
