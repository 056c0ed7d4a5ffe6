#!/usr/bin/env bash
# cert-manager (KServe's webhooks need certificates). Idempotent: `helm upgrade --install`.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
case "$(action "$@")" in
  install)
    log "installing cert-manager ${CERT_MANAGER_VERSION}"
    h upgrade --install cert-manager cert-manager --repo https://charts.jetstack.io \
      --version "${CERT_MANAGER_VERSION}" -n "${NS_CERT_MANAGER}" --create-namespace \
      --set crds.enabled=true --wait --timeout 10m
    wait_crds certificates.cert-manager.io issuers.cert-manager.io
    wait_deployments "${NS_CERT_MANAGER}"
    ;;
  uninstall)
    h uninstall cert-manager -n "${NS_CERT_MANAGER}" --ignore-not-found --wait
    k delete namespace "${NS_CERT_MANAGER}" --ignore-not-found --wait=false
    ;;
esac
