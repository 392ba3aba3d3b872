// Package deploy holds the deployment files of cartograph (the OpenTelemetry
// Collector, Prometheus and Grafana configuration used by the top-level
// docker-compose.yaml) and, in its tests, the checks CI runs on them where
// no Docker engine is available: the compose file's services, images,
// ports, volumes, health checks and start-up order, and that every flag it
// passes to a cartograph binary exists. It has no Go API.
package deploy
