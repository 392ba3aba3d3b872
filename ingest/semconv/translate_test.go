package semconv

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
)

func TestTranslateSpanFields(t *testing.T) {
	td := buildTraces(t, resourceSpec{
		attrs: map[string]any{"service.name": "checkout", "service.namespace": "shop", "host.name": "h1"},
		spans: []spanSpec{{
			name: "GET /orders/{id}", kind: ptrace.SpanKindServer,
			start: 1_700_000_000_000_000_000, end: 1_700_000_000_250_000_000,
			attrs: map[string]any{"http.request.method": "GET", "http.route": "/orders/{id}"},
		}},
	})
	spans, invalid := Translate(nil, td)
	if invalid != 0 || len(spans) != 1 {
		t.Fatalf("got %d spans, %d invalid", len(spans), invalid)
	}
	want := graph.Span{
		Trace:     graph.TraceID(testTraceID),
		ID:        graph.SpanID(testSpanID),
		Parent:    graph.SpanID(testParent),
		Kind:      graph.SpanServer,
		Service:   "checkout",
		Namespace: "shop",
		Start:     1_700_000_000_000_000_000,
		End:       1_700_000_000_250_000_000,
		Protocol:  graph.ProtocolHTTP,
		Operation: "GET /orders/{id}",
	}
	if !reflect.DeepEqual(spans[0], want) {
		t.Errorf("span:\n got %+v\nwant %+v", spans[0], want)
	}
}

func TestTranslateResourceAndTimes(t *testing.T) {
	tests := []struct {
		name          string
		res           map[string]any
		start, end    pcommon.Timestamp
		wantService   string
		wantNamespace string
		wantStart     int64
		wantEnd       int64
	}{
		{name: "missing service.name", res: map[string]any{}, wantService: "unknown_service"},
		{name: "empty service.name", res: map[string]any{"service.name": ""}, wantService: "unknown_service"},
		{name: "int service.name", res: map[string]any{"service.name": 7}, wantService: "unknown_service"},
		{name: "namespace", res: map[string]any{"service.name": "a", "service.namespace": "ns"}, wantService: "a", wantNamespace: "ns"},
		{
			name: "timestamps above MaxInt64 clamp", res: map[string]any{"service.name": "a"},
			start: math.MaxInt64, end: math.MaxUint64,
			wantService: "a", wantStart: math.MaxInt64, wantEnd: math.MaxInt64,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := buildTraces(t, resourceSpec{attrs: tt.res, spans: []spanSpec{{name: "x", start: tt.start, end: tt.end}}})
			spans, _ := Translate(nil, td)
			if len(spans) != 1 {
				t.Fatalf("got %d spans", len(spans))
			}
			s := spans[0]
			if s.Service != tt.wantService || s.Namespace != tt.wantNamespace || s.Start != tt.wantStart || s.End != tt.wantEnd {
				t.Errorf("got service %q namespace %q start %d end %d; want %q %q %d %d",
					s.Service, s.Namespace, s.Start, s.End, tt.wantService, tt.wantNamespace, tt.wantStart, tt.wantEnd)
			}
		})
	}
}

