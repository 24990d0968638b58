{{/* Names, labels, the rendered drift-auditor.yaml, and the containers both runners use. */}}

{{- define "drift-auditor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "drift-auditor.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "drift-auditor.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "drift-auditor.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* scope.include-kinds entries: Kind for the core group, Kind.group otherwise. */}}
{{- define "drift-auditor.includeKinds" -}}
{{- $out := list -}}
{{- range .Values.kinds -}}
{{- $out = append $out (ternary .kind (printf "%s.%s" .kind .group) (eq .group "")) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* RBAC rules granting `verbs` on every kind in .kinds, one rule per API group in order of
first appearance. Call with (dict "kinds" LIST "verbs" LIST). */}}
{{- define "drift-auditor.rules" -}}
{{- $groups := list -}}
{{- $by := dict -}}
{{- range .kinds -}}
{{- if not (hasKey $by .group) -}}
{{- $groups = append $groups .group -}}
{{- $_ := set $by .group list -}}
{{- end -}}
{{- $_ := set $by .group (append (get $by .group) .resource) -}}
{{- end -}}
{{- range $groups }}
- apiGroups: [{{ . | quote }}]
  resources: [{{ join ", " (get $by .) }}]
  verbs: [{{ join ", " $.verbs }}]
{{- end -}}
{{- end -}}

