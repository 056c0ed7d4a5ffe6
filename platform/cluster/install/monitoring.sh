#!/usr/bin/env bash
# kube-prometheus-stack: Prometheus (selecting ServiceMonitors and PrometheusRules in every
# namespace), Alertmanager (routing drift alerts to the retraining webhook and each tenant's alerts
# to its owner, rendered from the tenant files: re-run after adding a tenant) and Grafana.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
case "$(action "$@")" in
  install)
    log "installing kube-prometheus-stack ${KUBE_PROMETHEUS_STACK_VERSION} (prometheus-operator ${PROMETHEUS_OPERATOR_VERSION})"
    h upgrade --install kube-prometheus-stack kube-prometheus-stack \
      --repo https://prometheus-community.github.io/helm-charts --version "${KUBE_PROMETHEUS_STACK_VERSION}" \
      -n "${NS_MONITORING}" --create-namespace --wait --timeout 15m \
      -f <(sed -e "s/__NS_PLATFORM__/${NS_PLATFORM}/g" "${CLUSTER_DIR}/values/kube-prometheus-stack.yaml") \
      -f <("${REPO_ROOT}/.venv/bin/mlplatform" alertmanager-config "${REPO_ROOT}"/examples/*/tenant.yaml \
            --webhook-url "http://retrain-webhook.${NS_PLATFORM}.svc:9095/alerts")
    wait_crds servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com
    wait_deployments "${NS_MONITORING}"
    ;;
  uninstall)
    h uninstall kube-prometheus-stack -n "${NS_MONITORING}" --ignore-not-found --wait
    k delete namespace "${NS_MONITORING}" --ignore-not-found --wait=false
    ;;
esac