func TestTranslateKinds(t *testing.T) {
	tests := []struct {
		in   ptrace.SpanKind
		want graph.SpanKind
	}{
		{ptrace.SpanKindUnspecified, graph.SpanUnspecified},
		{ptrace.SpanKindInternal, graph.SpanInternal},
		{ptrace.SpanKindServer, graph.SpanServer},
		{ptrace.SpanKindClient, graph.SpanClient},
		{ptrace.SpanKindProducer, graph.SpanProducer},
		{ptrace.SpanKindConsumer, graph.SpanConsumer},
		{ptrace.SpanKind(42), graph.SpanUnspecified},
		{ptrace.SpanKind(-1), graph.SpanUnspecified},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			if got := translateOne(t, spanSpec{kind: tt.in}).Kind; got != tt.want {
				t.Errorf("kind %d: got %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// derived is what the semantic conventions decide about a span.
type derived struct {
	Protocol      graph.Protocol
	Peer          graph.NodeKey
	Error         bool
	Messaging     graph.MessagingOp
	Destination   graph.NodeKey
	ConsumerGroup string
	ResendCount   int64
}

func deriveOf(s graph.Span) derived {
	return derived{
		Protocol: s.Protocol, Peer: s.Peer, Error: s.Error, Messaging: s.Messaging,
		Destination: s.Destination, ConsumerGroup: s.ConsumerGroup, ResendCount: s.ResendCount,
	}
}

const (
	client   = ptrace.SpanKindClient
	server   = ptrace.SpanKindServer
	producer = ptrace.SpanKindProducer
	consumer = ptrace.SpanKindConsumer
	internal = ptrace.SpanKindInternal
	errCode  = ptrace.StatusCodeError
	okCode   = ptrace.StatusCodeOk
)

func db(system, name string) graph.NodeKey {
	return graph.NodeKey{Kind: graph.NodeDatabase, Group: system, Name: name}
}

func ext(name string) graph.NodeKey { return graph.NodeKey{Kind: graph.NodeExternal, Name: name} }

func topic(system, name string) graph.NodeKey {
	return graph.NodeKey{Kind: graph.NodeTopic, Group: system, Name: name}
}

func queue(system, name string) graph.NodeKey {
	return graph.NodeKey{Kind: graph.NodeQueue, Group: system, Name: name}
}

func TestTranslateRules(t *testing.T) {
	tests := []struct {
		name   string
		kind   ptrace.SpanKind
		status ptrace.StatusCode
		attrs  map[string]any
		want   derived
	}{
		// Protocols and peers, current vs legacy names.
		{
			name: "http client current", kind: client,
			attrs: map[string]any{"http.request.method": "GET", "server.address": "api.stripe.com", "server.port": 443, "http.response.status_code": 200},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("api.stripe.com:443")},
		},
		{
			name: "http client legacy", kind: client,
			attrs: map[string]any{"http.method": "GET", "net.peer.name": "api.stripe.com", "net.peer.port": 443, "http.status_code": 200},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("api.stripe.com:443")},
		},
		{
			name: "http client url.full only", kind: client,
			attrs: map[string]any{"url.full": "https://user:pw@api.github.com:8443/repos?x=1#f"},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("api.github.com:8443")},
		},
		{
			name: "http client legacy http.url only", kind: client,
			attrs: map[string]any{"http.url": "http://legacy.example.com/path"},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("legacy.example.com")},
		},
		{
			name: "http client url without scheme falls back to url.Parse", kind: client,
			attrs: map[string]any{"url.full": "//cdn.example.com/x"},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("cdn.example.com")},
		},
		{
			name: "http server has no peer", kind: server,
			attrs: map[string]any{"http.request.method": "GET", "server.address": "me", "url.path": "/"},
			want:  derived{Protocol: graph.ProtocolHTTP},
		},
		{
			name: "http.target legacy", kind: server,
			attrs: map[string]any{"http.target": "/x"},
			want:  derived{Protocol: graph.ProtocolHTTP},
		},
		{
			name: "status code alone means http", kind: server,
			attrs: map[string]any{"http.response.status_code": 204},
			want:  derived{Protocol: graph.ProtocolHTTP},
		},
		{
			name: "service.peer.name beats server.address", kind: client,
			attrs: map[string]any{"service.peer.name": "stripe", "peer.service": "old", "server.address": "api.stripe.com"},
			want:  derived{Peer: ext("stripe")},
		},
		{
			name: "peer.service legacy", kind: client,
			attrs: map[string]any{"peer.service": "stripe", "server.address": "api.stripe.com"},
			want:  derived{Peer: ext("stripe")},
		},
		{
			name: "server.address without port", kind: client,
			attrs: map[string]any{"server.address": "ldap.internal"},
			want:  derived{Peer: ext("ldap.internal")},
		},
		{
			name: "network.peer.address", kind: client,
			attrs: map[string]any{"network.peer.address": "10.1.2.3", "network.peer.port": 6379},
			want:  derived{Peer: ext("10.1.2.3:6379")},
		},
		{
			name: "legacy http.host", kind: client,
			attrs: map[string]any{"http.method": "GET", "http.scheme": "https", "http.host": "api.example.com:8443", "http.target": "/x"},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("api.example.com:8443")},
		},
		{
			name: "legacy net.sock.peer.addr", kind: client,
			attrs: map[string]any{"net.sock.peer.addr": "10.0.0.7", "net.sock.peer.port": 5672},
			want:  derived{Peer: ext("10.0.0.7:5672")},
		},
		{
			name: "legacy net.peer.ip with net.peer.port", kind: client,
			attrs: map[string]any{"net.peer.ip": "10.0.0.8", "net.peer.port": 11211},
			want:  derived{Peer: ext("10.0.0.8:11211")},
		},
		{
			name: "network.peer.address beats legacy socket names", kind: client,
			attrs: map[string]any{"network.peer.address": "10.0.0.1", "net.sock.peer.addr": "10.0.0.2", "net.peer.ip": "10.0.0.3", "net.peer.port": 1},
			want:  derived{Peer: ext("10.0.0.1")},
		},
		{
			name: "host name beats address", kind: client,
			attrs: map[string]any{"network.peer.address": "10.0.0.1", "http.host": "h", "url.full": "http://u/"},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("h")},
		},
		{
			name: "address beats url", kind: client,
			attrs: map[string]any{"network.peer.address": "10.0.0.1", "network.peer.port": 80, "url.full": "http://u/"},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("10.0.0.1:80")},
		},
		{
			name: "server.address beats net.peer.name", kind: client,
			attrs: map[string]any{"server.address": "new", "net.peer.name": "old", "net.peer.port": 1},
			want:  derived{Peer: ext("new")},
		},
		{
			name: "client without any peer", kind: client,
			attrs: map[string]any{"http.request.method": "GET"},
			want:  derived{Protocol: graph.ProtocolHTTP},
		},
		{
			name: "grpc current", kind: client,
			attrs: map[string]any{"rpc.system.name": "grpc", "server.address": "payments", "server.port": 9090},
			want:  derived{Protocol: graph.ProtocolGRPC, Peer: ext("payments:9090")},
		},
		{
			name: "grpc legacy", kind: client,
			attrs: map[string]any{"rpc.system": "grpc", "net.peer.name": "payments", "net.peer.port": 9090},
			want:  derived{Protocol: graph.ProtocolGRPC, Peer: ext("payments:9090")},
		},
		{
			name: "other rpc system", kind: server,
			attrs: map[string]any{"rpc.system": "apache_dubbo"},
			want:  derived{Protocol: graph.ProtocolRPC},
		},
		{
			name: "rpc.system.name beats rpc.system", kind: server,
			attrs: map[string]any{"rpc.system.name": "jsonrpc", "rpc.system": "grpc"},
			want:  derived{Protocol: graph.ProtocolRPC},
		},
		{
			name: "rpc beats http", kind: server,
			attrs: map[string]any{"rpc.system": "grpc", "http.request.method": "POST"},
			want:  derived{Protocol: graph.ProtocolGRPC},
		},
		{
			name: "db current", kind: client,
			attrs: map[string]any{"db.system.name": "postgresql", "db.namespace": "orders", "server.address": "pg-1", "server.port": 5432},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("postgresql", "orders")},
		},
		{
			name: "db legacy", kind: client,
			attrs: map[string]any{"db.system": "mysql", "db.name": "users", "net.peer.name": "mysql-1"},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("mysql", "users")},
		},
		{
			name: "db.system.name beats db.system", kind: client,
			attrs: map[string]any{"db.system.name": "postgresql", "db.system": "postgres", "db.namespace": "x"},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("postgresql", "x")},
		},
		{
			name: "redis database index qualified by its server", kind: client,
			attrs: map[string]any{"db.system.name": "redis", "db.namespace": "0", "server.address": "cache-1", "server.port": 6379},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("redis", "cache-1/0")},
		},
		{
			name: "numeric namespace without a server stays", kind: client,
			attrs: map[string]any{"db.system.name": "redis", "db.namespace": "3"},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("redis", "3")},
		},
		{
			name: "db name from server.address", kind: client,
			attrs: map[string]any{"db.system.name": "redis", "server.address": "cache-1", "server.port": 6379},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("redis", "cache-1")},
		},
		{
			name: "db name from net.peer.name", kind: client,
			attrs: map[string]any{"db.system": "redis", "net.peer.name": "cache-2"},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("redis", "cache-2")},
		},
		{
			name: "db name defaults to the system", kind: client,
			attrs: map[string]any{"db.system": "sqlite"},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("sqlite", "sqlite")},
		},
		{
			name: "db beats http (elasticsearch)", kind: client,
			attrs: map[string]any{"db.system.name": "elasticsearch", "http.request.method": "GET", "url.full": "http://es:9200/_search", "server.address": "es"},
			want:  derived{Protocol: graph.ProtocolDB, Peer: db("elasticsearch", "es")},
		},
		{
			name: "db server span has no peer", kind: server,
			attrs: map[string]any{"db.system": "postgresql", "db.name": "x"},
			want:  derived{Protocol: graph.ProtocolDB},
		},
		{
			name: "no known attributes", kind: internal,
			attrs: map[string]any{"code.function": "main", "thread.id": 4},
			want:  derived{},
		},

		// Errors.
		{
			name: "5xx server is an error even without status", kind: server,
			attrs: map[string]any{"http.response.status_code": 503},
			want:  derived{Protocol: graph.ProtocolHTTP, Error: true},
		},
		{
			name: "legacy 5xx", kind: server, status: errCode,
			attrs: map[string]any{"http.status_code": 500},
			want:  derived{Protocol: graph.ProtocolHTTP, Error: true},
		},
		{
			name: "4xx client with status ERROR is not an error", kind: client, status: errCode,
			attrs: map[string]any{"http.response.status_code": 404, "server.address": "api"},
			want:  derived{Protocol: graph.ProtocolHTTP, Peer: ext("api")},
		},
		{
			name: "legacy 4xx with status ERROR is not an error", kind: client, status: errCode,
			attrs: map[string]any{"http.status_code": 429},
			want:  derived{Protocol: graph.ProtocolHTTP},
		},
		{
			name: "current status code wins over legacy", kind: server,
			attrs: map[string]any{"http.response.status_code": 200, "http.status_code": 500},
			want:  derived{Protocol: graph.ProtocolHTTP},
		},
		{
			name: "grpc NOT_FOUND is not an error", kind: client, status: errCode,
			attrs: map[string]any{"rpc.system": "grpc", "rpc.grpc.status_code": 5},
			want:  derived{Protocol: graph.ProtocolGRPC},
		},
		{
			name: "grpc UNAVAILABLE is an error", kind: client, status: errCode,
			attrs: map[string]any{"rpc.system": "grpc", "rpc.grpc.status_code": 14},
			want:  derived{Protocol: graph.ProtocolGRPC, Error: true},
		},
		{
			name: "rpc.response.status_code NOT_FOUND is not an error", kind: server, status: errCode,
			attrs: map[string]any{"rpc.system.name": "grpc", "rpc.response.status_code": "NOT_FOUND"},
			want:  derived{Protocol: graph.ProtocolGRPC},
		},
		{
			name: "rpc.response.status_code DEADLINE_EXCEEDED is an error", kind: server, status: errCode,
			attrs: map[string]any{"rpc.system.name": "grpc", "rpc.response.status_code": "DEADLINE_EXCEEDED"},
			want:  derived{Protocol: graph.ProtocolGRPC, Error: true},
		},
		{
			name: "connect lower-case code name", kind: server, status: errCode,
			attrs: map[string]any{"rpc.system.name": "connectrpc", "rpc.response.status_code": "invalid_argument"},
			want:  derived{Protocol: graph.ProtocolRPC},
		},
		{
			name: "unknown rpc status name keeps status ERROR", kind: server, status: errCode,
			attrs: map[string]any{"rpc.system.name": "jsonrpc", "rpc.response.status_code": "-32602"},
			want:  derived{Protocol: graph.ProtocolRPC, Error: true},
		},
		{
			name: "status ERROR without codes is an error", kind: internal, status: errCode,
			want: derived{Error: true},
		},
		{
			name: "status OK is not an error", kind: server, status: okCode,
			attrs: map[string]any{"rpc.system": "grpc", "rpc.grpc.status_code": 13},
			want:  derived{Protocol: graph.ProtocolGRPC},
		},

		// Retries.
		{
			name: "resend count", kind: client,
			attrs: map[string]any{"http.request.method": "GET", "http.request.resend_count": 2},
			want:  derived{Protocol: graph.ProtocolHTTP, ResendCount: 2},
		},
		{
			name: "resend count as string is ignored", kind: client,
			attrs: map[string]any{"http.request.method": "GET", "http.request.resend_count": "2"},
			want:  derived{Protocol: graph.ProtocolHTTP},
		},

		// Messaging operations.
		{
			name: "kafka publish current", kind: producer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.operation.type": "send", "messaging.destination.name": "orders", "server.address": "kafka-0"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingPublish, Destination: topic("kafka", "orders")},
		},
		{
			name: "publish legacy", kind: producer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.operation": "publish", "messaging.destination": "orders"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingPublish, Destination: topic("kafka", "orders")},
		},
		{
			name: "create", kind: producer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.operation.type": "create"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingPublish, Destination: topic("kafka", "")},
		},
		{
			name: "receive is a CLIENT span with no peer", kind: client,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.operation.type": "receive", "messaging.destination.name": "jobs", "server.address": "rmq"},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingReceive, Destination: queue("rabbitmq", "jobs")},
		},
		{
			name: "deliver legacy", kind: consumer,
			attrs: map[string]any{"messaging.system": "nats", "messaging.operation": "deliver", "messaging.destination.name": "events"},
			want:  derived{Protocol: graph.ProtocolNATS, Messaging: graph.MessagingProcess, Destination: topic("nats", "events")},
		},
		{
			name: "settle", kind: client,
			attrs: map[string]any{"messaging.system": "servicebus", "messaging.operation.type": "settle", "messaging.destination.name": "q"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingSettle, Destination: queue("servicebus", "q")},
		},
		{
			name: "ack via operation.name", kind: client,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.operation.name": "ack"},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingSettle, Destination: queue("rabbitmq", "")},
		},
		{
			name: "operation.type beats legacy operation", kind: consumer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.operation.type": "receive", "messaging.operation": "process"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingReceive, Destination: topic("kafka", "")},
		},
		{
			name: "producer kind without operation", kind: producer,
			attrs: map[string]any{"messaging.system": "pulsar", "messaging.destination.name": "t"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingPublish, Destination: topic("pulsar", "t")},
		},
		{
			name: "consumer kind without operation", kind: consumer,
			attrs: map[string]any{"messaging.system": "aws_sqs", "messaging.destination.name": "q"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingProcess, Destination: queue("aws_sqs", "q")},
		},
		{
			name: "unknown operation on consumer falls back to kind", kind: consumer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.operation.type": "poll"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingProcess, Destination: topic("kafka", "")},
		},
		{
			name: "operation without messaging.system is not messaging", kind: producer,
			attrs: map[string]any{"messaging.operation.type": "send", "messaging.destination.name": "orders"},
			want:  derived{},
		},
		{
			name: "messaging beats http and rpc", kind: client,
			attrs: map[string]any{"messaging.system": "aws_sqs", "messaging.operation.type": "send", "rpc.system": "aws-api", "http.request.method": "POST", "messaging.destination.name": "q"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingPublish, Destination: queue("aws_sqs", "q")},
		},

		// Destinations.
		{
			name: "legacy messaging.source.name on consumer", kind: consumer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.source.name": "orders"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingProcess, Destination: topic("kafka", "orders")},
		},
		{
			name: "destination.name beats legacy names", kind: consumer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.destination.name": "new", "messaging.destination": "old", "messaging.source.name": "older"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingProcess, Destination: topic("kafka", "new")},
		},
		{
			name: "legacy destination.kind queue on kafka", kind: producer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.destination.name": "x", "messaging.destination.kind": "queue"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingPublish, Destination: queue("kafka", "x")},
		},
		{
			// amqplib says topic for every exchange; a RabbitMQ
			// destination is a queue whatever it says, so that publisher
			// and consumer meet at one node.
			name: "legacy destination_kind topic on rabbitmq", kind: producer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination": "amq.topic", "messaging.destination_kind": "topic"},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingPublish, Destination: queue("rabbitmq", "amq.topic")},
		},
		{
			name: "rabbitmq named exchange and routing key", kind: consumer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination.name": "orders", "messaging.rabbitmq.destination.routing_key": "order.created"},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingProcess, Destination: queue("rabbitmq", "orders:order.created")},
		},
		{
			name: "rabbitmq default exchange routes by key", kind: producer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination.name": "amq.default", "rabbitmq.destination.routing_key": "email-jobs"},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingPublish, Destination: queue("rabbitmq", "email-jobs")},
		},
		{
			name: "rabbitmq stable name kept", kind: producer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination.name": "orders:order.created", "messaging.rabbitmq.destination.routing_key": "order.created"},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingPublish, Destination: queue("rabbitmq", "orders:order.created")},
		},
		{
			name: "rabbitmq reply queue stays temporary", kind: producer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination.name": "amq.gen-Xa2", "messaging.destination.temporary": true, "messaging.rabbitmq.destination.routing_key": "amq.gen-Xa2"},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingPublish, Destination: queue("rabbitmq", "(temporary)")},
		},
		{
			name: "unknown legacy kind falls back to system", kind: producer,
			attrs: map[string]any{"messaging.system": "activemq", "messaging.destination.name": "x", "messaging.destination.kind": "stream"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingPublish, Destination: queue("activemq", "x")},
		},
		{
			name: "queue systems", kind: producer,
			attrs: map[string]any{"messaging.system": "ibmmq", "messaging.destination.name": "DEV.QUEUE.1"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingPublish, Destination: queue("ibmmq", "DEV.QUEUE.1")},
		},
		{
			name: "jms is a queue", kind: producer,
			attrs: map[string]any{"messaging.system": "jms", "messaging.destination.name": "q"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingPublish, Destination: queue("jms", "q")},
		},
		{
			name: "gcp_pubsub is a topic", kind: producer,
			attrs: map[string]any{"messaging.system": "gcp_pubsub", "messaging.destination.name": "t"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingPublish, Destination: topic("gcp_pubsub", "t")},
		},
		{
			name: "temporary destination", kind: producer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination.name": "amq.gen-JzTY20BRgKO-HjmUJj0wLg", "messaging.destination.temporary": true},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingPublish, Destination: queue("rabbitmq", "(temporary)")},
		},
		{
			name: "anonymous destination", kind: producer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination.anonymous": true},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingPublish, Destination: queue("rabbitmq", "(temporary)")},
		},
		{
			name: "legacy temp_destination", kind: producer,
			attrs: map[string]any{"messaging.system": "jms", "messaging.destination": "TempQueue-1", "messaging.temp_destination": true},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingPublish, Destination: queue("jms", "(temporary)")},
		},
		{
			name: "temporary false keeps the name", kind: producer,
			attrs: map[string]any{"messaging.system": "rabbitmq", "messaging.destination.name": "jobs", "messaging.destination.temporary": false},
			want:  derived{Protocol: graph.ProtocolRabbitMQ, Messaging: graph.MessagingPublish, Destination: queue("rabbitmq", "jobs")},
		},

		// Consumer groups.
		{
			name: "consumer.group.name current", kind: consumer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.consumer.group.name": "billing", "messaging.kafka.consumer.group": "old"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingProcess, Destination: topic("kafka", ""), ConsumerGroup: "billing"},
		},
		{
			name: "kafka.consumer.group legacy", kind: consumer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.kafka.consumer.group": "billing"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingProcess, Destination: topic("kafka", ""), ConsumerGroup: "billing"},
		},
		{
			name: "kafka.consumer_group older", kind: consumer,
			attrs: map[string]any{"messaging.system": "kafka", "messaging.kafka.consumer_group": "billing"},
			want:  derived{Protocol: graph.ProtocolKafka, Messaging: graph.MessagingProcess, Destination: topic("kafka", ""), ConsumerGroup: "billing"},
		},
		{
			name: "subscription name", kind: consumer,
			attrs: map[string]any{"messaging.system": "gcp_pubsub", "messaging.destination.subscription.name": "sub-1"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingProcess, Destination: topic("gcp_pubsub", ""), ConsumerGroup: "sub-1"},
		},
		{
			name: "eventhubs consumer group", kind: consumer,
			attrs: map[string]any{"messaging.system": "eventhubs", "messaging.eventhubs.consumer.group": "$Default"},
			want:  derived{Protocol: graph.ProtocolMessaging, Messaging: graph.MessagingProcess, Destination: topic("eventhubs", ""), ConsumerGroup: "$Default"},
		},

		// Wrong types.
		{
			name: "wrong-typed attributes read as absent", kind: client, status: errCode,
			attrs: map[string]any{
				"http.request.method": 1, "http.response.status_code": "404", "server.address": 10,
				"server.port": "443", "net.peer.name": "fallback", "db.system": true, "rpc.grpc.status_code": "5",
				"messaging.system": 3.5, "messaging.destination.temporary": "true",
			},
			want: derived{Peer: ext("fallback"), Error: true},
		},
		{
			name: "map and slice values are ignored", kind: client,
			attrs: map[string]any{"server.address": map[string]any{"a": "b"}, "peer.service": []any{"x"}, "url.full": []byte("http://x")},
			want:  derived{},
		},
		{
			name: "wrong-typed port keeps the host", kind: client,
			attrs: map[string]any{"server.address": "api", "server.port": "443"},
			want:  derived{Peer: ext("api")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := translateOne(t, spanSpec{name: "op", kind: tt.kind, status: tt.status, attrs: tt.attrs})
			if got := deriveOf(s); got != tt.want {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
			if s.Operation != "op" {
				t.Errorf("Operation = %q, want %q", s.Operation, "op")
			}
		})
	}
}

