{{/* Names. */}}
{{- define "cartograph.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cartograph.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The headless Service of every collector (StatefulSets' serviceName,
the load balancer's resolver, the ServiceMonitor). */}}
{{- define "cartograph.collectorsService" -}}{{ include "cartograph.fullname" . }}-collector{{- end -}}

{{/* A Service's name inside the cluster: name.namespace.svc.domain. */}}
{{- define "cartograph.fqdn" -}}
{{- printf "%s.%s.svc.%s" .name .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "cartograph.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels. */}}
{{- define "cartograph.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cartograph.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "cartograph.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cartograph.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cartograph
{{- end -}}

{{/* scaledOut is "true" when several collectors run behind the load
balancer. */}}
{{- define "cartograph.scaledOut" -}}
{{- if gt (int .Values.collector.replicas) 1 }}true{{ end -}}
{{- end -}}

{{/* bytes turns a Kubernetes quantity of bytes (2Gi, 1500M, 1073741824)
into a number of bytes. */}}
{{- define "cartograph.bytes" -}}
{{- $q := . -}}
{{- if kindIs "float64" $q }}{{ $q = printf "%.0f" $q }}{{ end -}}
{{- $q = toString $q -}}
{{- $num := regexFind "^[0-9]+" $q -}}
{{- $suffix := trimPrefix $num $q -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- if or (not $num) (not (hasKey $units $suffix)) -}}
{{- fail (printf "%q is not a quantity of bytes the chart understands (a whole number with an optional Ki, Mi, Gi, Ti, k, M, G or T)" $q) -}}
{{- end -}}
{{- mul (int64 $num) (get $units $suffix) -}}
{{- end -}}

{{/* flags renders a map of flags as sorted --name=value args, refusing the
names the chart sets itself. */}}
{{- define "cartograph.flags" -}}
{{- $owned := .owned -}}
{{- range $name := keys .flags | sortAlpha }}
{{- if has $name $owned }}
{{- fail (printf "%s: --%s is set by the chart (from its own values); remove it from there" $.where $name) }}
{{- end }}
{{- $v := get $.flags $name }}
{{- if and (kindIs "float64" $v) (eq $v (float64 (int64 $v))) }}{{ $v = int64 $v }}{{ end }}
- {{ printf "--%s=%v" $name $v | quote }}
{{- end }}
{{- end -}}

{{/* The flags every collector gets from the chart's values; extraFlags
may not repeat them. */}}
{{- define "cartograph.ownedFlags" -}}
{{- list "otlp-grpc-addr" "otlp-http-addr" "api-addr" "ui-addr" "data-dir" "storage" "clickhouse-dsn" "detect" "serve-merged" "collector-id" "retention" "memory-limit" "log-level" "max-storage-bytes" "ingest-tokens-file" "api-tokens-file" "open-metrics" "tls-cert-file" "tls-key-file" "tls-client-ca-file" "config" | toJson -}}
{{- end -}}

{{/* Mount paths of the Secrets the chart mounts. */}}
{{- define "cartograph.paths" -}}
{{- dict "ingestTokens" "/etc/cartograph/ingest-tokens" "apiTokens" "/etc/cartograph/api-tokens" "tls" "/etc/cartograph/tls" "ca" "/etc/cartograph/ca" "clientCA" "/etc/cartograph/client-ca" "clientCert" "/etc/cartograph/client-cert" "uiTLS" "/etc/cartograph/ui-tls" | toJson -}}
{{- end -}}

{{/* The CA Secret the chart's clients verify the collectors with. */}}
{{- define "cartograph.caSecret" -}}
{{- default .Values.tls.secretName .Values.tls.caSecretName -}}
{{- end -}}

{{/* validate fails rendering, with the reason, on values that cannot
work together. Every template includes it. */}}
{{- define "cartograph.validate" -}}
{{- $v := .Values -}}
{{- if lt (int $v.collector.replicas) 1 -}}
{{- fail "collector.replicas must be at least 1" -}}
{{- end -}}
{{- if and (include "cartograph.scaledOut" .) (not $v.clickhouse.enabled) -}}
{{- fail (printf "collector.replicas=%v needs ClickHouse (clickhouse.enabled=true and clickhouse.dsn): several collectors share their graph through it, and one of them at a time judges the merged graph (the judge's lease) (docs/kubernetes.md, Scaling out)" $v.collector.replicas) -}}
{{- end -}}
{{- if and (include "cartograph.scaledOut" .) $v.persistence.enabled -}}
{{- fail "persistence is for the embedded store of one collector: with collector.replicas > 1 history lives in ClickHouse; set persistence.enabled=false" -}}
{{- end -}}
{{- if and $v.clickhouse.enabled $v.persistence.enabled -}}
{{- fail "persistence is for the embedded store: with clickhouse.enabled the collector keeps no history on disk; set persistence.enabled=false" -}}
{{- end -}}
{{- if $v.clickhouse.enabled -}}
{{- if $v.clickhouse.dsnKey -}}
{{- if not $v.clickhouse.existingSecret -}}
{{- fail "clickhouse.dsnKey names a key of clickhouse.existingSecret, which is empty" -}}
{{- end -}}
{{- else -}}
{{- if not (regexMatch "^clickhouse://" $v.clickhouse.dsn) -}}
{{- fail (printf "clickhouse.enabled needs clickhouse.dsn (clickhouse://user@host:9000/database), got %q" $v.clickhouse.dsn) -}}
{{- end -}}
{{- if regexMatch "^clickhouse://[^/@]*:[^/@]*@" $v.clickhouse.dsn -}}
{{- fail "clickhouse.dsn must not hold the password: put it in clickhouse.existingSecret (key clickhouse.passwordKey)" -}}
{{- end -}}
{{- if and $v.clickhouse.existingSecret (not (regexMatch "^clickhouse://[^/@:]+@" $v.clickhouse.dsn)) -}}
{{- fail "clickhouse.existingSecret holds the password of the user in clickhouse.dsn, which names none: clickhouse://user@host:9000/database" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $v.tls.enabled -}}
{{- if not $v.tls.secretName -}}
{{- fail "tls.enabled needs tls.secretName: a kubernetes.io/tls Secret with the collectors' certificate" -}}
{{- end -}}
{{- if $v.tls.clientCASecretName -}}
{{- if and (or $v.ui.enabled (include "cartograph.scaledOut" .) $v.serviceMonitor.enabled) (not $v.tls.clientCertSecretName) -}}
{{- fail "tls.clientCASecretName (mutual TLS) needs tls.clientCertSecretName: the certificate the UI, the load balancer and Prometheus present to the collectors" -}}
{{- end -}}
{{- end -}}
{{- else if or $v.tls.clientCASecretName $v.tls.clientCertSecretName $v.tls.caSecretName -}}
{{- fail "tls.clientCASecretName, tls.clientCertSecretName and tls.caSecretName need tls.enabled=true" -}}
{{- end -}}
{{- if and $v.ui.enabled $v.auth.apiTokens.existingSecret (not $v.ui.collectorToken.existingSecret) -}}
{{- fail "auth.apiTokens makes the API ask for a token: give the UI one with ui.collectorToken.existingSecret (a Secret key holding a viewer token's secret)" -}}
{{- end -}}
{{- if and $v.serviceMonitor.enabled $v.auth.apiTokens.existingSecret (not $v.auth.openMetrics) (not $v.serviceMonitor.authorization.existingSecret) -}}
{{- fail "serviceMonitor with auth.apiTokens: /metrics asks for a token; set auth.openMetrics=true or serviceMonitor.authorization.existingSecret" -}}
{{- end -}}
{{- end -}}
