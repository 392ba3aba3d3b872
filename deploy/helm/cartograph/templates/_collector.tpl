{{/* collectorArgs: the collector's command line. Takes a dict: root (the
chart's context) and detect (local, merged or off). */}}
{{- define "cartograph.collectorArgs" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $p := include "cartograph.paths" $ | fromJson -}}
{{- $judge := ne .detect "off" -}}
- "--otlp-grpc-addr=:{{ $v.collector.ports.otlpGrpc }}"
- "--otlp-http-addr=:{{ $v.collector.ports.otlpHttp }}"
- "--api-addr=:{{ $v.collector.ports.api }}"
- "--ui-addr="
- "--data-dir=/data"
- "--detect={{ .detect }}"
{{- if eq .detect "merged" }}
- "--serve-merged=true"
{{- end }}
- "--retention={{ $v.collector.retention }}"
- "--log-level={{ $v.collector.logLevel }}"
{{- if $v.clickhouse.enabled }}
- "--storage=clickhouse"
- "--collector-id=$(POD_NAME)"
{{- else }}
- "--storage=embedded"
{{- if $v.persistence.enabled }}
- "--max-storage-bytes={{ mulf (include "cartograph.bytes" $v.persistence.size | float64) $v.persistence.maxStorageRatio | int64 }}"
{{- end }}
{{- end }}
{{- $ml := toString $v.collector.memoryLimit }}
{{- if eq $ml "auto" }}
{{- $lim := dig "limits" "memory" "" $v.collector.resources }}
{{- if not $lim }}
{{- fail "collector.memoryLimit=auto needs collector.resources.limits.memory (the soft limit is 80% of it); or give collector.memoryLimit in bytes" }}
{{- end }}
- "--memory-limit={{ div (mul (include "cartograph.bytes" $lim | int64) 4) 5 }}"
{{- else if ne $ml "0" }}
- "--memory-limit={{ include "cartograph.bytes" $v.collector.memoryLimit }}"
{{- end }}
{{- if $v.auth.ingestTokens.existingSecret }}
- "--ingest-tokens-file={{ $p.ingestTokens }}/tokens"
{{- end }}
{{- if $v.auth.apiTokens.existingSecret }}
- "--api-tokens-file={{ $p.apiTokens }}/tokens"
{{- end }}
{{- if $v.auth.openMetrics }}
- "--open-metrics=true"
{{- end }}
{{- if $v.tls.enabled }}
- "--tls-cert-file={{ $p.tls }}/tls.crt"
- "--tls-key-file={{ $p.tls }}/tls.key"
{{- if $v.tls.clientCASecretName }}
- "--tls-client-ca-file={{ $p.clientCA }}/ca.crt"
{{- end }}
{{- end }}
{{- $owned := include "cartograph.ownedFlags" $ | fromJsonArray }}
{{- include "cartograph.flags" (dict "flags" $v.collector.extraFlags "owned" $owned "where" "collector.extraFlags") }}
{{- if $judge }}
{{- range $name := keys $v.collector.judgeFlags }}
{{- if hasKey $v.collector.extraFlags $name }}
{{- fail (printf "--%s is in both collector.extraFlags and collector.judgeFlags" $name) }}
{{- end }}
{{- end }}
{{- include "cartograph.flags" (dict "flags" $v.collector.judgeFlags "owned" $owned "where" "collector.judgeFlags") }}
{{- end }}
{{- end -}}

