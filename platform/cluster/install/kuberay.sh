#!/usr/bin/env bash
# KubeRay operator: runs each training step's RayJob.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
case "$(action "$@")" in
  install)
    log "installing KubeRay operator ${KUBERAY_VERSION}"
    h upgrade --install kuberay-operator kuberay-operator --repo https://ray-project.github.io/kuberay-helm/ \
      --version "${KUBERAY_VERSION}" -n "${NS_KUBERAY}" --create-namespace --wait --timeout 10m \
      --set resources.requests.cpu=50m --set resources.requests.memory=256Mi  # budget.yaml
    wait_crds rayjobs.ray.io rayclusters.ray.io
    wait_deployments "${NS_KUBERAY}"
    ;;
  uninstall)
    h uninstall kuberay-operator -n "${NS_KUBERAY}" --ignore-not-found --wait
    k delete namespace "${NS_KUBERAY}" --ignore-not-found --wait=false
    ;;
esac
