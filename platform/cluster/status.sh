#!/usr/bin/env bash
# make status: what runs, and how to reach it (kind has no LoadBalancer: port-forwards).
# shellcheck source=platform/cluster/lib.sh
source "$(dirname "$0")/lib.sh"
if ! kind get clusters 2>/dev/null | grep -qx "${KIND_CLUSTER_NAME}"; then
  log "kind cluster ${KIND_CLUSTER_NAME} is not running (make up)"
  exit 1
fi
log "helm releases"
h list -A
log "pods that are not running"
k get pods -A --field-selector=status.phase!=Running,status.phase!=Succeeded 2>/dev/null || true
log "inference services"
k get inferenceservices -A 2>/dev/null || true
gw_svc="$(k -n "${NS_GATEWAY_PROXY}" get svc -l gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway -o name 2>/dev/null | head -1)"
cat <<TXT

URLs (run each port-forward in its own terminal):
  Gateway (tenants)  make gateway   (= kubectl --context ${KUBE_CONTEXT} -n ${NS_GATEWAY_PROXY} port-forward ${gw_svc:-svc/<envoy-proxy-service>} ${GATEWAY_LOCAL_PORT}:80)
                     curl -H 'Host: <tenant>.mlplatform.local' -H 'content-type: application/json' http://localhost:${GATEWAY_LOCAL_PORT}/v2/models/<tenant>/infer -d @examples/<tenant>/requests/v2.json
                     curl -H 'Host: <tenant>.mlplatform.local' -H 'content-type: application/json' http://localhost:${GATEWAY_LOCAL_PORT}/v1/models/<tenant>:predict -d @examples/<tenant>/requests/v1.json
  MLflow             kubectl --context ${KUBE_CONTEXT} -n ${NS_PLATFORM} port-forward svc/mlflow 5000:5000       -> http://localhost:5000
  KFP UI             kubectl --context ${KUBE_CONTEXT} -n ${NS_KUBEFLOW} port-forward svc/ml-pipeline-ui 8081:80 -> http://localhost:8081
  Prometheus         kubectl --context ${KUBE_CONTEXT} -n ${NS_MONITORING} port-forward svc/kube-prometheus-stack-prometheus 9090:9090
  Grafana            kubectl --context ${KUBE_CONTEXT} -n ${NS_MONITORING} port-forward svc/kube-prometheus-stack-grafana 3000:80 (admin / mlplatform)
  Alertmanager       kubectl --context ${KUBE_CONTEXT} -n ${NS_MONITORING} port-forward svc/kube-prometheus-stack-alertmanager 9093:9093
  Ray dashboard      kubectl --context ${KUBE_CONTEXT} -n <tenant> port-forward svc/<rayjob>-head-svc 8265:8265 (while a RayJob runs)
TXT