func TestTranslateLinks(t *testing.T) {
	other := pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	p1 := pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, 1}
	p2 := pcommon.SpanID{2, 2, 2, 2, 2, 2, 2, 2}
	p3 := pcommon.SpanID{3, 3, 3, 3, 3, 3, 3, 3}
	td := buildTraces(t, resourceSpec{
		attrs: map[string]any{"service.name": "billing"},
		spans: []spanSpec{
			{
				name: "process orders", kind: consumer, spanID: pcommon.SpanID{9, 1},
				attrs: map[string]any{"messaging.system": "kafka", "messaging.destination.name": "orders"},
				links: []ptrace.SpanLink{
					newLink(other, p1),
					newLink(pcommon.TraceID{}, p2),   // zero trace id: skipped
					newLink(other, pcommon.SpanID{}), // zero span id: skipped
					newLink(testTraceID, p3),
				},
			},
			{name: "no links", spanID: pcommon.SpanID{9, 2}},
			{
				name: "only zero links", spanID: pcommon.SpanID{9, 3},
				links: []ptrace.SpanLink{newLink(pcommon.TraceID{}, pcommon.SpanID{})},
			},
			{name: "one link", spanID: pcommon.SpanID{9, 4}, links: []ptrace.SpanLink{newLink(other, p2)}},
		},
	})
	spans, invalid := Translate(nil, td)
	if invalid != 0 || len(spans) != 4 {
		t.Fatalf("got %d spans, %d invalid", len(spans), invalid)
	}
	want := [][]graph.SpanRef{
		{{Trace: graph.TraceID(other), Span: graph.SpanID(p1)}, {Trace: graph.TraceID(testTraceID), Span: graph.SpanID(p3)}},
		nil,
		nil,
		{{Trace: graph.TraceID(other), Span: graph.SpanID(p2)}},
	}
	for i, w := range want {
		if !reflect.DeepEqual(spans[i].Links, w) {
			t.Errorf("span %d links = %v, want %v", i, spans[i].Links, w)
		}
	}
	// Appending to one span's links must not overwrite the next span's.
	_ = append(spans[0].Links, graph.SpanRef{})
	if !reflect.DeepEqual(spans[3].Links, want[3]) {
		t.Errorf("append to span 0 links changed span 3 links: %v", spans[3].Links)
	}
}

