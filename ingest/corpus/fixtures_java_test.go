package corpus_test

// Shapes of the OpenTelemetry Java agent (opentelemetry-java-instrumentation
// 2.x, default configuration unless a fixture says otherwise). Each span's
// attributes follow what that project's own tests assert:
//   - HTTP: testing-common/.../junit/http/AbstractHttpServerTest and
//     AbstractHttpClientTest (stable HTTP semconv since 2.0: http.request.method,
//     url.full / url.path, server.address, server.port, http.route,
//     http.response.status_code, network.protocol.version, client.address,
//     network.peer.*, user_agent.original);
//   - gRPC: instrumentation/grpc-1.6/testing/.../AbstractGrpcTest
//     (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code,
//     server.address, server.port, network.peer.*);
//   - JDBC: instrumentation/jdbc/.../JdbcInstrumentationTest (old DB semconv:
//     db.system, db.name, db.statement, db.operation, db.sql.table,
//     server.address/port; with otel.semconv-stability.opt-in=database:
//     db.system.name, db.namespace, db.query.text, db.operation.name,
//     db.collection.name);
//   - Redis: instrumentation/lettuce/lettuce-5.1/testing/.../AbstractLettuceSyncClientTest
//     (db.system=redis, db.statement, server.address/port, network.peer.*;
//     no db.name);
//   - Kafka: instrumentation/kafka/kafka-clients/.../KafkaClientDefaultTest and
//     KafkaClientPropagationBaseTest (PRODUCER "<topic> publish"; CONSUMER
//     "<topic> process" child of the producer by default; with
//     otel.instrumentation.messaging.experimental.receive-telemetry.enabled a
//     root CONSUMER "<topic> receive" and "<topic> process" under it with a
//     link to the producer);
//   - RabbitMQ: instrumentation/rabbitmq-2.7/.../RabbitMqTest and the
//     attribute getters (RabbitChannelAttributesGetter,
//     RabbitDeliveryAttributesGetter, RabbitInstrumenterHelper): the
//     destination is the exchange, "<default>" for the default exchange,
//     with messaging.rabbitmq.destination.routing_key; under the stable
//     messaging semconv the publish destination is "<exchange>:<routing key>"
//     ("amq.default" when both are empty).

// javaResource is what the agent puts on every resource beside service.name.
func javaResource(instance string) attrs {
	return attrs{
		"service.instance.id":      instance,
		"telemetry.sdk.language":   "java",
		"telemetry.sdk.name":       "opentelemetry",
		"telemetry.sdk.version":    "1.49.0",
		"telemetry.distro.name":    "opentelemetry-java-instrumentation",
		"telemetry.distro.version": "2.15.0",
		"process.runtime.name":     "OpenJDK Runtime Environment",
		"process.runtime.version":  "21.0.6+7-LTS",
		"host.name":                instance,
		"os.type":                  "linux",
	}
}

// javaServer returns a Tomcat / Spring MVC SERVER span's attributes.
func javaServer(method, path, route, host string, port, status int) attrs {
	return attrs{
		"http.request.method":       method,
		"url.scheme":                "http",
		"url.path":                  path,
		"http.route":                route,
		"http.response.status_code": status,
		"server.address":            host,
		"server.port":               port,
		"client.address":            "10.1.0.7",
		"network.peer.address":      "10.1.0.7",
		"network.peer.port":         51234,
		"network.protocol.version":  "1.1",
		"user_agent.original":       "Java-http-client/21.0.6",
	}
}

// javaClient returns a java.net.http HttpClient CLIENT span's attributes.
func javaClient(method, url, host string, port, status int) attrs {
	return attrs{
		"http.request.method":       method,
		"url.full":                  url,
		"server.address":            host,
		"server.port":               port,
		"http.response.status_code": status,
		"network.protocol.version":  "1.1",
	}
}

