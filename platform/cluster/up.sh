#!/usr/bin/env bash
# make up: check prerequisites, create the kind cluster, install every dependency (pinned in
# versions.env) with its own idempotent script, then charts/mlplatform and one charts/tenant per
# tenant. Safe to re-run: each step upgrades in place.
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/lib.sh"

need docker "install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/"
docker info >/dev/null 2>&1 || die "docker is installed but the engine is not reachable (is the daemon running?)"
need kind "install kind ${KIND_VERSION}: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "install kubectl (any version within one minor of ${K8S_VERSION}): https://kubernetes.io/docs/tasks/tools/"
need helm "install Helm >= ${HELM_MIN_VERSION}: https://helm.sh/docs/intro/install/"
need python3 "install Python 3 (platform/cluster/image_tag.py computes the image's tag)"
[[ -x "${REPO_ROOT}/.venv/bin/python" ]] || die "missing .venv: run 'make venv' first"

version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" == "$2" ]]; }
kind_v="$(kind version | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+' | head -1)"
version_ge "${kind_v#v}" "0.24.0" || die "kind ${kind_v} is too old: >= v0.24 is needed (NetworkPolicy enforcement); pinned ${KIND_VERSION}"
helm_v="$(helm version --template '{{.Version}}')"
version_ge "${helm_v#v}" "${HELM_MIN_VERSION}" || die "helm ${helm_v} is too old: >= ${HELM_MIN_VERSION} is needed"

if kind get clusters 2>/dev/null | grep -qx "${KIND_CLUSTER_NAME}"; then
  log "kind cluster ${KIND_CLUSTER_NAME} exists; reusing it"
else
  log "creating kind cluster ${KIND_CLUSTER_NAME} (Kubernetes ${K8S_VERSION})"
  kind create cluster --name "${KIND_CLUSTER_NAME}" --image "${KIND_NODE_IMAGE}" \
    --config "${CLUSTER_DIR}/kind.yaml" --wait 180s
fi

start=$(date +%s)
for step in cert-manager gateway kserve kuberay monitoring kfp mlplatform tenants; do
  t0=$(date +%s)
  "${CLUSTER_DIR}/install/${step}.sh" install
  log "${step} ready after $(( $(date +%s) - t0 ))s"
done
log "cluster up in $(( $(date +%s) - start ))s"
"${CLUSTER_DIR}/status.sh"