{{/* The drift-auditor.yaml the pods read: values.config with the keys the chart owns. */}}
{{- define "drift-auditor.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $sources := get $cfg "sources" | default list -}}
{{- range $controller := list "argocd" "flux" -}}
{{- with (index $.Values.gitops $controller) -}}
{{- if .enabled -}}
{{- $entry := dict "from" $controller -}}
{{- if .namespaces -}}{{- $_ := set $entry "namespaces" .namespaces -}}{{- end -}}
{{- if .controllerCredentials -}}{{- $_ := set $entry "controller-credentials" true -}}{{- end -}}
{{- $sources = append $sources $entry -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "sources" $sources -}}
{{- $central := eq .Values.mode "central" -}}
{{- if $central -}}
{{- include "drift-auditor.checkCentral" . -}}
{{- end -}}
{{- $ledger := get $cfg "ledger" | default dict -}}
{{- $_ := set $ledger "path" "/var/lib/drift-auditor/ledger.db" -}}
{{- $url := "" -}}
{{- with .Values.ledger.store -}}
{{- if .url -}}
{{- if and (not .cluster) (not $central) -}}
{{- fail "ledger.store.cluster: name this cluster in the fleet store (lower case, digits and dashes)" -}}
{{- end -}}
{{- if and (not $central) (not $.Values.secrets.hashKey.name) -}}
{{- fail "secrets.hashKey: a cluster writing the fleet store hashes Secret values with a key kept in a Secret (every pod, every restart, and clusters compared with compare-clusters must share it): name it in secrets.hashKey.name" -}}
{{- end -}}
{{- $url = .url -}}
{{- if .caSecret.name -}}
{{- $url = printf "%s%ssslrootcert=/etc/drift-auditor/store/ca.crt" $url (ternary "&" "?" (contains "?" $url)) -}}
{{- end -}}
{{- if not $central -}}
{{- $_ := set $ledger "url" $url -}}
{{- $_ := set $ledger "cluster" .cluster -}}
{{- end -}}
{{- if .passwordSecret.name -}}
{{- $_ := set $ledger "password-file" "/etc/drift-auditor/store/password" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.secrets.signingKey.name -}}
{{- $_ := set $ledger "signing-key-file" "/etc/drift-auditor/keys/signing-key" -}}
{{- end -}}
{{- $_ := set $cfg "ledger" $ledger -}}
{{- if .Values.secrets.hashKey.name -}}
{{- $compare := get $cfg "compare" | default dict -}}
{{- $_ := set $compare "secret-hash-key-file" "/etc/drift-auditor/keys/hash-key" -}}
{{- $_ := set $cfg "compare" $compare -}}
{{- end -}}
{{- $reports := get $cfg "reports" | default dict -}}
{{- $_ := set $reports "directory" "/var/lib/drift-auditor/reports" -}}
{{- $_ := set $reports "schedule-minutes" (int .Values.audit.scheduleMinutes) -}}
{{- $_ := set $cfg "reports" $reports -}}
{{- $policies := get $cfg "policies" | default dict -}}
{{- if not (hasKey $policies "directory") -}}
{{- $_ := set $policies "directory" "/usr/share/drift-auditor/policies" -}}
{{- end -}}
{{- $_ := set $cfg "policies" $policies -}}
{{- $scope := get $cfg "scope" | default dict -}}
{{- $_ := set $scope "include-kinds" (include "drift-auditor.includeKinds" . | fromJsonArray) -}}
{{- $_ := set $cfg "scope" $scope -}}
{{- $serve := get $cfg "serve" | default dict -}}
{{- $_ := set $serve "host" "0.0.0.0" -}}
{{- $_ := set $serve "port" (int .Values.serve.port) -}}
{{- if .Values.serve.tokenSecret.name -}}
{{- $_ := set $serve "token-file" "/etc/drift-auditor/serve/token" -}}
{{- end -}}
{{- if $central -}}
{{/* The store URL alone: every cluster of the store, each a cluster of the fleet view
(serve's --ledger URL); the password comes from ledger.password-file. */}}
{{- $_ := set $serve "ledgers" (list $url) -}}
{{- end -}}
{{- $_ := set $cfg "serve" $serve -}}
{{- if .Values.secrets.slack.name -}}
{{- $slack := get $cfg "slack" | default dict -}}
{{- $_ := set $slack "token-env" "SLACK_BOT_TOKEN" -}}
{{- $_ := set $cfg "slack" $slack -}}
{{- end -}}
{{- if .Values.revert.enabled -}}
{{- $revert := get $cfg "revert" | default dict -}}
{{- $_ := set $revert "mode" .Values.revert.mode -}}
{{- $_ := set $revert "namespaces" .Values.revert.namespaces -}}
{{- $_ := set $cfg "revert" $revert -}}
{{- end -}}
{{- if and .Values.watch.enabled .Values.watch.webhook.enabled -}}
{{- $watch := get $cfg "watch" | default dict -}}
{{- $_ := set $watch "webhook-port" (int .Values.watch.webhook.port) -}}
{{- $_ := set $watch "webhook-token-file" "/etc/drift-auditor/webhook/token" -}}
{{- if .Values.watch.webhook.tlsSecret -}}
{{- $_ := set $watch "webhook-tls-cert-file" "/etc/drift-auditor/webhook-tls/tls.crt" -}}
{{- $_ := set $watch "webhook-tls-key-file" "/etc/drift-auditor/webhook-tls/tls.key" -}}
{{- end -}}
{{- $_ := set $cfg "watch" $watch -}}
{{- end -}}
{{- if and (eq .Values.runner "pod") (not $central) -}}
{{- $jobs := list (dict "name" "audit" "cron" .Values.audit.schedule "args" (include "drift-auditor.auditArgs" . | fromJsonArray) "deadline-seconds" (int .Values.audit.deadlineSeconds)) -}}
{{- if .Values.report.enabled -}}
{{- $jobs = append $jobs (dict "name" "report" "cron" .Values.report.schedule "args" (include "drift-auditor.reportArgs" . | fromJsonArray) "deadline-seconds" (int .Values.report.deadlineSeconds)) -}}
{{- end -}}
{{- $_ := set $cfg "schedule" (dict "time-zone" .Values.audit.timeZone "jobs" $jobs) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* mode: central is serve over the fleet store and nothing else: what it needs, and the
features it cannot have (they would need this cluster's API or a ledger of its own). */}}
{{- define "drift-auditor.checkCentral" -}}
{{- if not .Values.ledger.store.url -}}
{{- fail "mode: central serves every cluster of the fleet store: set ledger.store.url" -}}
{{- end -}}
{{- if not .Values.serve.enabled -}}
{{- fail "mode: central runs serve only: serve.enabled must be true" -}}
{{- end -}}
{{- if or .Values.watch.enabled .Values.revert.enabled -}}
{{- fail "mode: central runs serve only: set watch.enabled and revert.enabled to false" -}}
{{- end -}}
{{- end -}}

{{- define "drift-auditor.auditArgs" -}}
{{- $args := list "run" "--exit-zero-on-drift" -}}
{{- if .Values.audit.exitZeroOnPartial -}}{{- $args = append $args "--exit-zero-on-partial" -}}{{- end -}}
{{- toJson (concat $args .Values.audit.extraArgs) -}}
{{- end -}}

{{- define "drift-auditor.reportArgs" -}}
{{- toJson (list "report" "--period" .Values.report.period "--format" "all") -}}
{{- end -}}

{{/* Environment every container gets. */}}
{{- define "drift-auditor.baseEnv" -}}
- name: DRIFT_AUDITOR_CONFIG
  value: /etc/drift-auditor/drift-auditor.yaml
- name: HOME  # git writes its config and credential helper under $HOME
  value: /tmp
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- end -}}

{{/* Credentials of the containers that talk to Git and Slack: references, never values. */}}
{{- define "drift-auditor.credentialEnv" -}}
{{- if .Values.secrets.git.name }}
- name: GIT_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.git.name }}, key: {{ .Values.secrets.git.key }}}
{{- end }}
{{- if .Values.secrets.slack.name }}
- name: SLACK_BOT_TOKEN
  valueFrom:
    # Optional: without Slack the audit still runs (the outbox keeps the alerts).
    secretKeyRef: {name: {{ .Values.secrets.slack.name }}, key: {{ .Values.secrets.slack.key }}, optional: true}
{{- end }}
{{- end -}}

