package corpus_test

import "fmt"

// Shapes of the OpenTelemetry JavaScript instrumentations (opentelemetry-js
// and opentelemetry-js-contrib, defaults: old HTTP semconv) and of the .NET
// instrumentations (opentelemetry-dotnet / -contrib, stable HTTP semconv).
//
// Node.js:
//   - @opentelemetry/instrumentation-http: test/utils/assertSpan.ts (client:
//     http.url, http.method, http.target, net.peer.name, net.peer.port,
//     http.host, http.flavor, http.status_code, http.status_text,
//     net.peer.ip, net.transport; server: the same plus http.scheme,
//     http.user_agent, net.host.name/ip/port, and http.route from express);
//   - @opentelemetry/instrumentation-pg: span "pg.query:<OP> <db>" with
//     db.system, db.name, db.connection_string, db.user, db.statement,
//     net.peer.name, net.peer.port;
//   - @opentelemetry/instrumentation-ioredis: span named by the command,
//     db.system, db.statement, db.connection_string, net.peer.name/port;
//   - @opentelemetry/instrumentation-amqplib: src/amqplib.ts: PRODUCER
//     "publish <exchange or <default>>" and CONSUMER "<queue> process" (child
//     of the publish), both with messaging.destination = the exchange (""
//     for the default exchange), messaging.destination_kind = "topic",
//     messaging.rabbitmq.routing_key, and the connection's messaging.system,
//     messaging.protocol, messaging.protocol_version, messaging.url,
//     net.peer.name, net.peer.port;
//   - @opentelemetry/instrumentation-kafkajs: src/instrumentation.ts:
//     PRODUCER "send <topic>" (messaging.system, messaging.destination.name,
//     messaging.destination.partition.id, messaging.kafka.message.key,
//     messaging.operation.type send, messaging.operation.name send); eachMessage:
//     CONSUMER "process <topic>" child of the producer; eachBatch: a root
//     CLIENT "poll <topic>" (operation type receive, messaging.batch.message_count)
//     and under it a CONSUMER "process <topic>" per message linked to its
//     producer. No consumer-group attribute on any span.
//
// .NET:
//   - OpenTelemetry.Instrumentation.AspNetCore (server: http.request.method,
//     url.scheme, url.path, http.route, http.response.status_code,
//     server.address, server.port, network.protocol.version,
//     user_agent.original; gRPC services add rpc.system, rpc.service,
//     rpc.method, rpc.grpc.status_code to the same span);
//   - OpenTelemetry.Instrumentation.Http (client "GET": http.request.method,
//     url.full, server.address, server.port, network.protocol.version,
//     http.response.status_code; a Grpc.Net.Client call is the same
//     HttpClient span named "<service>/<method>" carrying rpc.system=grpc,
//     rpc.service, rpc.method, rpc.grpc.status_code);
//   - OpenTelemetry.Instrumentation.SqlClient 1.9 (span named by the
//     database; db.system=mssql, db.name, server.address, db.statement);
//   - OpenTelemetry.Instrumentation.StackExchangeRedis (span named by the
//     command; db.system=redis, db.redis.flags, db.statement,
//     db.redis.database_index, server.address, server.port);
//   - RabbitMQ.Client 7's own ActivitySources (RabbitMQActivitySource.cs,
//     RabbitMQTracingOptions defaults UseRoutingKeyAsOperationName and
//     UsePublisherAsParent): PRODUCER "publish <routing key>" and CONSUMER
//     "deliver <routing key>" (parented to the publish and linked to it),
//     messaging.destination.name = the exchange or "amq.default",
//     messaging.rabbitmq.destination.routing_key, messaging.operation.type
//     send / process, messaging.operation.name publish / deliver,
//     network.protocol.name amqp, server.address, server.port.

func nodeResource(instance string) attrs {
	return attrs{
		"service.instance.id":     instance,
		"telemetry.sdk.language":  "nodejs",
		"telemetry.sdk.name":      "opentelemetry",
		"telemetry.sdk.version":   "1.30.1",
		"process.runtime.name":    "nodejs",
		"process.runtime.version": "22.14.0",
	}
}

func nodeServer(host string, port int, target, route string, status int) attrs {
	return attrs{
		"http.url":         fmt.Sprintf("http://%s:%d%s", host, port, target),
		"http.host":        fmt.Sprintf("%s:%d", host, port),
		"net.host.name":    host,
		"http.method":      "GET",
		"http.scheme":      "http",
		"http.target":      target,
		"http.user_agent":  "node",
		"http.flavor":      "1.1",
		"net.transport":    "ip_tcp",
		"net.host.ip":      "10.3.0.4",
		"net.host.port":    port,
		"net.peer.ip":      "10.3.0.9",
		"net.peer.port":    39120,
		"http.status_code": status,
		"http.status_text": "OK",
		"http.route":       route,
	}
}

