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

var nodeKindNames = [...]string{"", "service", "topic", "queue", "database", "external", "client"}

// String returns the SPEC name of the kind.
func (k NodeKind) String() string {
	if int(k) < len(nodeKindNames) && k != 0 {
		return nodeKindNames[k]
	}
	return fmt.Sprintf("NodeKind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k NodeKind) MarshalText() ([]byte, error) {
	if k == 0 || int(k) >= len(nodeKindNames) {
		return nil, fmt.Errorf("graph: invalid node kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (k *NodeKind) UnmarshalText(b []byte) error {
	for i := 1; i < len(nodeKindNames); i++ {
		if nodeKindNames[i] == string(b) {
			*k = NodeKind(i)
			return nil
		}
	}
	return fmt.Errorf("graph: unknown node kind %q", b)
}

// EdgeKind says whether an edge is a synchronous call or an asynchronous hop
// through a messaging destination.
type EdgeKind uint8

// Edge kinds.
const (
	EdgeSync EdgeKind = iota + 1
	EdgeAsync
)

var edgeKindNames = [...]string{"", "sync", "async"}

// String returns the SPEC name of the kind.
func (k EdgeKind) String() string {
	if int(k) < len(edgeKindNames) && k != 0 {
		return edgeKindNames[k]
	}
	return fmt.Sprintf("EdgeKind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k EdgeKind) MarshalText() ([]byte, error) {
	if k == 0 || int(k) >= len(edgeKindNames) {
		return nil, fmt.Errorf("graph: invalid edge kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (k *EdgeKind) UnmarshalText(b []byte) error {
	for i := 1; i < len(edgeKindNames); i++ {
		if edgeKindNames[i] == string(b) {
			*k = EdgeKind(i)
			return nil
		}
	}
	return fmt.Errorf("graph: unknown edge kind %q", b)
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
)

var protocolNames = [...]string{"", "http", "grpc", "rpc", "db", "kafka", "rabbitmq", "nats", "messaging"}

// String returns the SPEC name of the protocol ("" when unknown).
func (p Protocol) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// MarshalText implements encoding.TextMarshaler.
func (p Protocol) MarshalText() ([]byte, error) {
	if int(p) >= len(protocolNames) {
		return nil, fmt.Errorf("graph: invalid protocol %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are rejected.
func (p *Protocol) UnmarshalText(b []byte) error {
	for i := range protocolNames {
		if protocolNames[i] == string(b) {
			*p = Protocol(i)
			return nil
		}
	}
	return fmt.Errorf("graph: unknown protocol %q", b)
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