{{/* Mounts of the containers that write the ledger. */}}
{{- define "drift-auditor.writerMounts" -}}
- {name: config, mountPath: /etc/drift-auditor/drift-auditor.yaml, subPath: drift-auditor.yaml, readOnly: true}
# The ledger, its lock, keys created on first use, the reports and the Git clone cache.
- {name: ledger, mountPath: /var/lib/drift-auditor}
- {name: tmp, mountPath: /tmp}
{{- if or .Values.secrets.hashKey.name .Values.secrets.signingKey.name }}
- {name: keys, mountPath: /etc/drift-auditor/keys, readOnly: true}
{{- end }}
{{- include "drift-auditor.storeMount" . }}
{{- end -}}

{{/* The fleet store's password and CA (ledger.store), for every container that opens the
ledger: the writers and serve. */}}
{{- define "drift-auditor.storeMount" -}}
{{- if and .Values.ledger.store.url (or .Values.ledger.store.passwordSecret.name .Values.ledger.store.caSecret.name) }}
- {name: store, mountPath: /etc/drift-auditor/store, readOnly: true}
{{- end }}
{{- end -}}

{{- define "drift-auditor.storeVolume" -}}
{{- with .Values.ledger.store }}
{{- if and .url (or .passwordSecret.name .caSecret.name) }}
- name: store
  projected:
    defaultMode: 0440
    sources:
      {{- if .passwordSecret.name }}
      - secret: {name: {{ .passwordSecret.name }}, items: [{key: {{ .passwordSecret.key }}, path: password}]}
      {{- end }}
      {{- if .caSecret.name }}
      - secret: {name: {{ .caSecret.name }}, items: [{key: {{ .caSecret.key }}, path: ca.crt}]}
      {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes of the keys Secrets (hash and signing key), projected into one folder. */}}
{{- define "drift-auditor.keyVolume" -}}
{{- if or .Values.secrets.hashKey.name .Values.secrets.signingKey.name }}
- name: keys
  projected:
    defaultMode: 0440
    sources:
      {{- with .Values.secrets.hashKey }}{{ if .name }}
      - secret: {name: {{ .name }}, items: [{key: {{ .key }}, path: hash-key}]}
      {{- end }}{{ end }}
      {{- with .Values.secrets.signingKey }}{{ if .name }}
      - secret: {name: {{ .name }}, items: [{key: {{ .key }}, path: signing-key}]}
      {{- end }}{{ end }}
{{- end }}
{{- end -}}

