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
    k apply -k "${BASE}/env/platform-agnostic?ref=${KFP_VERSION}"
    WAIT_TIMEOUT=900s wait_deployments "${NS_KUBEFLOW}"
    ;;
  uninstall)
    k delete -k "${BASE}/env/platform-agnostic?ref=${KFP_VERSION}" --ignore-not-found || true
    k delete -k "${BASE}/cluster-scoped-resources?ref=${KFP_VERSION}" --ignore-not-found || true
    ;;
esac