func nodeClient(host string, port int, target string, status int) attrs {
	return attrs{
		"http.url":         fmt.Sprintf("http://%s:%d%s", host, port, target),
		"http.method":      "GET",
		"http.target":      target,
		"net.peer.name":    host,
		"net.peer.port":    port,
		"http.host":        fmt.Sprintf("%s:%d", host, port),
		"http.flavor":      "1.1",
		"http.status_code": status,
		"http.status_text": "OK",
		"net.peer.ip":      "10.3.0.4",
		"net.transport":    "ip_tcp",
	}
}

// amqplibConn is what instrumentation-amqplib copies from the connection
// onto every span.
func amqplibConn(a attrs) attrs {
	a["messaging.system"] = "rabbitmq"
	a["messaging.protocol"] = "AMQP"
	a["messaging.protocol_version"] = "0.9.1"
	a["messaging.url"] = "amqp://rabbitmq:5672"
	a["net.peer.name"] = "rabbitmq"
	a["net.peer.port"] = 5672
	return a
}

func dotnetResource(instance string) attrs {
	return attrs{
		"service.instance.id":    instance,
		"telemetry.sdk.language": "dotnet",
		"telemetry.sdk.name":     "opentelemetry",
		"telemetry.sdk.version":  "1.11.2",
	}
}

// dotnetRabbit returns the tags RabbitMQ.Client 7 puts on a publish or
// delivery activity (deliveryTag 0: not set, as on a publish).
func dotnetRabbit(opType, opName, destination, routingKey string, deliveryTag int) attrs {
	a := attrs{
		"messaging.system":                           "rabbitmq",
		"network.protocol.name":                      "amqp",
		"network.protocol.version":                   "0.9.1",
		"messaging.operation.type":                   opType,
		"messaging.operation.name":                   opName,
		"messaging.destination.name":                 destination,
		"messaging.rabbitmq.destination.routing_key": routingKey,
		"messaging.message.body.size":                128,
		"server.address":                             "rabbitmq",
		"server.port":                                5672,
	}
	if deliveryTag > 0 {
		a["messaging.rabbitmq.delivery_tag"] = deliveryTag
	}
	return a
}

