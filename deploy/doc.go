// Package deploy holds the deployment files of cartograph (the OpenTelemetry
// Collector, Prometheus and Grafana configuration used by the top-level
// docker-compose.yaml) and, in its tests, the checks CI runs on them where
// no Docker engine is available: the compose file loaded with compose-go
// (deploy/composetest: the Compose specification's schema, interpolation,
// normalisation), its services, images or builds, ports, volumes, health
// checks and start-up order, the configurations that refer to its
// services, and the stack's cartograph services run as processes. The
// flags each service passes are checked against the binaries' own flag
// sets by the tests of cmd/collector, cmd/ui and cmd/loadgen. It has no Go
// API.
package deploy
