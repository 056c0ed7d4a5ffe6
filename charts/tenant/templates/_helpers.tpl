{{/* The tenant name is the namespace, the InferenceService name and the MLflow model name. */}}
{{- define "tenant.name" -}}
{{- .Values.name -}}
{{- end -}}

{{- define "tenant.namespace" -}}
{{- .Values.name -}}
{{- end -}}

{{/* Feast's Redis connection string is host:port[,db=N][,password=P][,ssl=true]
     (RedisOnlineStoreConfig); these read it the way services.redis_url does in Python */}}
{{- define "tenant.redisHostPort" -}}
{{- splitList "," .Values.cluster.redis_address | first | trim -}}
{{- end -}}

{{/* The event stream's redis:// URL (its client takes URLs, not Feast's connection string) */}}
{{- define "tenant.streamRedisUrl" -}}
{{- $db := "0" -}}{{- $scheme := "redis" -}}{{- $auth := "" -}}
{{- range rest (splitList "," .Values.cluster.redis_address) -}}
{{- $kv := splitn "=" 2 (trim .) -}}
{{- if eq $kv._0 "db" }}{{ $db = $kv._1 }}{{ end -}}
{{- if and (eq $kv._0 "ssl") (eq (lower $kv._1) "true") }}{{ $scheme = "rediss" }}{{ end -}}
{{- if and (eq $kv._0 "password") $kv._1 }}{{ $auth = printf ":%s@" (urlquery $kv._1) }}{{ end -}}
{{- end -}}
{{- printf "%s://%s%s/%s" $scheme $auth (include "tenant.redisHostPort" .) $db -}}
{{- end -}}

