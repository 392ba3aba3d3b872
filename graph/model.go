// Package graph builds the live service dependency graph: it pairs spans into
// edges (client->server, producer->destination->consumer), keeps their
// aggregates over a sliding window in mergeable form, and publishes immutable
// Snapshots that detectors and the UI read.
//
// The package knows no wire format, no database and no screen: ingest
// translates OTLP into Span values, and readers only ever see Snapshot values.
package graph

import (
	"fmt"
	"strings"

	"github.com/seed-a49a8342/cartograph/graph/enumtext"
)

// NodeKind is the kind of a graph node.
type NodeKind uint8

// Node kinds, as fixed by SPEC.md.
const (
	NodeService NodeKind = iota + 1
	NodeTopic
	NodeQueue
	NodeDatabase
	NodeExternal
	NodeClient
)

var nodeKindNames = enumtext.Names[NodeKind]{Type: "node kind", List: []string{"", "service", "topic", "queue", "database", "external", "client"}}

// String returns the name of the value.
func (n NodeKind) String() string { return nodeKindNames.String(n) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (n NodeKind) MarshalText() ([]byte, error) { return nodeKindNames.Marshal(n) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (n *NodeKind) UnmarshalText(b []byte) error {
	v, err := nodeKindNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	*n = v
	return nil
}

// EdgeKind says whether an edge is a synchronous call or an asynchronous hop
// through a messaging destination.
type EdgeKind uint8

// Edge kinds.
const (
	EdgeSync EdgeKind = iota + 1
	EdgeAsync
)

var edgeKindNames = enumtext.Names[EdgeKind]{Type: "edge kind", List: []string{"", "sync", "async"}}

// String returns the name of the value.
func (e EdgeKind) String() string { return edgeKindNames.String(e) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (e EdgeKind) MarshalText() ([]byte, error) { return edgeKindNames.Marshal(e) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (e *EdgeKind) UnmarshalText(b []byte) error {
	v, err := edgeKindNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	*e = v
	return nil
}

// Protocol is the protocol an edge's calls or messages travel over.
type Protocol uint8

// Protocols. ProtocolUnknown is valid and means no span said.
const (
	ProtocolUnknown Protocol = iota
	ProtocolHTTP
	ProtocolGRPC
	ProtocolRPC
	ProtocolDB
	ProtocolKafka
	ProtocolRabbitMQ
	ProtocolNATS
	ProtocolMessaging // any other messaging system
	// ProtocolInternal is a hop between services that no span says how it
	// travels: a span whose parent belongs to another service, with no
	// client/server pair and no protocol attribute.
	ProtocolInternal
)

var protocolNames = enumtext.Names[Protocol]{Type: "protocol", List: []string{"", "http", "grpc", "rpc", "db", "kafka", "rabbitmq", "nats", "messaging", "internal"}, ZeroValid: true}

// String returns the name of the value.
func (p Protocol) String() string { return protocolNames.String(p) }

// MarshalText implements encoding.TextMarshaler; values without a name are
// rejected.
func (p Protocol) MarshalText() ([]byte, error) { return protocolNames.Marshal(p) }

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (p *Protocol) UnmarshalText(b []byte) error {
	v, err := protocolNames.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	*p = v
	return nil
}

// IsMessaging reports whether p names a messaging system.
func (p Protocol) IsMessaging() bool {
	return p == ProtocolKafka || p == ProtocolRabbitMQ || p == ProtocolNATS || p == ProtocolMessaging
}

// NodeKey identifies a node. For services Group is service.namespace; for
// destinations it is the messaging system; for databases the database system.
type NodeKey struct {
	Kind  NodeKind
	Group string
	Name  string
}

// ID returns the node's stable identifier, "<kind>:<group>/<name>" or
// "<kind>:<name>" when there is no group; '/' and '%' inside parts are escaped
// so distinct keys never share an id.
func (k NodeKey) ID() string {
	var b strings.Builder
	b.Grow(len(k.Group) + len(k.Name) + 12)
	b.WriteString(k.Kind.String())
	b.WriteByte(':')
	if k.Group != "" {
		escapeIDPart(&b, k.Group)
		b.WriteByte('/')
	}
	escapeIDPart(&b, k.Name)
	return b.String()
}

func escapeIDPart(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '/':
			b.WriteString("%2F")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
}

// DestinationKind returns the node kind of a messaging system's
// destinations: a queue for queue brokers (RabbitMQ, SQS, Service Bus,
// ActiveMQ, JMS, IBM MQ), a topic otherwise (Kafka, NATS, Pulsar, Pub/Sub,
// SNS, Event Hubs, RocketMQ, ...).
func DestinationKind(system string) NodeKind {
	switch system {
	case "rabbitmq", "aws_sqs", "AmazonSQS", "servicebus", "activemq", "jms", "ibmmq":
		return NodeQueue
	}
	return NodeTopic
}

// MessagingProtocol returns the protocol of a messaging system.
func MessagingProtocol(system string) Protocol {
	switch system {
	case "kafka":
		return ProtocolKafka
	case "rabbitmq":
		return ProtocolRabbitMQ
	case "nats":
		return ProtocolNATS
	}
	return ProtocolMessaging
}

// OverflowName is the name of the overflow node of each kind: the node that
// stands for every node of that kind beyond the graph's node limit (a
// sender inventing a service, destination or peer name per span cannot grow
// the graph past it). Its id is "<kind>:__overflow__"; a real node named
// so would merge into it.
const OverflowName = "__overflow__"

// IsOverflow reports whether k is the overflow node of its kind.
func (k NodeKey) IsOverflow() bool { return k.Name == OverflowName && k.Group == "" }

// DisplayName returns the node's name for people: its Name, or for an
// overflow node "(other services)", "(other topics)" and so on.
func (k NodeKey) DisplayName() string {
	if !k.IsOverflow() {
		return k.Name
	}
	switch k.Kind {
	case NodeService:
		return "(other services)"
	case NodeTopic:
		return "(other topics)"
	case NodeQueue:
		return "(other queues)"
	case NodeDatabase:
		return "(other databases)"
	case NodeExternal:
		return "(other externals)"
	}
	return "(others)"
}
