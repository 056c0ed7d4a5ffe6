#!/usr/bin/env bash
# Our image (built here, loaded into kind: no registry needed) and charts/mlplatform.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
case "$(action "$@")" in
  install)
    if ! docker image inspect "${MLPLATFORM_IMAGE}" >/dev/null 2>&1; then
      log "building ${MLPLATFORM_IMAGE} (first build takes several minutes)"
      # IMAGE_TENANTS: the tenant packages baked into the image (folders; the Dockerfile's TENANTS)
      docker build -t "${MLPLATFORM_IMAGE}" \
        --build-arg TENANTS="${IMAGE_TENANTS:-examples/fraud examples/search}" "${REPO_ROOT}"
    fi
    log "loading ${MLPLATFORM_IMAGE} into kind"
    kind load docker-image "${MLPLATFORM_IMAGE}" --name "${KIND_CLUSTER_NAME}"
    k create namespace "${NS_PLATFORM}" --dry-run=client -o yaml | k apply -f -
    k label namespace "${NS_PLATFORM}" --overwrite \
      pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted
    h upgrade --install mlplatform "${REPO_ROOT}/charts/mlplatform" -n "${NS_PLATFORM}" \
      --set global.namespaces.kubeflow="${NS_KUBEFLOW}" --set global.namespaces.monitoring="${NS_MONITORING}" \
      --wait --timeout 10m
    wait_deployments "${NS_PLATFORM}"
    ;;
  uninstall)
    h uninstall mlplatform -n "${NS_PLATFORM}" --ignore-not-found --wait
    k -n "${NS_PLATFORM}" delete pvc --all --ignore-not-found
    ;;
esac
