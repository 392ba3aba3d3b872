package corpus_test

import "fmt"

// Shapes of opentelemetry-python-contrib instrumentations at their default
// settings (old HTTP and DB semconv; OTEL_SEMCONV_STABILITY_OPT_IN unset):
//   - Flask (through the WSGI middleware): instrumentation/opentelemetry-
//     instrumentation-flask/tests/test_programmatic.py expected attributes
//     (http.method, http.server_name, http.scheme, net.host.port, http.host,
//     http.target, http.flavor, http.status_code, http.route, net.peer.ip,
//     net.peer.port, http.user_agent);
//   - requests: .../instrumentation-requests/tests/test_requests_integration.py
//     (span "GET"; http.method, http.url, http.status_code);
//   - psycopg2 through dbapi: .../instrumentation-dbapi/tests (span named by
//     the statement's first word; db.system, db.name, db.statement, db.user,
//     net.peer.name, net.peer.port);
//   - redis-py: .../instrumentation-redis/tests/test_redis.py (span named by
//     the command; db.system, db.statement, db.redis.args_length,
//     db.redis.database_index, net.peer.name, net.peer.port, net.transport);
//   - pika: .../instrumentation-pika/src/.../utils.py: the publish is a
//     PRODUCER span "<exchange or routing key> send" whose
//     messaging.destination is "(temporary)" with messaging.temp_destination
//     true (task_name "(temporary)" is what _enrich_span writes), the
//     consumer callback a CONSUMER span "<exchange or routing key> receive"
//     whose messaging.destination is the queue it consumes;
//   - kafka-python: .../instrumentation-kafka-python/src/.../utils.py
//     ("<topic> send" PRODUCER, "<topic> receive" CONSUMER child of it; both
//     messaging.system, messaging.destination (the pre-1.17 name),
//     messaging.kafka.partition, messaging.url; no consumer group).

func pythonResource(instance string) attrs {
	return attrs{
		"service.instance.id":    instance,
		"telemetry.sdk.language": "python",
		"telemetry.sdk.name":     "opentelemetry",
		"telemetry.sdk.version":  "1.33.1",
		"telemetry.auto.version": "0.54b1",
		"process.runtime.name":   "cpython",
	}
}

// flaskServer returns the WSGI SERVER span attributes of a Flask route.
func flaskServer(method, host string, port int, target, route string, status int) attrs {
	return attrs{
		"http.method":      method,
		"http.server_name": host,
		"http.scheme":      "http",
		"net.host.port":    port,
		"http.host":        fmt.Sprintf("%s:%d", host, port),
		"http.target":      target,
		"http.flavor":      "1.1",
		"http.status_code": status,
		"http.route":       route,
		"net.peer.ip":      "10.2.0.5",
		"net.peer.port":    48122,
		"http.user_agent":  "python-requests/2.32.3",
	}
}

var _ = register(
	// web (Flask) calls api (Flask) with requests; api reads PostgreSQL
	// (psycopg2) and Redis (redis-py), publishes a job on RabbitMQ's default
	// exchange to the queue email-jobs (pika), read by worker, and an event
	// to the Kafka topic quotes (kafka-python), read by indexer.
	&fixture{
		name:  "python",
		scope: "opentelemetry.instrumentation.flask",
		resource: map[string]attrs{
			"web":     pythonResource("web-1"),
			"api":     pythonResource("api-1"),
			"worker":  pythonResource("worker-1"),
			"indexer": pythonResource("indexer-1"),
		},
		requests: [][]fspan{
			{
				{svc: "worker", trace: "t1", id: "w-recv", parent: "a-pika", kind: consumer, name: "email-jobs receive", at: 40, ms: 12, scope: "opentelemetry.instrumentation.pika",
					a: attrs{"messaging.system": "rabbitmq", "messaging.operation": "receive", "messaging.destination": "email-jobs",
						"net.peer.name": "rabbitmq", "net.peer.port": 5672}},
				{svc: "indexer", trace: "t1", id: "i-recv", parent: "a-kafka", kind: consumer, name: "quotes receive", at: 45, ms: 3, scope: "opentelemetry.instrumentation.kafka",
					a: attrs{"messaging.system": "kafka", "messaging.destination": "quotes", "messaging.kafka.partition": 0,
						"messaging.url": `["kafka:9092"]`}},
			},
			{
				{svc: "api", trace: "t1", id: "a-pg", parent: "a-srv", kind: client, name: "SELECT", at: 12, ms: 5, scope: "opentelemetry.instrumentation.psycopg2",
					a: attrs{"db.system": "postgresql", "db.name": "shop", "db.statement": "SELECT price FROM quotes WHERE id = %s",
						"db.user": "app", "net.peer.name": "postgres", "net.peer.port": 5432}},
				{svc: "api", trace: "t1", id: "a-redis", parent: "a-srv", kind: client, name: "GET", at: 18, ms: 1, scope: "opentelemetry.instrumentation.redis",
					a: attrs{"db.system": "redis", "db.statement": "GET ?", "db.redis.args_length": 2, "db.redis.database_index": 0,
						"net.peer.name": "redis", "net.peer.port": 6379, "net.transport": "ip_tcp"}},
				{svc: "api", trace: "t1", id: "a-pika", parent: "a-srv", kind: producer, name: "email-jobs send", at: 20, ms: 2, scope: "opentelemetry.instrumentation.pika",
					a: attrs{"messaging.system": "rabbitmq", "messaging.temp_destination": true, "messaging.destination": "(temporary)",
						"net.peer.name": "rabbitmq", "net.peer.port": 5672}},
				{svc: "api", trace: "t1", id: "a-kafka", parent: "a-srv", kind: producer, name: "quotes send", at: 23, ms: 2, scope: "opentelemetry.instrumentation.kafka",
					a: attrs{"messaging.system": "kafka", "messaging.destination": "quotes", "messaging.kafka.partition": 0,
						"messaging.url": `["kafka:9092"]`}},
				{svc: "api", trace: "t1", id: "a-srv", parent: "w-cli", kind: server, name: "GET /quote/<int:quote_id>", at: 10, ms: 20,
					a: flaskServer("GET", "api", 8000, "/quote/7", "/quote/<int:quote_id>", 200)},
			},
			{
				{svc: "web", trace: "t1", id: "w-cli", parent: "w-srv", kind: client, name: "GET", at: 8, ms: 24, scope: "opentelemetry.instrumentation.requests",
					a: attrs{"http.method": "GET", "http.url": "http://api:8000/quote/7", "http.status_code": 200}},
				{svc: "web", trace: "t1", id: "w-srv", kind: server, name: "GET /checkout", at: 0, ms: 35,
					a: flaskServer("GET", "web", 5000, "/checkout", "/checkout", 200)},
			},
		},
	},
)