{{- define "tenant.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across upgrades (never include the chart version here). */}}
{{- define "tenant.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
mlplatform.io/tenant: {{ include "tenant.name" . }}
{{- end -}}

{{- define "tenant.labels" -}}
{{ include "tenant.selectorLabels" . }}
app.kubernetes.io/part-of: mlplatform
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ include "tenant.chart" . }}
{{- end -}}

{{/*
The tenant's HTTPRoute: "<tenant>-route", a name KServe v0.20 never derives from an
InferenceService (it reconciles "<isvc>", "<isvc>-predictor", "<isvc>-transformer" and
"<isvc>-explainer": pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/httproute_reconciler.go,
reconcileTopLevelHTTPRoute and reconcilePredictorHTTPRoute; pkg/constants/constants.go
PredictorServiceName). mlplatform.rollout.backends.route_name says the same (a test checks).
*/}}
{{- define "tenant.routeName" -}}
{{- printf "%s-route" .Values.name -}}
{{- end -}}

{{/*
Labels of every InferenceService: cluster-local visibility makes KServe v0.20 create no HTTPRoute
at all for it (RawHTTPRouteReconciler.Reconcile skips reconcile*HTTPRoute when the label
networking.kserve.io/visibility is "cluster-local" and marks IngressReady true:
httproute_reconciler.go, Reconcile; pkg/constants/constants.go NetworkVisibility,
ClusterLocalVisibility). The tenant's own route is then the only route to its predictors.
*/}}
{{- define "tenant.isvcLabels" -}}
{{ include "tenant.labels" . }}
networking.kserve.io/visibility: cluster-local
{{- end -}}

{{/* Host of the tenant's HTTPRoute. */}}
{{- define "tenant.hostname" -}}
{{- .Values.cluster.hostname | default (printf "%s.mlplatform.local" .Values.name) -}}
{{- end -}}

{{/* Pod-level security context: Pod Security Standards "restricted". */}}
{{- define "tenant.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context: restricted, plus a read-only root filesystem. */}}
{{- define "tenant.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* requests and limits from a cluster.Resources value (both always set). */}}
{{- define "tenant.resources" -}}
requests:
  cpu: {{ .requests.cpu | quote }}
  memory: {{ .requests.memory | quote }}
limits:
  cpu: {{ .limits.cpu | quote }}
  memory: {{ .limits.memory | quote }}
{{- end -}}

{{/*
A predictor (KServe custom container) for one role.
Call with (dict "root" $ "role" "stable|canary|shadow" "alias" "<MLflow alias>").
*/}}
{{- define "tenant.predictor" -}}
{{- $root := .root -}}
{{- $c := $root.Values.cluster -}}
serviceAccountName: {{ include "tenant.name" $root }}-predictor
automountServiceAccountToken: false
minReplicas: {{ if eq .role "stable" }}{{ $c.min_replicas }}{{ else }}1{{ end }}
maxReplicas: {{ if eq .role "stable" }}{{ $c.max_replicas }}{{ else }}1{{ end }}
labels:
  mlplatform.io/tenant: {{ include "tenant.name" $root }}
  mlplatform.io/component: predictor
  mlplatform.io/role: {{ .role }}
securityContext:
  {{- include "tenant.podSecurityContext" $root | nindent 2 }}
containers:
  - name: kserve-container
    image: {{ $c.image | quote }}
    imagePullPolicy: {{ $c.image_pull_policy }}
    command: ["mlplatform"]
    args: ["serve", {{ include "tenant.name" $root | quote }}]
    # its identity (identity.yaml): MLflow read-only, the Redis reader, the tenant's database role for
    # the prediction log the quality CronJob reads (a file in this pod's /tmp would be nothing to it)
    env:
      {{- include "tenant.identityEnv" . | nindent 6 }}
      - name: MLPLATFORM_TENANT_FILE
        value: /etc/mlplatform/tenant.yaml
      - name: MLPLATFORM_MODEL_ALIAS
        value: {{ .alias | quote }}
      - name: MLPLATFORM_ROLE
        value: {{ .role | quote }}
      - name: MLPLATFORM_FEAST_ONLINE_STORE
        value: redis
      - name: MLPLATFORM_REDIS_ADDRESS
        value: {{ $c.redis_address | quote }}
      - name: MLFLOW_TRACKING_URI
        value: {{ $c.mlflow_tracking_uri | quote }}
      - name: HOME
        value: /tmp
      # the workspace (Feast's repo file, caches) on the /tmp emptyDir: the root filesystem is read-only
      - name: MLPLATFORM_HOME
        value: /tmp/mlplatform
    ports:
      - name: http
        containerPort: {{ $root.Values.serving.port }}
        protocol: TCP
    readinessProbe:
      httpGet: {path: /v2/health/ready, port: http}
      periodSeconds: 10
    livenessProbe:
      httpGet: {path: /v2/health/live, port: http}
      initialDelaySeconds: 30
      periodSeconds: 20
    resources:
      {{- include "tenant.resources" $c.resources | nindent 6 }}
    securityContext:
      {{- include "tenant.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - {name: tenant, mountPath: /etc/mlplatform, readOnly: true}
      {{- include "tenant.identityMount" . | nindent 6 }}
      - {name: tmp, mountPath: /tmp}
volumes:
  {{- include "tenant.identityVolume" (dict "root" $root "as" "predictor") | nindent 2 }}
  - name: tenant
    configMap:
      name: {{ include "tenant.name" $root }}-tenant
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
{{- end -}}

{{/* mlplatform.config.slug: lower case, every run of other characters one "_" (a test compares) */}}
{{- define "tenant.slug" -}}
{{- regexReplaceAll "[^a-z0-9]+" (lower .Values.name) "_" | trimAll "_" -}}
{{- end -}}

{{/* The tenant's own PostgreSQL role and schema (mlplatform.identity.sql_registry.role) */}}
{{- define "tenant.databaseRole" -}}
{{- printf "feast_%s" (include "tenant.slug" .) -}}
{{- end -}}

{{/*
A pod's identity (identity.yaml): the Secret <tenant>-<as> mounted at /etc/mlplatform-identity, whose
files the `mlplatform` command sets as its variables (MLPLATFORM_IDENTITY_DIR; files, not env from a
Secret: mlplatform/identity/secret_files.py). Call with (dict "root" $ "as" "predictor").
"identityEnv" is the env entry, "identityMount" the volumeMount, "identityVolume" the volume.
*/}}
{{- define "tenant.identityEnv" -}}
- {name: MLPLATFORM_IDENTITY_DIR, value: /etc/mlplatform-identity}
{{- end -}}
{{- define "tenant.identityMount" -}}
- {name: identity, mountPath: /etc/mlplatform-identity, readOnly: true}
{{- end -}}
{{- define "tenant.identityVolume" -}}
- name: identity
  secret: {secretName: {{ printf "%s-%s" (include "tenant.name" .root) .as }}}
{{- end -}}
