{{/* The chart name, shortened to fit a label value. */}}
{{- define "image-swapper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: also the webhook configurations' name the server
keeps current (--webhook-config) and its Service (--service).
*/}}
{{- define "image-swapper.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "image-swapper.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "image-swapper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "image-swapper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "image-swapper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "image-swapper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "image-swapper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the serving certificate, in every TLS mode. */}}
{{- define "image-swapper.tlsSecret" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- required "tls.secretName is required with tls.mode=secret" .Values.tls.secretName }}
{{- else }}
{{- printf "%s-tls" (include "image-swapper.fullname" .) }}
{{- end }}
{{- end }}

{{- define "image-swapper.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Fails the render for a tls.mode that is not one of the three. */}}
{{- define "image-swapper.validate" -}}
{{- if not (has .Values.tls.mode (list "selfSigned" "certManager" "secret")) }}
{{- fail (printf "tls.mode: %q is not one of selfSigned, certManager, secret" .Values.tls.mode) }}
{{- end }}
{{- if and (eq .Values.tls.mode "secret") (not .Values.tls.secretName) }}
{{- fail "tls.secretName is required with tls.mode=secret: the kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and (eq .Values.tls.mode "secret") (not .Values.tls.caBundle) }}
{{- fail "tls.caBundle is required with tls.mode=secret: base64 of the PEM CA that signed the certificate in tls.secretName" }}
{{- end }}
{{- end }}

{{/*
The webhooks' clientConfig and selectors, shared by both configurations.
In selfSigned mode there is no caBundle: the server sets it, and a value
here would be reverted by every helm upgrade.
*/}}
{{- define "image-swapper.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "image-swapper.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: {{ .root.Values.service.port }}
  {{- if eq .root.Values.tls.mode "secret" }}
  caBundle: {{ .root.Values.tls.caBundle }}
  {{- end }}
{{- end }}

{{- define "image-swapper.webhookCommon" -}}
rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [pods, pods/ephemeralcontainers]
    scope: Namespaced
matchPolicy: Equivalent
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- toYaml (prepend .Values.webhook.excludedNamespaces .Release.Namespace | uniq) | nindent 8 }}
admissionReviewVersions: [v1]
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
{{- end }}

{{- define "image-swapper.webhookAnnotations" -}}
{{- if eq .Values.tls.mode "certManager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "image-swapper.fullname" .) }}
{{- end }}
{{- end }}
