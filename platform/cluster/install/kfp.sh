#!/usr/bin/env bash
# Kubeflow Pipelines standalone, platform-agnostic manifests (SeaweedFS as the artifact store, MySQL,
# Argo v4.0.5 minimal CRDs: manifests/kustomize/env/platform-agnostic/kustomization.yaml at KFP_VERSION).
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/../lib.sh"
BASE="github.com/kubeflow/pipelines/manifests/kustomize"
case "$(action "$@")" in
  install)
    log "installing KFP ${KFP_VERSION} cluster-scoped resources"
    k apply -k "${BASE}/cluster-scoped-resources?ref=${KFP_VERSION}"
    wait_crds workflows.argoproj.io scheduledworkflows.kubeflow.org
    log "installing KFP ${KFP_VERSION} (platform-agnostic)"
    # The upstream overlay with two CPU requests lowered so the stack fits a 4-CPU runner
    # (platform/cluster/budget.yaml): the API server asks 250m and the persistence agent 120m
    # upstream (manifests/kustomize/base/pipeline/*-deployment.yaml at 2.17.0), both idle here.
    overlay="$(mktemp -d)"
    trap 'rm -rf "${overlay}"' EXIT
    cat >"${overlay}/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - https://${BASE}/env/platform-agnostic?ref=${KFP_VERSION}
patches:
  - patch: |-
      {apiVersion: apps/v1, kind: Deployment, metadata: {name: ml-pipeline, namespace: ${NS_KUBEFLOW}},
       spec: {template: {spec: {containers: [{name: ml-pipeline-api-server, resources: {requests: {cpu: 50m}}}]}}}}
  - patch: |-
      {apiVersion: apps/v1, kind: Deployment, metadata: {name: ml-pipeline-persistenceagent, namespace: ${NS_KUBEFLOW}},
       spec: {template: {spec: {containers: [{name: ml-pipeline-persistenceagent, resources: {requests: {cpu: 20m}}}]}}}}
YAML
    k apply -k "${overlay}"
    WAIT_TIMEOUT=900s wait_deployments "${NS_KUBEFLOW}"
    ;;
  uninstall)
    k delete -k "${BASE}/env/platform-agnostic?ref=${KFP_VERSION}" --ignore-not-found || true
    k delete -k "${BASE}/cluster-scoped-resources?ref=${KFP_VERSION}" --ignore-not-found || true
    ;;
esac
