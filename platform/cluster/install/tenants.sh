#!/usr/bin/env bash
# One charts/tenant release per tenant file (TENANTS="fraud search" or every examples/*/tenant.yaml).
# The release lives in the platform namespace; the tenant's objects go to its own namespace.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
if [[ -z "${TENANTS:-}" ]]; then
  TENANTS=""
  for f in "${REPO_ROOT}"/examples/*/tenant.yaml; do TENANTS+=" $(basename "$(dirname "$f")")"; done
fi
tenants="${TENANTS}"
case "$(action "$@")" in
  install)
    for t in ${tenants}; do
      file="${REPO_ROOT}/examples/${t}/tenant.yaml"
      [[ -f "${file}" ]] || { log "skipping ${t}: no ${file}"; continue; }
      log "installing tenant ${t}"
      h upgrade --install "${t}" "${REPO_ROOT}/charts/tenant" -n "${NS_PLATFORM}" -f "${file}" \
        --set cluster.gateway_local_port="${GATEWAY_LOCAL_PORT}" \
        --set cluster.image="${MLPLATFORM_IMAGE_REPO}:$(image_tag)" --wait=false --timeout 10m
      # No --wait: the predictor is Ready only once a model is registered under its alias.
      # --timeout: Helm still waits for the onboarding hook Job (charts/tenant onboarding.yaml),
      # whose own deadline is shorter.
    done
    ;;
  uninstall)
    for t in ${tenants}; do
      h uninstall "${t}" -n "${NS_PLATFORM}" --ignore-not-found --wait
    done
    ;;
esac
