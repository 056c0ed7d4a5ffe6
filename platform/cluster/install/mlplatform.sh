#!/usr/bin/env bash
# Our image (built here, loaded into kind: no registry needed) and charts/mlplatform.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
case "$(action "$@")" in
  install)
    # Tagged from what goes into the image: any change to the Dockerfile, the lock or a source file
    # gives a new tag, so a rebuild happens and the releases roll to it (never stale code under an
    # old tag). The alias MLPLATFORM_IMAGE follows the newest build for the compiled pipeline.
    tag="$(image_tag)"
    image="${MLPLATFORM_IMAGE_REPO}:${tag}"
    if ! docker image inspect "${image}" >/dev/null 2>&1; then
      log "building ${image} (first build takes several minutes)"
      # IMAGE_TENANTS: the tenant packages baked into the image (folders; the Dockerfile's TENANTS)
      docker build -t "${image}" --build-arg TENANTS="${IMAGE_TENANTS}" \
        --build-arg TORCH_WHEELS="${TORCH_INDEX}" "${REPO_ROOT}"
    else
      log "${image} is current (nothing that goes into it changed)"
    fi
    docker tag "${image}" "${MLPLATFORM_IMAGE}"
    log "loading ${image} into kind"
    kind load docker-image "${image}" "${MLPLATFORM_IMAGE}" --name "${KIND_CLUSTER_NAME}"
    k create namespace "${NS_PLATFORM}" --dry-run=client -o yaml | k apply -f -
    k label namespace "${NS_PLATFORM}" --overwrite \
      pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted
    h upgrade --install mlplatform "${REPO_ROOT}/charts/mlplatform" -n "${NS_PLATFORM}" \
      --set global.namespaces.kubeflow="${NS_KUBEFLOW}" --set global.namespaces.monitoring="${NS_MONITORING}" \
      --set image.repository="${MLPLATFORM_IMAGE_REPO}" --set image.tag="${tag}" \
      --wait --timeout 10m
    wait_deployments "${NS_PLATFORM}"
    ;;
  uninstall)
    h uninstall mlplatform -n "${NS_PLATFORM}" --ignore-not-found --wait
    k -n "${NS_PLATFORM}" delete pvc --all --ignore-not-found
    ;;
esac