{{/* collectorPod: the pod template of a collector. Takes a dict: root,
detect (local, merged or off). */}}
{{- define "cartograph.collectorPod" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $p := include "cartograph.paths" $ | fromJson -}}
{{- $judge := ne .detect "off" -}}
{{- $scheme := ternary "HTTPS" "HTTP" $v.tls.enabled -}}
metadata:
  labels:
    {{- include "cartograph.labels" $ | nindent 4 }}
    app.kubernetes.io/component: collector
    cartograph/detect: {{ .detect | quote }}
  {{- with $v.collector.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  automountServiceAccountToken: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.collector.terminationGracePeriodSeconds }}
  containers:
    - name: collector
      image: {{ include "cartograph.image" $ | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        {{- include "cartograph.collectorArgs" (dict "root" $ "detect" .detect) | nindent 8 }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- with include "cartograph.clickhouseEnv" $ }}
        {{- . | trim | nindent 8 }}
        {{- end }}
        {{- if $judge }}
        {{- with $v.collector.judgeEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- end }}
      ports:
        - name: otlp-grpc
          containerPort: {{ $v.collector.ports.otlpGrpc }}
          protocol: TCP
        - name: otlp-http
          containerPort: {{ $v.collector.ports.otlpHttp }}
          protocol: TCP
        - name: http-api
          containerPort: {{ $v.collector.ports.api }}
          protocol: TCP
      {{- if $v.tls.clientCASecretName }}
      # Mutual TLS: the kubelet presents no client certificate, so the
      # probes check that the API port accepts connections.
      startupProbe:
        tcpSocket:
          port: http-api
        periodSeconds: 2
        failureThreshold: 60
      livenessProbe:
        tcpSocket:
          port: http-api
        periodSeconds: 10
        failureThreshold: 6
      readinessProbe:
        tcpSocket:
          port: http-api
        periodSeconds: 5
        failureThreshold: 3
      {{- else }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http-api
          scheme: {{ $scheme }}
        periodSeconds: 2
        failureThreshold: 60
      livenessProbe:
        httpGet:
          path: /healthz
          port: http-api
          scheme: {{ $scheme }}
        periodSeconds: 10
        failureThreshold: 6
      # 503 while storage is down and its buffer is full: the collector
      # then refuses OTLP, so it leaves the Services until it catches up.
      readinessProbe:
        httpGet:
          path: /readyz
          port: http-api
          scheme: {{ $scheme }}
        periodSeconds: 5
        failureThreshold: 3
      {{- end }}
      resources:
        {{- toYaml $v.collector.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
        {{- if $v.auth.ingestTokens.existingSecret }}
        - name: ingest-tokens
          mountPath: {{ $p.ingestTokens }}
          readOnly: true
        {{- end }}
        {{- if $v.auth.apiTokens.existingSecret }}
        - name: api-tokens
          mountPath: {{ $p.apiTokens }}
          readOnly: true
        {{- end }}
        {{- if $v.tls.enabled }}
        - name: tls
          mountPath: {{ $p.tls }}
          readOnly: true
        {{- if $v.tls.clientCASecretName }}
        - name: client-ca
          mountPath: {{ $p.clientCA }}
          readOnly: true
        {{- end }}
        {{- end }}
  volumes:
    - name: data
      {{- if and $v.persistence.enabled (not $v.clickhouse.enabled) }}
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-data" (include "cartograph.fullname" $)) $v.persistence.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: tmp
      emptyDir: {}
    {{- if $v.auth.ingestTokens.existingSecret }}
    - name: ingest-tokens
      secret:
        secretName: {{ $v.auth.ingestTokens.existingSecret }}
        items:
          - key: {{ $v.auth.ingestTokens.key }}
            path: tokens
    {{- end }}
    {{- if $v.auth.apiTokens.existingSecret }}
    - name: api-tokens
      secret:
        secretName: {{ $v.auth.apiTokens.existingSecret }}
        items:
          - key: {{ $v.auth.apiTokens.key }}
            path: tokens
    {{- end }}
    {{- if $v.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ $v.tls.secretName }}
        items:
          - key: tls.crt
            path: tls.crt
          - key: tls.key
            path: tls.key
    {{- if $v.tls.clientCASecretName }}
    - name: client-ca
      secret:
        secretName: {{ $v.tls.clientCASecretName }}
        items:
          - key: {{ $v.tls.clientCAKey }}
            path: ca.crt
    {{- end }}
    {{- end }}
  {{- with $v.collector.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.collector.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.collector.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* clickhouseEnv: CARTOGRAPH_CLICKHOUSE_DSN, with the password from its
Secret expanded by the kubelet (never on the command line). */}}
{{- define "cartograph.clickhouseEnv" -}}
{{- $ch := .Values.clickhouse -}}
{{- if $ch.enabled -}}
{{- if $ch.dsnKey }}
- name: CARTOGRAPH_CLICKHOUSE_DSN
  valueFrom:
    secretKeyRef:
      name: {{ $ch.existingSecret }}
      key: {{ $ch.dsnKey }}
{{- else if $ch.existingSecret }}
- name: CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $ch.existingSecret }}
      key: {{ $ch.passwordKey }}
- name: CARTOGRAPH_CLICKHOUSE_DSN
  value: {{ regexReplaceAll "^clickhouse://([^/@:]+)@" $ch.dsn "clickhouse://${1}:$$(CLICKHOUSE_PASSWORD)@" | quote }}
{{- else }}
- name: CARTOGRAPH_CLICKHOUSE_DSN
  value: {{ $ch.dsn | quote }}
{{- end }}
{{- end -}}
{{- end -}}