var _ = register(
	// gateway (express) calls orders (express); orders queries PostgreSQL
	// (pg) and Redis (ioredis), publishes to the exchange "orders" with
	// routing key order.created (read by shipping from its queue
	// shipping-orders) and to the default exchange for the queue audit-log
	// (read by auditor), and sends order-events to Kafka (kafkajs), read by
	// notifier (eachMessage) and warehouse (eachBatch).
	&fixture{
		name:  "node",
		scope: "@opentelemetry/instrumentation-http",
		resource: map[string]attrs{
			"gateway":   nodeResource("gateway-1"),
			"orders":    nodeResource("orders-1"),
			"shipping":  nodeResource("shipping-1"),
			"auditor":   nodeResource("auditor-1"),
			"notifier":  nodeResource("notifier-1"),
			"warehouse": nodeResource("warehouse-1"),
		},
		requests: [][]fspan{
			{
				{svc: "shipping", trace: "t1", id: "s-proc", parent: "o-pub1", kind: consumer, name: "shipping-orders process", at: 30, ms: 4, scope: "@opentelemetry/instrumentation-amqplib",
					a: amqplibConn(attrs{"messaging.destination": "orders", "messaging.destination_kind": "topic",
						"messaging.rabbitmq.routing_key": "order.created", "messaging.operation": "process"})},
				{svc: "auditor", trace: "t1", id: "au-proc", parent: "o-pub2", kind: consumer, name: "audit-log process", at: 31, ms: 2, scope: "@opentelemetry/instrumentation-amqplib",
					a: amqplibConn(attrs{"messaging.destination": "", "messaging.destination_kind": "topic",
						"messaging.rabbitmq.routing_key": "audit-log", "messaging.operation": "process"})},
			},
			{
				{svc: "notifier", trace: "t1", id: "n-proc", parent: "o-kafka", kind: consumer, name: "process order-events", at: 33, ms: 2, scope: "@opentelemetry/instrumentation-kafkajs",
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "order-events", "messaging.operation.type": "process",
						"messaging.operation.name": "process", "messaging.destination.partition.id": "0", "messaging.kafka.message.key": "7",
						"messaging.kafka.offset": "118"}},
				{svc: "warehouse", trace: "t2", id: "wh-proc", parent: "wh-poll", links: []string{"t1/o-kafka"}, kind: consumer, name: "process order-events", at: 36, ms: 3, scope: "@opentelemetry/instrumentation-kafkajs",
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "order-events", "messaging.operation.type": "process",
						"messaging.operation.name": "process", "messaging.destination.partition.id": "0", "messaging.kafka.message.key": "7",
						"messaging.kafka.offset": "118"}},
				{svc: "warehouse", trace: "t2", id: "wh-poll", kind: client, name: "poll order-events", at: 35, ms: 5, scope: "@opentelemetry/instrumentation-kafkajs",
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "order-events", "messaging.operation.type": "receive",
						"messaging.operation.name": "poll", "messaging.batch.message_count": 1, "messaging.destination.partition.id": "0"}},
			},
			{
				{svc: "orders", trace: "t1", id: "o-kafka", parent: "o-srv", kind: producer, name: "send order-events", at: 21, ms: 2, scope: "@opentelemetry/instrumentation-kafkajs",
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "order-events", "messaging.destination.partition.id": "0",
						"messaging.kafka.message.key": "7", "messaging.operation.name": "send", "messaging.operation.type": "send"}},
				{svc: "orders", trace: "t1", id: "o-pg", parent: "o-srv", kind: client, name: "pg.query:SELECT shop", at: 12, ms: 3, scope: "@opentelemetry/instrumentation-pg",
					a: attrs{"db.system": "postgresql", "db.name": "shop", "db.connection_string": "postgresql://postgres:5432/shop",
						"db.user": "app", "db.statement": "SELECT * FROM orders WHERE id = $1", "net.peer.name": "postgres", "net.peer.port": 5432}},
				{svc: "orders", trace: "t1", id: "o-redis", parent: "o-srv", kind: client, name: "get", at: 16, ms: 1, scope: "@opentelemetry/instrumentation-ioredis",
					a: attrs{"db.system": "redis", "db.statement": "get order:7", "db.connection_string": "redis://redis:6379",
						"net.peer.name": "redis", "net.peer.port": 6379}},
				{svc: "orders", trace: "t1", id: "o-pub1", parent: "o-srv", kind: producer, name: "publish orders", at: 18, ms: 1, scope: "@opentelemetry/instrumentation-amqplib",
					a: amqplibConn(attrs{"messaging.destination": "orders", "messaging.destination_kind": "topic",
						"messaging.rabbitmq.routing_key": "order.created"})},
				{svc: "orders", trace: "t1", id: "o-pub2", parent: "o-srv", kind: producer, name: "publish <default>", at: 20, ms: 1, scope: "@opentelemetry/instrumentation-amqplib",
					a: amqplibConn(attrs{"messaging.destination": "", "messaging.destination_kind": "topic",
						"messaging.rabbitmq.routing_key": "audit-log"})},
				{svc: "orders", trace: "t1", id: "o-srv", parent: "g-cli", kind: server, name: "GET /orders/:id", at: 10, ms: 14,
					a: nodeServer("orders", 3000, "/orders/7", "/orders/:id", 200)},
			},
			{
				{svc: "gateway", trace: "t1", id: "g-cli", parent: "g-srv", kind: client, name: "GET", at: 8, ms: 18,
					a: nodeClient("orders", 3000, "/orders/7", 200)},
				{svc: "gateway", trace: "t1", id: "g-srv", kind: server, name: "GET /api/orders/:id", at: 0, ms: 30,
					a: nodeServer("gateway", 8080, "/api/orders/7", "/api/orders/:id", 200)},
			},
		},
	},

	// frontend (ASP.NET Core) calls catalog over HttpClient and payment over
	// Grpc.Net.Client, reads Redis through StackExchange.Redis, and publishes
	// with RabbitMQ.Client 7 to the exchange "orders" (routing key
	// order.created, read by fulfillment) and to the default exchange for
	// the queue email-jobs (read by mailer); catalog queries SQL Server
	// through SqlClient.
	&fixture{
		name:  "dotnet",
		scope: "Microsoft.AspNetCore",
		resource: map[string]attrs{
			"frontend":    dotnetResource("frontend-1"),
			"catalog":     dotnetResource("catalog-1"),
			"payment":     dotnetResource("payment-1"),
			"fulfillment": dotnetResource("fulfillment-1"),
			"mailer":      dotnetResource("mailer-1"),
		},
		requests: [][]fspan{
			{
				{svc: "catalog", trace: "t1", id: "c-sql", parent: "c-srv", kind: client, name: "shop", at: 7, ms: 3, scope: "OpenTelemetry.Instrumentation.SqlClient",
					a: attrs{"db.system": "mssql", "db.name": "shop", "server.address": "sqlserver", "db.statement": "GetProductsByCategory"}},
				{svc: "catalog", trace: "t1", id: "c-srv", parent: "f-http", kind: server, name: "GET api/products/{id}", at: 5, ms: 8,
					a: attrs{"http.request.method": "GET", "url.scheme": "http", "url.path": "/api/products/12", "http.route": "api/products/{id}",
						"http.response.status_code": 200, "server.address": "catalog", "server.port": 8080, "network.protocol.version": "1.1",
						"user_agent.original": ""}},
				{svc: "fulfillment", trace: "t1", id: "ful-deliver", parent: "f-pub1", links: []string{"t1/f-pub1"}, kind: consumer, name: "deliver order.created", at: 40, ms: 5, scope: "RabbitMQ.Client.Subscriber",
					a: dotnetRabbit("process", "deliver", "orders", "order.created", 1)},
				{svc: "mailer", trace: "t1", id: "mail-deliver", parent: "f-pub2", links: []string{"t1/f-pub2"}, kind: consumer, name: "deliver email-jobs", at: 41, ms: 7, scope: "RabbitMQ.Client.Subscriber",
					a: dotnetRabbit("process", "deliver", "amq.default", "email-jobs", 1)},
				{svc: "payment", trace: "t1", id: "p-srv", parent: "f-grpc", kind: server, name: "payment.PaymentService/Charge", at: 16, ms: 6,
					a: attrs{"rpc.system": "grpc", "rpc.service": "payment.PaymentService", "rpc.method": "Charge", "rpc.grpc.status_code": 0,
						"http.request.method": "POST", "url.scheme": "http", "url.path": "/payment.PaymentService/Charge",
						"http.response.status_code": 200, "server.address": "payment", "server.port": 8080, "network.protocol.version": "2"}},
			},
			{
				{svc: "frontend", trace: "t1", id: "f-http", parent: "f-srv", kind: client, name: "GET", at: 4, ms: 10, scope: "System.Net.Http",
					a: attrs{"http.request.method": "GET", "url.full": "http://catalog:8080/api/products/12", "server.address": "catalog", "server.port": 8080,
						"network.protocol.version": "1.1", "http.response.status_code": 200}},
				{svc: "frontend", trace: "t1", id: "f-grpc", parent: "f-srv", kind: client, name: "payment.PaymentService/Charge", at: 15, ms: 8, scope: "System.Net.Http",
					a: attrs{"rpc.system": "grpc", "rpc.service": "payment.PaymentService", "rpc.method": "Charge", "rpc.grpc.status_code": 0,
						"http.request.method": "POST", "url.full": "http://payment:8080/payment.PaymentService/Charge", "server.address": "payment", "server.port": 8080,
						"network.protocol.version": "2", "http.response.status_code": 200}},
				{svc: "frontend", trace: "t1", id: "f-pub1", parent: "f-srv", kind: producer, name: "publish order.created", at: 26, ms: 1, scope: "RabbitMQ.Client.Publisher",
					a: dotnetRabbit("send", "publish", "orders", "order.created", 0)},
				{svc: "frontend", trace: "t1", id: "f-pub2", parent: "f-srv", kind: producer, name: "publish email-jobs", at: 27, ms: 1, scope: "RabbitMQ.Client.Publisher",
					a: dotnetRabbit("send", "publish", "amq.default", "email-jobs", 0)},
				{svc: "frontend", trace: "t1", id: "f-redis", parent: "f-srv", kind: client, name: "GET", at: 25, ms: 1, scope: "OpenTelemetry.Instrumentation.StackExchangeRedis",
					a: attrs{"db.system": "redis", "db.redis.flags": "DemandMaster", "db.statement": "GET", "db.redis.database_index": 0,
						"server.address": "redis", "server.port": 6379}},
			},
			{
				{svc: "frontend", trace: "t1", id: "f-srv", kind: server, name: "GET /", at: 0, ms: 30,
					a: attrs{"http.request.method": "GET", "url.scheme": "http", "url.path": "/", "http.route": "/",
						"http.response.status_code": 200, "server.address": "localhost", "server.port": 8080, "network.protocol.version": "1.1",
						"user_agent.original": "Mozilla/5.0"}},
			},
		},
	},
)
