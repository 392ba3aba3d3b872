package corpus_test

// Fixtures for the pairing rules of issue #14 that no single language's
// instrumentation shows by itself: hops without a CLIENT span (rule 1),
// CLIENT spans a peer's own tracer makes (rule 2), Zipkin shared spans
// (rule 3), messaging systems beyond Kafka and RabbitMQ
// (rule 4) and sampled traffic (rule 5).

// otelResource is a plain SDK resource of a service in language lang.
func otelResource(instance, lang string) attrs {
	return attrs{
		"service.instance.id":    instance,
		"telemetry.sdk.language": lang,
		"telemetry.sdk.name":     "opentelemetry",
	}
}

var _ = register(
	// Rule 1. checkout calls inventory with an uninstrumented HTTP client
	// that still injects the trace context (otel.GetTextMapPropagator()
	// .Inject on a plain http.Request, as many hand-written clients do), so
	// inventory's SERVER span has checkout's INTERNAL span as its parent.
	// scheduler hands a job to reports through a channel nothing
	// instruments, passing the context along: an INTERNAL span in reports
	// under an INTERNAL span in scheduler, with no protocol attribute.
	&fixture{
		name:  "cross-service-parent",
		scope: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
		resource: map[string]attrs{
			"checkout":  otelResource("checkout-1", "go"),
			"inventory": otelResource("inventory-1", "go"),
			"scheduler": otelResource("scheduler-1", "go"),
			"reports":   otelResource("reports-1", "go"),
		},
		requests: [][]fspan{
			{
				{svc: "inventory", trace: "t1", id: "inv-srv", parent: "co-reserve", kind: server, name: "POST /reserve", at: 6, ms: 8,
					a: attrs{"http.request.method": "POST", "url.scheme": "http", "url.path": "/reserve", "http.route": "/reserve",
						"http.response.status_code": 200, "server.address": "inventory", "server.port": 8080,
						"network.protocol.version": "1.1", "client.address": "10.5.0.3", "user_agent.original": "Go-http-client/1.1"}},
				{svc: "reports", trace: "t2", id: "rep-render", parent: "sch-job", kind: internal, name: "render report", at: 3, ms: 40, scope: "reports"},
			},
			{
				{svc: "checkout", trace: "t1", id: "co-reserve", parent: "co-srv", kind: internal, name: "reserve stock", at: 5, ms: 10, scope: "checkout"},
				{svc: "checkout", trace: "t1", id: "co-srv", kind: server, name: "POST /checkout", at: 0, ms: 20,
					a: attrs{"http.request.method": "POST", "url.scheme": "http", "url.path": "/checkout", "http.route": "/checkout",
						"http.response.status_code": 200, "server.address": "checkout", "server.port": 8080,
						"network.protocol.version": "1.1", "client.address": "10.5.0.1", "user_agent.original": "curl/8.5.0"}},
				{svc: "scheduler", trace: "t2", id: "sch-job", kind: internal, name: "nightly reports", at: 0, ms: 50, scope: "scheduler"},
			},
		},
	},

	// Rule 2. Spans a peer's own tracer makes on the caller's behalf, the
	// way HotROD simulates MySQL and older OpenTracing code simulated remote
	// systems: a CLIENT span whose service.name is the peer it names. ledger
	// is named by service.peer.name (semconv 1.3x), fraud by peer.service
	// (through the collector's jaeger receiver, which keeps OpenTracing's
	// peer.service tag), audit-store by server.address with HTTP attributes.
	&fixture{
		name:  "self-named-peer",
		scope: "manual",
		resource: map[string]attrs{
			"payments": otelResource("payments-1", "go"),
		},
		requests: [][]fspan{
			{
				{svc: "ledger", trace: "t1", id: "ledger-call", parent: "pay-srv", kind: client, name: "post entry", at: 3, ms: 4,
					a: attrs{"service.peer.name": "ledger", "ledger.account": "A-17"}},
				{svc: "fraud", trace: "t1", id: "fraud-call", parent: "pay-srv", kind: client, name: "score", at: 8, ms: 6,
					a: attrs{"peer.service": "fraud", "fraud.model": "v3"}},
				{svc: "audit-store", trace: "t1", id: "audit-call", parent: "pay-srv", kind: client, name: "PUT", at: 15, ms: 3,
					a: attrs{"http.request.method": "PUT", "url.full": "http://audit-store:9000/events/991", "server.address": "audit-store",
						"server.port": 9000, "http.response.status_code": 204}},
			},
			{
				{svc: "payments", trace: "t1", id: "pay-srv", kind: server, name: "POST /payments", at: 0, ms: 20, scope: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
					a: attrs{"http.request.method": "POST", "url.scheme": "http", "url.path": "/payments", "http.route": "/payments",
						"http.response.status_code": 201, "server.address": "payments", "server.port": 8080, "network.protocol.version": "1.1"}},
			},
		},
	},

	// Rule 3. Zipkin-instrumented services (Brave, reporting through the
	// OpenTelemetry Collector's zipkin receiver, which turns the v2 JSON into
	// OTLP: kind from the Zipkin kind, remoteEndpoint.serviceName into
	// peer.service, tags as attributes). Zipkin's B3 propagation shares one
	// span between the two sides of a call: frontend's CLIENT span and
	// cart's SERVER span have the same span id and the same parent.
	&fixture{
		name:  "zipkin-shared",
		scope: "",
		resource: map[string]attrs{
			"frontend": {"service.instance.id": "frontend-1"},
			"cart":     {"service.instance.id": "cart-1"},
		},
		requests: [][]fspan{
			{
				{svc: "cart", trace: "t1", id: "cart-srv", spanID: "shared", parent: "fe-srv", kind: server, name: "get /api/cart", at: 6, ms: 9,
					a: attrs{"http.method": "GET", "http.path": "/api/cart", "http.route": "/api/cart", "net.peer.ip": "10.6.0.2",
						"peer.service": "frontend"}},
			},
			{
				{svc: "frontend", trace: "t1", id: "fe-cli", spanID: "shared", parent: "fe-srv", kind: client, name: "get", at: 5, ms: 11,
					a: attrs{"http.method": "GET", "http.path": "/api/cart", "net.peer.ip": "10.6.0.7", "net.peer.port": 8080,
						"peer.service": "cart"}},
				{svc: "frontend", trace: "t1", id: "fe-srv", kind: server, name: "get /checkout", at: 0, ms: 20,
					a: attrs{"http.method": "GET", "http.path": "/checkout", "http.route": "/checkout", "net.peer.ip": "10.6.0.1"}},
			},
		},
	},

	// Rule 4. One message to each messaging system in its current semconv
	// shape (messaging.operation.type, messaging.destination.name, the
	// system's consumer-group attribute), per the semantic conventions'
	// messaging pages for each system and the Java agent's aws-sdk-2.2, jms,
	// pulsar and rocketmq instrumentations.
	&fixture{
		name:  "messaging-systems",
		scope: "messaging",
		resource: map[string]attrs{
			"events": otelResource("events-1", "java"),
		},
		requests: [][]fspan{
			{
				// Consumers.
				{svc: "sqs-worker", trace: "t1", id: "sqs-c", parent: "sqs-p", kind: consumer, name: "process orders-queue", at: 30, ms: 2,
					a: attrs{"messaging.system": "aws_sqs", "messaging.destination.name": "orders-queue", "messaging.operation.type": "process",
						"messaging.operation.name": "process", "rpc.system": "aws-api", "rpc.service": "Sqs", "rpc.method": "ReceiveMessage",
						"aws.sqs.queue.url": "https://sqs.us-east-1.amazonaws.com/123456789012/orders-queue"}},
				{svc: "pubsub-worker", trace: "t1", id: "ps-c", parent: "ps-p", kind: consumer, name: "process order-events", at: 31, ms: 2,
					a: attrs{"messaging.system": "gcp_pubsub", "messaging.destination.name": "order-events", "messaging.operation.type": "process",
						"messaging.destination.subscription.name": "billing-sub"}},
				{svc: "servicebus-worker", trace: "t1", id: "sb-c", parent: "sb-p", kind: consumer, name: "process payments", at: 32, ms: 2,
					a: attrs{"messaging.system": "servicebus", "messaging.destination.name": "payments", "messaging.operation.type": "process",
						"messaging.operation.name": "process", "server.address": "shop.servicebus.windows.net"}},
				{svc: "eventhubs-worker", trace: "t1", id: "eh-c", parent: "eh-p", kind: consumer, name: "process telemetry", at: 33, ms: 2,
					a: attrs{"messaging.system": "eventhubs", "messaging.destination.name": "telemetry", "messaging.operation.type": "process",
						"messaging.consumer.group.name": "$Default", "messaging.destination.partition.id": "1"}},
				{svc: "jms-worker", trace: "t1", id: "jms-c", parent: "jms-p", kind: consumer, name: "orders.queue process", at: 34, ms: 2,
					a: attrs{"messaging.system": "jms", "messaging.destination.name": "orders.queue", "messaging.operation": "process",
						"messaging.message.id": "ID:broker-1-1"}},
				{svc: "nats-worker", trace: "t1", id: "nats-c", parent: "nats-p", kind: consumer, name: "process orders.created", at: 35, ms: 2,
					a: attrs{"messaging.system": "nats", "messaging.destination.name": "orders.created", "messaging.operation.type": "process",
						"messaging.consumer.group.name": "mailers"}},
				{svc: "pulsar-worker", trace: "t1", id: "pl-c", parent: "pl-p", kind: consumer, name: "persistent://public/default/orders process", at: 36, ms: 2,
					a: attrs{"messaging.system": "pulsar", "messaging.destination.name": "persistent://public/default/orders", "messaging.operation": "process",
						"messaging.message.id": "1:2:-1"}},
				{svc: "rocketmq-worker", trace: "t1", id: "rm-c", parent: "rm-p", kind: consumer, name: "orders process", at: 37, ms: 2,
					a: attrs{"messaging.system": "rocketmq", "messaging.destination.name": "orders", "messaging.operation": "process",
						"messaging.rocketmq.client_group": "billing-group", "messaging.rocketmq.namespace": "shop"}},
			},
			{
				// Producers, under events' root span.
				{svc: "events", trace: "t1", id: "sqs-p", parent: "root", kind: producer, name: "send orders-queue", at: 2, ms: 3,
					a: attrs{"messaging.system": "aws_sqs", "messaging.destination.name": "orders-queue", "messaging.operation.type": "send",
						"messaging.operation.name": "send", "rpc.system": "aws-api", "rpc.service": "Sqs", "rpc.method": "SendMessage",
						"server.address": "sqs.us-east-1.amazonaws.com", "server.port": 443}},
				{svc: "events", trace: "t1", id: "sns-p", parent: "root", kind: producer, name: "publish order-events", at: 3, ms: 3,
					a: attrs{"messaging.system": "aws_sns", "messaging.destination.name": "order-events", "messaging.operation.type": "send",
						"rpc.system": "aws-api", "rpc.service": "Sns", "rpc.method": "Publish",
						"aws.sns.topic.arn": "arn:aws:sns:us-east-1:123456789012:order-events"}},
				{svc: "events", trace: "t1", id: "ps-p", parent: "root", kind: producer, name: "create order-events", at: 4, ms: 1,
					a: attrs{"messaging.system": "gcp_pubsub", "messaging.destination.name": "order-events", "messaging.operation.type": "create",
						"messaging.operation.name": "create"}},
				{svc: "events", trace: "t1", id: "sb-p", parent: "root", kind: producer, name: "send payments", at: 5, ms: 2,
					a: attrs{"messaging.system": "servicebus", "messaging.destination.name": "payments", "messaging.operation.type": "send",
						"messaging.operation.name": "send", "server.address": "shop.servicebus.windows.net"}},
				{svc: "events", trace: "t1", id: "eh-p", parent: "root", kind: producer, name: "send telemetry", at: 6, ms: 2,
					a: attrs{"messaging.system": "eventhubs", "messaging.destination.name": "telemetry", "messaging.operation.type": "send",
						"server.address": "shop.servicebus.windows.net"}},
				{svc: "events", trace: "t1", id: "jms-p", parent: "root", kind: producer, name: "orders.queue publish", at: 7, ms: 2,
					a: attrs{"messaging.system": "jms", "messaging.destination.name": "orders.queue", "messaging.operation": "publish",
						"messaging.message.id": "ID:broker-1-1"}},
				{svc: "events", trace: "t1", id: "nats-p", parent: "root", kind: producer, name: "send orders.created", at: 8, ms: 1,
					a: attrs{"messaging.system": "nats", "messaging.destination.name": "orders.created", "messaging.operation.type": "send"}},
				{svc: "events", trace: "t1", id: "pl-p", parent: "root", kind: producer, name: "persistent://public/default/orders publish", at: 9, ms: 2,
					a: attrs{"messaging.system": "pulsar", "messaging.destination.name": "persistent://public/default/orders", "messaging.operation": "publish",
						"server.address": "pulsar", "server.port": 6650}},
				{svc: "events", trace: "t1", id: "rm-p", parent: "root", kind: producer, name: "orders publish", at: 10, ms: 2,
					a: attrs{"messaging.system": "rocketmq", "messaging.destination.name": "orders", "messaging.operation": "publish",
						"messaging.rocketmq.message.type": "normal", "messaging.rocketmq.client_group": "order-producers"}},
				{svc: "events", trace: "t1", id: "root", kind: internal, name: "publish order events", at: 0, ms: 15},
			},
		},
	},

	// Rule 5. Traffic sampled at 25% by consistent probability sampling
	// (OTEP 235: tracestate "ot=th:c", rejection threshold 0xc = 75%), as
	// the SDKs' ProbabilitySampler and the collector's probabilistic sampler
	// (mode "proportional") write it.
	&fixture{
		name:  "sampled",
		scope: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
		resource: map[string]attrs{
			"web": otelResource("web-1", "go"),
			"api": otelResource("api-1", "go"),
		},
		requests: [][]fspan{
			{
				{svc: "api", trace: "t1", id: "api-db", parent: "api-srv", kind: client, name: "SELECT app.users", at: 8, ms: 2, state: "ot=th:c", scope: "github.com/XSAM/otelsql",
					a: attrs{"db.system.name": "postgresql", "db.namespace": "app", "db.query.text": "SELECT * FROM users WHERE id = $1",
						"server.address": "postgres", "server.port": 5432}},
				{svc: "api", trace: "t1", id: "api-srv", parent: "web-cli", kind: server, name: "GET /users/{id}", at: 6, ms: 6, state: "ot=th:c",
					a: attrs{"http.request.method": "GET", "url.scheme": "http", "url.path": "/users/7", "http.route": "/users/{id}",
						"http.response.status_code": 200, "server.address": "api", "server.port": 8080, "network.protocol.version": "1.1"}},
			},
			{
				{svc: "web", trace: "t1", id: "web-cli", parent: "web-srv", kind: client, name: "GET", at: 5, ms: 8, state: "ot=th:c",
					a: attrs{"http.request.method": "GET", "url.full": "http://api:8080/users/7", "server.address": "api", "server.port": 8080,
						"http.response.status_code": 200, "network.protocol.version": "1.1"}},
				{svc: "web", trace: "t1", id: "web-srv", kind: server, name: "GET /profile", at: 0, ms: 15, state: "ot=th:c",
					a: attrs{"http.request.method": "GET", "url.scheme": "http", "url.path": "/profile", "http.route": "/profile",
						"http.response.status_code": 200, "server.address": "web", "server.port": 8080, "network.protocol.version": "1.1"}},
			},
		},
	},
)
