#!/usr/bin/env bash
# make down: uninstall everything in reverse order, then delete the kind cluster.
# KEEP_CLUSTER=1 keeps the (empty) cluster.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/lib.sh"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
if ! kind get clusters 2>/dev/null | grep -qx "${KIND_CLUSTER_NAME}"; then
  log "no kind cluster ${KIND_CLUSTER_NAME}; nothing to do"
  exit 0
fi
if [[ "${KEEP_CLUSTER:-0}" == "1" ]]; then
  for step in tenants mlplatform kfp monitoring kuberay kserve gateway cert-manager; do
    "${CLUSTER_DIR}/install/${step}.sh" uninstall || log "${step}: uninstall reported an error, continuing"
  done
else
  log "deleting kind cluster ${KIND_CLUSTER_NAME} (removes every release with it)"
  kind delete cluster --name "${KIND_CLUSTER_NAME}"
fi