{{/* The ServiceAccount token, CA and namespace kubelet would mount, for the containers that
talk to the API only (serve shares the pod but gets no token). */}}
{{- define "drift-auditor.apiMount" -}}
- {name: kube-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
{{- end -}}

{{- define "drift-auditor.apiVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3607}
      - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}
      - downwardAPI:
          items:
            - path: namespace
              fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}
{{- end -}}

{{- define "drift-auditor.serveContainer" -}}
- name: serve
  image: {{ include "drift-auditor.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [serve]
  env:
    {{- include "drift-auditor.baseEnv" . | nindent 4 }}
  ports:
    - {name: http, containerPort: {{ .Values.serve.port }}, protocol: TCP}
  # Ready once the ledger can be read (after the first run); alive while the port answers: a
  # liveness check on /healthz would restart serve forever before the first run.
  readinessProbe:
    httpGet: {path: /healthz, port: http}
    periodSeconds: 15
  livenessProbe:
    tcpSocket: {port: http}
    periodSeconds: 30
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.serve.resources | nindent 4 }}
  volumeMounts:
    - {name: config, mountPath: /etc/drift-auditor/drift-auditor.yaml, subPath: drift-auditor.yaml, readOnly: true}
    {{- if eq .Values.mode "central" }}
    # An emptyDir: the ledgers are in the store; the reports folder (/reports/) stays empty.
    {{- else }}
    # Read-write only for SQLite's WAL shared memory (ledger.db-shm): serve never writes the
    # ledger, but a WAL reader must map that file read-write.
    {{- end }}
    - {name: ledger, mountPath: /var/lib/drift-auditor}
    - {name: tmp, mountPath: /tmp}
    {{- if .Values.serve.tokenSecret.name }}
    - {name: serve-token, mountPath: /etc/drift-auditor/serve, readOnly: true}
    {{- end }}
    {{- with (include "drift-auditor.storeMount" . | trim) }}{{ . | nindent 4 }}{{- end }}
{{- end -}}

{{- define "drift-auditor.serveVolumes" -}}
{{- if .Values.serve.tokenSecret.name }}
- name: serve-token
  secret:
    secretName: {{ .Values.serve.tokenSecret.name }}
    defaultMode: 0440
    items: [{key: {{ .Values.serve.tokenSecret.key }}, path: token}]
{{- end }}
{{- end -}}

{{- define "drift-auditor.watchContainer" -}}
- name: watch
  image: {{ include "drift-auditor.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [watch]
  env:
    {{- include "drift-auditor.baseEnv" . | nindent 4 }}
    {{- with (include "drift-auditor.credentialEnv" . | trim) }}{{ . | nindent 4 }}{{- end }}
  {{- if .Values.watch.webhook.enabled }}
  ports:
    - {name: audit-webhook, containerPort: {{ .Values.watch.webhook.port }}, protocol: TCP}
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.watch.resources | nindent 4 }}
  volumeMounts:
    {{- include "drift-auditor.writerMounts" . | nindent 4 }}
    {{- include "drift-auditor.apiMount" . | nindent 4 }}
    {{- if .Values.watch.webhook.enabled }}
    - {name: webhook-token, mountPath: /etc/drift-auditor/webhook, readOnly: true}
    {{- if .Values.watch.webhook.tlsSecret }}
    - {name: webhook-tls, mountPath: /etc/drift-auditor/webhook-tls, readOnly: true}
    {{- end }}
    {{- end }}
{{- end -}}

{{- define "drift-auditor.watchVolumes" -}}
{{- if .Values.watch.webhook.enabled }}
- name: webhook-token
  secret:
    secretName: {{ .Values.watch.webhook.tokenSecret.name }}
    defaultMode: 0440
    items: [{key: {{ .Values.watch.webhook.tokenSecret.key }}, path: token}]
{{- if .Values.watch.webhook.tlsSecret }}
- name: webhook-tls
  secret: {secretName: {{ .Values.watch.webhook.tlsSecret }}, defaultMode: 0440}
{{- end }}
{{- end }}
{{- end -}}

{{- define "drift-auditor.commonVolumes" -}}
- name: config
  configMap: {name: {{ include "drift-auditor.fullname" . }}-config}
{{- if eq .Values.mode "central" }}
- name: ledger
  emptyDir: {sizeLimit: 64Mi}
{{- else }}
- name: ledger
  persistentVolumeClaim: {claimName: {{ .Values.ledger.persistence.existingClaim | default (printf "%s-ledger" (include "drift-auditor.fullname" .)) }}}
{{- end }}
- name: tmp
  emptyDir: {sizeLimit: 1Gi}
{{- if ne .Values.mode "central" }}
{{- with (include "drift-auditor.keyVolume" . | trim) }}
{{ . }}
{{- end }}
{{- end }}
{{- with (include "drift-auditor.storeVolume" . | trim) }}
{{ . }}
{{- end }}
{{- end -}}

{{- define "drift-auditor.podExtras" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
