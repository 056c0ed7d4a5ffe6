# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Shared helpers for the cluster scripts; sourced, never run. Loads versions.env.
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${CLUSTER_DIR}/../.." && pwd)"
set -a
# shellcheck source=versions.env
source "${CLUSTER_DIR}/versions.env"
set +a
KUBE_CONTEXT="kind-${KIND_CLUSTER_NAME}"
MLPLATFORM_IMAGE_REPO="${MLPLATFORM_IMAGE%:*}"
IMAGE_TENANTS="${IMAGE_TENANTS:-examples/fraud examples/search}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-300s}"

log() { printf '\033[36m[%s]\033[0m %s\n' "$(basename "$0" .sh)" "$*"; }
die() { printf '\033[31m[%s] %s\033[0m\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# Every command talks to the kind cluster only, never to whatever context is current.
k() { kubectl --context "${KUBE_CONTEXT}" "$@"; }
h() { helm --kube-context "${KUBE_CONTEXT}" "$@"; }

need() {  # need <command> <how to install>
  command -v "$1" >/dev/null 2>&1 || die "missing prerequisite '$1': $2"
}

release_exists() {  # release_exists <release> <namespace>
  h status "$1" -n "$2" >/dev/null 2>&1
}

wait_deployments() {  # wait_deployments <namespace> [selector]
  log "waiting up to ${WAIT_TIMEOUT} for deployments in $1 ${2:+($2)} to become available"
  k -n "$1" wait deployment ${2:+-l "$2"} --all --for=condition=Available --timeout="${WAIT_TIMEOUT}"
}

wait_crds() {  # wait_crds <crd>...: a CRD must be Established before objects of its kind are applied
  for crd in "$@"; do
    log "waiting for CRD ${crd} to be established"
    k wait "crd/${crd}" --for=condition=Established --timeout=120s
  done
}

action() {  # action "$@": the install|uninstall argument of an install script
  case "${1:-install}" in
    install|uninstall) echo "${1:-install}" ;;
    *) die "usage: $0 [install|uninstall]" ;;
  esac
}

image_tag() {  # the image's tag: a hash of its build context and build arguments (image_tag.py)
  python3 "${CLUSTER_DIR}/image_tag.py" "${REPO_ROOT}" \
    --build-arg TENANTS="${IMAGE_TENANTS}" --build-arg TORCH_WHEELS="${TORCH_INDEX}"
}