var _ = register(
	// frontend (Spring MVC on Tomcat) calls cart over java.net.http and a
	// payment provider on the internet; no agent runs there.
	&fixture{
		name:  "java-http",
		scope: "io.opentelemetry.tomcat-10.0",
		resource: map[string]attrs{
			"frontend": javaResource("frontend-7d9c"),
			"cart":     javaResource("cart-5f2a"),
		},
		requests: [][]fspan{
			{ // cart's batch: its server span ended first
				{svc: "cart", trace: "t1", id: "cart-srv", parent: "fe-cli-cart", kind: server, name: "GET /cart/{id}", at: 12, ms: 20,
					a: javaServer("GET", "/cart/42", "/cart/{id}", "cart", 8080, 200)},
			},
			{ // frontend's batch: client spans before the root
				{svc: "frontend", trace: "t1", id: "fe-cli-cart", parent: "fe-srv", kind: client, name: "GET", at: 10, ms: 25, scope: "io.opentelemetry.java-http-client",
					a: javaClient("GET", "http://cart:8080/cart/42", "cart", 8080, 200)},
				{svc: "frontend", trace: "t1", id: "fe-cli-pay", parent: "fe-srv", kind: client, name: "POST", at: 40, ms: 80, scope: "io.opentelemetry.java-http-client",
					a: javaClient("POST", "https://api.stripe.com/v1/charges", "api.stripe.com", 443, 200)},
			},
			{
				{svc: "frontend", trace: "t1", id: "fe-srv", kind: server, name: "GET /checkout", at: 0, ms: 130,
					a: javaServer("GET", "/checkout", "/checkout", "frontend", 8080, 200)},
			},
		},
	},

	// checkout calls payment over gRPC (grpc-java, both sides instrumented).
	&fixture{
		name:  "java-grpc",
		scope: "io.opentelemetry.grpc-1.6",
		resource: map[string]attrs{
			"checkout": javaResource("checkout-1"),
			"payment":  javaResource("payment-1"),
		},
		requests: [][]fspan{
			{
				{svc: "payment", trace: "t1", id: "pay-srv", parent: "co-cli", kind: server, name: "hipstershop.PaymentService/Charge", at: 6, ms: 10,
					a: attrs{"rpc.system": "grpc", "rpc.service": "hipstershop.PaymentService", "rpc.method": "Charge", "rpc.grpc.status_code": 0,
						"server.address": "payment", "server.port": 50051, "network.peer.address": "10.1.0.9", "network.peer.port": 40412, "network.type": "ipv4"}},
			},
			{
				{svc: "checkout", trace: "t1", id: "co-cli", parent: "co-srv", kind: client, name: "hipstershop.PaymentService/Charge", at: 5, ms: 13,
					a: attrs{"rpc.system": "grpc", "rpc.service": "hipstershop.PaymentService", "rpc.method": "Charge", "rpc.grpc.status_code": 0,
						"server.address": "payment", "server.port": 50051, "network.peer.address": "10.1.0.12", "network.peer.port": 50051, "network.type": "ipv4"}},
				{svc: "checkout", trace: "t1", id: "co-srv", kind: server, name: "POST /api/checkout", at: 0, ms: 30, scope: "io.opentelemetry.tomcat-10.0",
					a: javaServer("POST", "/api/checkout", "/api/checkout", "checkout", 8080, 200)},
			},
		},
	},

	// orders (old DB semconv, the 2.x default) and billing (stable DB
	// semconv opt-in) query the same PostgreSQL database "shop" through
	// JDBC, under a Spring Data repository span.
	&fixture{
		name:  "java-jdbc",
		scope: "io.opentelemetry.jdbc",
		resource: map[string]attrs{
			"orders":  javaResource("orders-1"),
			"billing": javaResource("billing-1"),
		},
		requests: [][]fspan{
			{
				{svc: "orders", trace: "t1", id: "o-jdbc", parent: "o-repo", kind: client, name: "SELECT shop.orders", at: 3, ms: 4,
					a: attrs{"db.system": "postgresql", "db.name": "shop", "db.user": "app",
						"db.statement": "select o1_0.id,o1_0.total from orders o1_0 where o1_0.id=?", "db.operation": "SELECT", "db.sql.table": "orders",
						"server.address": "postgres", "server.port": 5432}},
				{svc: "orders", trace: "t1", id: "o-repo", parent: "o-srv", kind: internal, name: "OrderRepository.findById", at: 2, ms: 6, scope: "io.opentelemetry.spring-data-1.8",
					a: attrs{"code.namespace": "com.example.orders.OrderRepository", "code.function": "findById"}},
				{svc: "orders", trace: "t1", id: "o-srv", kind: server, name: "GET /orders/{id}", at: 0, ms: 10, scope: "io.opentelemetry.tomcat-10.0",
					a: javaServer("GET", "/orders/7", "/orders/{id}", "orders", 8080, 200)},
			},
			{
				{svc: "billing", trace: "t2", id: "b-jdbc", parent: "b-srv", kind: client, name: "SELECT orders", at: 3, ms: 4,
					a: attrs{"db.system.name": "postgresql", "db.namespace": "shop",
						"db.query.text": "select sum(total) from orders where customer_id=?", "db.operation.name": "SELECT", "db.collection.name": "orders",
						"server.address": "postgres", "server.port": 5432}},
				{svc: "billing", trace: "t2", id: "b-srv", kind: server, name: "GET /invoices/{customer}", at: 0, ms: 10, scope: "io.opentelemetry.tomcat-10.0",
					a: javaServer("GET", "/invoices/3", "/invoices/{customer}", "billing", 8080, 200)},
			},
		},
	},

	// cart reads Redis through Lettuce.
	&fixture{
		name:  "java-redis",
		scope: "io.opentelemetry.lettuce-5.1",
		resource: map[string]attrs{
			"cart": javaResource("cart-1"),
		},
		requests: [][]fspan{
			{
				{svc: "cart", trace: "t1", id: "get", parent: "srv", kind: client, name: "GET", at: 2, ms: 1,
					a: attrs{"db.system": "redis", "db.statement": "GET cart:42", "server.address": "redis-cart", "server.port": 6379,
						"network.peer.address": "10.1.0.20", "network.peer.port": 6379, "network.type": "ipv4"}},
				{svc: "cart", trace: "t1", id: "set", parent: "srv", kind: client, name: "SET", at: 4, ms: 1,
					a: attrs{"db.system": "redis", "db.statement": "SET cart:42 ?", "server.address": "redis-cart", "server.port": 6379,
						"network.peer.address": "10.1.0.20", "network.peer.port": 6379, "network.type": "ipv4"}},
				{svc: "cart", trace: "t1", id: "srv", kind: server, name: "POST /cart/{id}", at: 0, ms: 8, scope: "io.opentelemetry.tomcat-10.0",
					a: javaServer("POST", "/cart/42", "/cart/{id}", "cart", 8080, 200)},
			},
		},
	},

	// orders publishes to topic "orders"; billing consumes with the default
	// configuration (process span, child of the producer), analytics with
	// receive telemetry on (root receive span; process span under it,
	// linked to the producer).
	&fixture{
		name:  "java-kafka",
		scope: "io.opentelemetry.kafka-clients-0.11",
		resource: map[string]attrs{
			"orders":    javaResource("orders-1"),
			"billing":   javaResource("billing-1"),
			"analytics": javaResource("analytics-1"),
		},
		requests: [][]fspan{
			{
				{svc: "billing", trace: "t1", id: "bill-proc", parent: "pub", kind: consumer, name: "orders process", at: 30, ms: 5,
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "orders", "messaging.operation": "process",
						"messaging.client_id": "consumer-billing-1", "messaging.kafka.consumer.group": "billing",
						"messaging.destination.partition.id": "3", "messaging.kafka.message.offset": 1842, "messaging.message.body.size": 96,
						"messaging.kafka.message.key": "order-7"}},
			},
			{
				{svc: "analytics", trace: "t2", id: "an-proc", parent: "an-recv", kind: consumer, name: "orders process", at: 41, ms: 3,
					links: []string{"t1/pub"},
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "orders", "messaging.operation": "process",
						"messaging.client_id": "consumer-analytics-1", "messaging.kafka.consumer.group": "analytics",
						"messaging.destination.partition.id": "3", "messaging.kafka.message.offset": 1842, "messaging.message.body.size": 96}},
				{svc: "analytics", trace: "t2", id: "an-recv", kind: consumer, name: "orders receive", at: 40, ms: 1,
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "orders", "messaging.operation": "receive",
						"messaging.client_id": "consumer-analytics-1", "messaging.kafka.consumer.group": "analytics",
						"messaging.batch.message_count": 1}},
			},
			{
				{svc: "orders", trace: "t1", id: "pub", parent: "srv", kind: producer, name: "orders publish", at: 3, ms: 4,
					a: attrs{"messaging.system": "kafka", "messaging.destination.name": "orders", "messaging.operation": "publish",
						"messaging.client_id": "producer-1", "messaging.destination.partition.id": "3", "messaging.kafka.message.offset": 1842,
						"messaging.kafka.message.key": "order-7"}},
				{svc: "orders", trace: "t1", id: "srv", kind: server, name: "POST /orders", at: 0, ms: 10, scope: "io.opentelemetry.tomcat-10.0",
					a: javaServer("POST", "/orders", "/orders", "orders", 8080, 201)},
			},
		},
	},

	// quotes publishes to the topic exchange "orders" with routing key
	// order.created (read by fulfillment from its queue) and, on the default
	// exchange, to the queue "email-jobs" (read by mailer). Old messaging
	// semconv, the 2.x default.
	&fixture{
		name:  "java-rabbitmq",
		scope: "io.opentelemetry.rabbitmq-2.7",
		resource: map[string]attrs{
			"quotes":      javaResource("quotes-1"),
			"fulfillment": javaResource("fulfillment-1"),
			"mailer":      javaResource("mailer-1"),
		},
		requests: [][]fspan{
			{
				{svc: "fulfillment", trace: "t1", id: "ful-proc", parent: "pub-orders", kind: consumer, name: "orders process", at: 20, ms: 6,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "orders", "messaging.operation": "process",
						"messaging.rabbitmq.destination.routing_key": "order.created", "messaging.message.body.size": 120}},
				{svc: "mailer", trace: "t1", id: "mail-proc", parent: "pub-email", kind: consumer, name: "<default> process", at: 22, ms: 9,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "<default>", "messaging.operation": "process",
						"messaging.rabbitmq.destination.routing_key": "email-jobs", "messaging.message.body.size": 310}},
			},
			{
				{svc: "quotes", trace: "t1", id: "pub-orders", parent: "srv", kind: producer, name: "orders publish", at: 3, ms: 2,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "orders", "messaging.operation": "publish",
						"messaging.rabbitmq.destination.routing_key": "order.created", "messaging.message.body.size": 120,
						"network.peer.address": "10.1.0.30", "network.peer.port": 5672, "network.type": "ipv4"}},
				{svc: "quotes", trace: "t1", id: "pub-email", parent: "srv", kind: producer, name: "<default> publish", at: 6, ms: 2,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "<default>", "messaging.operation": "publish",
						"messaging.rabbitmq.destination.routing_key": "email-jobs", "messaging.message.body.size": 310,
						"network.peer.address": "10.1.0.30", "network.peer.port": 5672, "network.type": "ipv4"}},
				{svc: "quotes", trace: "t1", id: "srv", kind: server, name: "POST /quotes", at: 0, ms: 12, scope: "io.opentelemetry.tomcat-10.0",
					a: javaServer("POST", "/quotes", "/quotes", "quotes", 8080, 200)},
			},
		},
	},

	// The same traffic as java-rabbitmq under
	// otel.semconv-stability.opt-in=messaging: publish destinations are
	// "<exchange>:<routing key>" (default exchange: the routing key alone),
	// operation type and name replace messaging.operation; deliveries still
	// name the exchange (RabbitDeliveryAttributesGetter).
	&fixture{
		name:  "java-rabbitmq-stable",
		scope: "io.opentelemetry.rabbitmq-2.7",
		resource: map[string]attrs{
			"quotes":      javaResource("quotes-1"),
			"fulfillment": javaResource("fulfillment-1"),
			"mailer":      javaResource("mailer-1"),
		},
		requests: [][]fspan{
			{
				{svc: "fulfillment", trace: "t1", id: "ful-proc", parent: "pub-orders", kind: consumer, name: "process orders", at: 20, ms: 6,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "orders",
						"messaging.operation.type": "process", "messaging.operation.name": "process",
						"messaging.rabbitmq.destination.routing_key": "order.created", "messaging.message.body.size": 120}},
				{svc: "mailer", trace: "t1", id: "mail-proc", parent: "pub-email", kind: consumer, name: "process <default>", at: 22, ms: 9,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "<default>",
						"messaging.operation.type": "process", "messaging.operation.name": "process",
						"messaging.rabbitmq.destination.routing_key": "email-jobs", "messaging.message.body.size": 310}},
			},
			{
				{svc: "quotes", trace: "t1", id: "pub-orders", parent: "srv", kind: producer, name: "publish orders:order.created", at: 3, ms: 2,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "orders:order.created",
						"messaging.operation.type": "send", "messaging.operation.name": "publish",
						"messaging.rabbitmq.destination.routing_key": "order.created",
						"server.address": "rabbitmq", "server.port": 5672, "network.peer.address": "10.1.0.30", "network.peer.port": 5672}},
				{svc: "quotes", trace: "t1", id: "pub-email", parent: "srv", kind: producer, name: "publish email-jobs", at: 6, ms: 2,
					a: attrs{"messaging.system": "rabbitmq", "messaging.destination.name": "email-jobs",
						"messaging.operation.type": "send", "messaging.operation.name": "publish",
						"messaging.rabbitmq.destination.routing_key": "email-jobs",
						"server.address": "rabbitmq", "server.port": 5672, "network.peer.address": "10.1.0.30", "network.peer.port": 5672}},
				{svc: "quotes", trace: "t1", id: "srv", kind: server, name: "POST /quotes", at: 0, ms: 12, scope: "io.opentelemetry.tomcat-10.0",
					a: javaServer("POST", "/quotes", "/quotes", "quotes", 8080, 200)},
			},
		},
	},
)