func TestTranslateDropsZeroIDs(t *testing.T) {
	td := buildTraces(t,
		resourceSpec{
			attrs: map[string]any{"service.name": "a"},
			spans: []spanSpec{
				{name: "ok-1"},
				{name: "zero trace", zeroIDs: true, spanID: testSpanID},
				{name: "zero span", zeroIDs: true, traceID: testTraceID},
				{name: "both zero", zeroIDs: true},
			},
		},
		resourceSpec{attrs: map[string]any{"service.name": "b"}, spans: []spanSpec{{name: "ok-2"}}},
	)
	prefix := []graph.Span{{Operation: "kept"}}
	spans, invalid := Translate(prefix, td)
	if invalid != 3 {
		t.Errorf("invalid = %d, want 3", invalid)
	}
	var got []string
	for _, s := range spans {
		got = append(got, s.Service+"/"+s.Operation)
	}
	want := []string{"/kept", "a/ok-1", "b/ok-2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spans = %v, want %v", got, want)
	}
}

func TestTranslateEmpty(t *testing.T) {
	spans, invalid := Translate(nil, ptrace.NewTraces())
	if len(spans) != 0 || invalid != 0 {
		t.Errorf("got %d spans, %d invalid", len(spans), invalid)
	}
}

func TestJoinHostPortCache(t *testing.T) {
	var tr translator
	for i := 0; i < 3*addrCacheSize; i++ {
		host := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}[i%10]
		port := int64(1000 + i%3)
		want := host + ":" + []string{"1000", "1001", "1002"}[i%3]
		if got := tr.joinHostPort(host, port); got != want {
			t.Fatalf("joinHostPort(%q, %d) = %q, want %q", host, port, got, want)
		}
	}
	if got := tr.joinHostPort("a", 0); got != "a" {
		t.Errorf("port 0: got %q", got)
	}
	long := string(make([]byte, 100))
	if got := tr.joinHostPort(long, 1); got != long+":1" {
		t.Errorf("long host: got %d bytes", len(got))
	}
}

