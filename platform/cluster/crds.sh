#!/usr/bin/env bash
# make crds: download the pinned upstream CRD files into ${MLPLATFORM_CRDS_DIR:-../shared/crds}
# (the layout mlplatform.verify reads). Needs network access; raw files from release tags only.
set -euo pipefail
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/lib.sh"
DEST="${MLPLATFORM_CRDS_DIR:-${REPO_ROOT}/../shared/crds}"
GH=https://raw.githubusercontent.com
fetch() {  # fetch <dest relative path> <url>
  mkdir -p "$(dirname "${DEST}/$1")"
  log "$1"
  curl -fsSL --retry 3 -o "${DEST}/$1" "$2"
}
for f in inferenceservices servingruntimes clusterservingruntimes inferencegraphs; do
  fetch "kserve/serving.kserve.io_${f}.yaml" "${GH}/kserve/kserve/${KSERVE_VERSION}/config/crd/full/serving.kserve.io_${f}.yaml"
done
for f in rayclusters rayjobs rayservices; do
  fetch "kuberay/ray.io_${f}.yaml" "${GH}/ray-project/kuberay/v${KUBERAY_VERSION}/ray-operator/config/crd/bases/ray.io_${f}.yaml"
done
for f in servicemonitors podmonitors prometheusrules; do
  fetch "prometheus-operator/monitoring.coreos.com_${f}.yaml" \
    "${GH}/prometheus-operator/prometheus-operator/${PROMETHEUS_OPERATOR_VERSION}/example/prometheus-operator-crd/monitoring.coreos.com_${f}.yaml"
done
for f in httproutes gateways gatewayclasses; do
  fetch "gateway-api/gateway.networking.k8s.io_${f}.yaml" \
    "${GH}/kubernetes-sigs/gateway-api/${GATEWAY_API_VERSION}/config/crd/standard/gateway.networking.k8s.io_${f}.yaml"
done
fetch knative-serving/service.yaml "${GH}/knative/serving/${KNATIVE_SERVING_VERSION}/config/core/300-resources/service.yaml"
fetch istio/crd-all.gen.yaml "${GH}/istio/istio/${ISTIO_VERSION}/manifests/charts/base/files/crd-all.gen.yaml"
fetch feast/feast.dev_featurestores.yaml "${GH}/feast-dev/feast/${FEAST_VERSION}/infra/feast-operator/config/crd/bases/feast.dev_featurestores.yaml"
KFP="${GH}/kubeflow/pipelines/${KFP_VERSION}/manifests/kustomize"
fetch kubeflow-pipelines/scheduled-workflow-crd.yaml "${KFP}/base/pipeline/cluster-scoped/scheduled-workflow-crd.yaml"
fetch kubeflow-pipelines/viewer-crd.yaml "${KFP}/base/pipeline/cluster-scoped/viewer-crd.yaml"
fetch kubeflow-pipelines/pipelines.kubeflow.org_pipelines.yaml "${KFP}/base/crds/pipelines.kubeflow.org_pipelines.yaml"
fetch kubeflow-pipelines/pipelines.kubeflow.org_pipelineversions.yaml "${KFP}/base/crds/pipelines.kubeflow.org_pipelineversions.yaml"
for f in workflows workflowtemplates cronworkflows; do
  fetch "argo-workflows/argoproj.io_${f}.yaml" \
    "${GH}/argoproj/argo-workflows/${ARGO_WORKFLOWS_VERSION}/manifests/base/crds/minimal/argoproj.io_${f}.yaml"
done
log "CRDs written to ${DEST}"
