// Package dashboards holds cartograph's Grafana dashboards (JSON, over the
// ClickHouse tables, for the grafana-clickhouse-datasource plugin) and its
// Prometheus alerting rules. Its tests check that every dashboard parses,
// that every panel uses the ClickHouse data source, and that every query
// runs against a real ClickHouse with cartograph's schema and returns the
// numbers the stored rows imply.
package dashboards