func TestURLHost(t *testing.T) {
	tests := map[string]string{
		"https://api.example.com/v1?x=y":    "api.example.com",
		"http://u:p@h:8080":                 "h:8080",
		"http://[::1]:9000/x":               "[::1]:9000",
		"https://h?q=a/b":                   "h",
		"https://h#frag":                    "h",
		"//h2/path":                         "h2",
		"not a url":                         "",
		"":                                  "",
		"http://h%41st/":                    "",
		"http://bad host/":                  "",
		"mailto:someone@example.com":        "",
		"http:///nohost":                    "",
		"https://user@host.example.com:443": "host.example.com:443",
	}
	for in, want := range tests {
		if got := urlHost(in); got != want {
			t.Errorf("urlHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSanitizeCountsPerSpan: a resource's names are sanitized once, but
// what was changed counts for each of its spans, as for a span's own names.
func TestSanitizeCountsPerSpan(t *testing.T) {
	long := strings.Repeat("n", MaxNameBytes+10)
	td := buildTraces(t,
		resourceSpec{
			attrs: map[string]any{"service.name": "bad\xffsvc", "service.namespace": long},
			spans: []spanSpec{{name: "a"}, {name: "b\xfe"}, {name: "dropped", zeroIDs: true}},
		},
		resourceSpec{attrs: map[string]any{"service.name": "no spans\xff"}},
		resourceSpec{attrs: map[string]any{"service.name": "fine"}, spans: []spanSpec{{name: "c"}}},
	)
	var tr translator
	spans, invalid := tr.translate(nil, td)
	require.Equal(t, 1, invalid)
	require.Len(t, spans, 3)
	for _, s := range spans[:2] {
		require.Equal(t, "bad\uFFFDsvc", s.Service)
		require.Len(t, s.Namespace, MaxNameBytes)
		require.True(t, strings.HasSuffix(s.Namespace, "…"))
	}
	require.Equal(t, "b\uFFFD", spans[1].Operation)
	require.Equal(t, "fine", spans[2].Service)
	require.Equal(t, 3, tr.invalidUTF8, "the service of 2 spans, the operation of 1")
	require.Equal(t, 2, tr.tooLong, "the namespace of 2 spans")
}

// TestTranslateCallIdentity: what tells one call from another (the HTTP
// target beyond a span named by its method alone), a throttled call, and a
// client span that names its own service as its peer.
func TestTranslateCallIdentity(t *testing.T) {
	type got struct {
		Target    string
		Throttled bool
		Error     bool
		SelfPeer  bool
	}
	tests := []struct {
		name  string
		svc   string
		kind  ptrace.SpanKind
		attrs map[string]any
		want  got
	}{
		{name: "url.template wins", svc: "web", kind: client,
			attrs: map[string]any{"http.request.method": "GET", "url.template": "/users/{id}", "url.full": "http://api/users/7?x=1"},
			want:  got{Target: "/users/{id}"}},
		{name: "path of url.full, no query", svc: "web", kind: client,
			attrs: map[string]any{"http.request.method": "GET", "url.full": "https://api:8443/users/7?x=1#f"},
			want:  got{Target: "/users/7"}},
		{name: "legacy http.url without path", svc: "web", kind: client,
			attrs: map[string]any{"http.method": "GET", "http.url": "http://api?x=1"},
			want:  got{Target: "/"}},
		{name: "legacy http.target", svc: "web", kind: client,
			attrs: map[string]any{"http.method": "GET", "http.target": "/orders?page=2", "net.peer.name": "orders"},
			want:  got{Target: "/orders"}},
		{name: "server spans keep no target", svc: "web", kind: server,
			attrs: map[string]any{"http.request.method": "GET", "url.path": "/x"}},
		{name: "HTTP 429 is throttled, not the callee's error", svc: "web", kind: client,
			attrs: map[string]any{"http.request.method": "GET", "url.path": "/x", "http.response.status_code": 429},
			want:  got{Target: "/x", Throttled: true}},
		{name: "peer.service naming itself (HotROD)", svc: "redis", kind: client,
			attrs: map[string]any{"peer.service": "redis", "redis.key": "k"},
			want:  got{SelfPeer: true}},
		{name: "server.address naming itself", svc: "mysql", kind: client,
			attrs: map[string]any{"db.system": "mysql", "server.address": "mysql", "db.name": "customers"},
			want:  got{SelfPeer: true}},
		{name: "a database named after its service is no self peer", svc: "orders", kind: client,
			attrs: map[string]any{"db.system": "postgresql", "db.namespace": "orders", "server.address": "pg-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			td := buildTraces(t, resourceSpec{attrs: map[string]any{"service.name": tc.svc},
				spans: []spanSpec{{name: "GET", kind: tc.kind, attrs: tc.attrs, start: 1, end: 2}}})
			spans, _ := Translate(nil, td)
			require.Len(t, spans, 1)
			s := spans[0]
			require.Equal(t, tc.want, got{Target: s.Target, Throttled: s.Throttled, Error: s.Error, SelfPeer: s.SelfPeer})
		})
	}
}

func TestAdjustedCount(t *testing.T) {
	for ts, want := range map[string]float64{
		"":                        0,
		"ot=th:0":                 1,
		"ot=th:8":                 2,
		"ot=th:c":                 4,
		"ot=th:fd70a4":            100.00002,
		"vendor=x,ot=rv:abc;th:c": 4,
		"ot=p:3":                  8,
		"ot=th:zz":                0,
		"ot=th:123456789abcdef0":  0,
		"other=th:c":              0,
	} {
		require.InDelta(t, want, adjustedCount(ts), 1e-3, ts)
	}
	td := buildTraces(t, resourceSpec{attrs: map[string]any{"service.name": "a"},
		spans: []spanSpec{{name: "GET /", kind: server, attrs: map[string]any{"sampler.type": "probabilistic", "sampler.param": 0.1}, start: 1, end: 2}}})
	spans, _ := Translate(nil, td)
	require.InDelta(t, 10, spans[0].Weight, 1e-9, "Jaeger's sampler tags")
}
