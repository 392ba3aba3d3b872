package brokermetrics

import "strings"

// family is the label "family" of cartograph_ingest_metric_points_total.
type family uint8

const (
	famUnknown family = iota
	famKafka
	famRabbitMQ
	famJetStream
	famCircuit
	famRetry
	numFamilies
)

var familyNames = [numFamilies]string{"unknown", "kafka", "rabbitmq", "jetstream", "circuit_breaker", "retry"}

func (f family) String() string { return familyNames[f] }

// outcome is the label "outcome" of cartograph_ingest_metric_points_total.
type outcome uint8

const (
	outcomeAccepted outcome = iota // in a sample a sink took
	outcomeRejected                // malformed, or in a sample a sink refused
	outcomeIgnored                 // not used (unknown metric, histogram, staleness marker, superseded)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"accepted", "rejected", "ignored"}

func (o outcome) String() string { return outcomeNames[o] }

// kind is what a metric's value means.
type kind uint8

const (
	kindNone kind = iota // counted as ignored

	kindKafkaLag       // per-partition lag
	kindKafkaLagSum    // lag summed over a topic's partitions
	kindKafkaCommitted // per-partition committed offset
	kindKafkaMembers   // group members
	kindKafkaEnd       // partition end offset, per topic and partition

	kindRabbitState     // rabbitmq.message.current{state}
	kindRabbitReady     // Prometheus messages ready
	kindRabbitUnacked   // Prometheus messages unacknowledged
	kindRabbitConsumers // consumers
	kindRabbitPublished // cumulative published
	kindRabbitAcked     // cumulative acknowledged

	kindJSPending    // consumer num_pending
	kindJSAckPending // consumer num_ack_pending
	kindJSAckFloor   // consumer ack floor stream sequence
	kindJSLastSeq    // stream last sequence

	kindR4jState    // resilience4j circuitbreaker.state{name,state}
	kindEnvoyRqOpen // Envoy circuit_breakers.*.rq_open{envoy_cluster_name}

	kindEnvoyRetry   // Envoy upstream_rq_retry
	kindEnvoyRqTotal // Envoy upstream_rq_total
	kindR4jRetry     // resilience4j retry.calls{name,kind}
)

// spec says how to read a metric.
type spec struct {
	fam  family
	kind kind
	// group is the Kafka group attribute; prom marks the Prometheus forms of
	// RabbitMQ metrics, whose queue and vhost are point attributes rather
	// than resource attributes.
	group string
	prom  bool
}

// lookup returns how to read the metric called name. Names it does not know
// get kindNone, and the family their prefix suggests, for the ignored count.
// It is a switch on the name alone, so unknown metrics cost no more than this.
func lookup(name string) spec {
	switch name {
	// OpenTelemetry Collector kafkametrics receiver.
	case "kafka.consumer_group.lag":
		return spec{fam: famKafka, kind: kindKafkaLag, group: "group"}
	case "kafka.consumer_group.lag_sum":
		return spec{fam: famKafka, kind: kindKafkaLagSum, group: "group"}
	case "kafka.consumer_group.offset":
		return spec{fam: famKafka, kind: kindKafkaCommitted, group: "group"}
	case "kafka.consumer_group.members":
		return spec{fam: famKafka, kind: kindKafkaMembers, group: "group"}
	case "kafka.partition.current_offset":
		return spec{fam: famKafka, kind: kindKafkaEnd}
	// kafka_exporter (danielqsj), label "consumergroup".
	case "kafka_consumergroup_lag":
		return spec{fam: famKafka, kind: kindKafkaLag, group: "consumergroup"}
	case "kafka_consumergroup_lag_sum":
		return spec{fam: famKafka, kind: kindKafkaLagSum, group: "consumergroup"}
	case "kafka_consumergroup_current_offset":
		return spec{fam: famKafka, kind: kindKafkaCommitted, group: "consumergroup"}
	case "kafka_consumergroup_members":
		return spec{fam: famKafka, kind: kindKafkaMembers, group: "consumergroup"}
	case "kafka_topic_partition_current_offset":
		return spec{fam: famKafka, kind: kindKafkaEnd}
	// kafka-lag-exporter (seglo), label "group"; its _lag_seconds has no
	// field in lag.Sample yet and is ignored.
	case "kafka_consumergroup_group_lag":
		return spec{fam: famKafka, kind: kindKafkaLag, group: "group"}
	case "kafka_consumergroup_group_topic_sum_lag":
		return spec{fam: famKafka, kind: kindKafkaLagSum, group: "group"}
	case "kafka_consumergroup_group_offset":
		return spec{fam: famKafka, kind: kindKafkaCommitted, group: "group"}
	case "kafka_partition_latest_offset":
		return spec{fam: famKafka, kind: kindKafkaEnd}

	// OpenTelemetry Collector rabbitmq receiver: queue and vhost are
	// resource attributes.
	case "rabbitmq.message.current":
		return spec{fam: famRabbitMQ, kind: kindRabbitState}
	case "rabbitmq.consumer.count":
		return spec{fam: famRabbitMQ, kind: kindRabbitConsumers}
	case "rabbitmq.message.published":
		return spec{fam: famRabbitMQ, kind: kindRabbitPublished}
	case "rabbitmq.message.acknowledged":
		return spec{fam: famRabbitMQ, kind: kindRabbitAcked}
	// RabbitMQ's Prometheus plugin (per-object and detailed metrics) and
	// kbudde/rabbitmq_exporter: labels vhost and queue.
	case "rabbitmq_queue_messages_ready", "rabbitmq_detailed_queue_messages_ready":
		return spec{fam: famRabbitMQ, kind: kindRabbitReady, prom: true}
	case "rabbitmq_queue_messages_unacked", "rabbitmq_detailed_queue_messages_unacked",
		"rabbitmq_queue_messages_unacknowledged":
		return spec{fam: famRabbitMQ, kind: kindRabbitUnacked, prom: true}
	case "rabbitmq_queue_consumers", "rabbitmq_detailed_queue_consumers":
		return spec{fam: famRabbitMQ, kind: kindRabbitConsumers, prom: true}

	// prometheus-nats-exporter -jsz: labels stream_name, consumer_name.
	case "jetstream_consumer_num_pending":
		return spec{fam: famJetStream, kind: kindJSPending}
	case "jetstream_consumer_num_ack_pending":
		return spec{fam: famJetStream, kind: kindJSAckPending}
	case "jetstream_consumer_ack_floor_stream_seq":
		return spec{fam: famJetStream, kind: kindJSAckFloor}
	case "jetstream_stream_last_seq":
		return spec{fam: famJetStream, kind: kindJSLastSeq}

	// resilience4j (Micrometer, OTLP or Prometheus names) and Envoy.
	case "resilience4j.circuitbreaker.state", "resilience4j_circuitbreaker_state":
		return spec{fam: famCircuit, kind: kindR4jState}
	case "envoy_cluster_circuit_breakers_default_rq_open", "envoy_cluster_circuit_breakers_high_rq_open":
		return spec{fam: famCircuit, kind: kindEnvoyRqOpen}
	case "envoy_cluster_upstream_rq_retry", "envoy_cluster_upstream_rq_retry_total":
		return spec{fam: famRetry, kind: kindEnvoyRetry}
	case "envoy_cluster_upstream_rq_total":
		return spec{fam: famRetry, kind: kindEnvoyRqTotal}
	case "resilience4j.retry.calls", "resilience4j_retry_calls", "resilience4j_retry_calls_total":
		return spec{fam: famRetry, kind: kindR4jRetry}
	}
	return spec{fam: familyOf(name)}
}

// familyOf guesses the family of a metric lookup does not read, so that the
// ignored points of a known source are counted under its family.
func familyOf(name string) family {
	switch {
	case strings.HasPrefix(name, "kafka.") || strings.HasPrefix(name, "kafka_"):
		return famKafka
	case strings.HasPrefix(name, "rabbitmq.") || strings.HasPrefix(name, "rabbitmq_"):
		return famRabbitMQ
	case strings.HasPrefix(name, "jetstream_"):
		return famJetStream
	case strings.HasPrefix(name, "resilience4j.circuitbreaker.") || strings.HasPrefix(name, "resilience4j_circuitbreaker_") ||
		strings.HasPrefix(name, "envoy_cluster_circuit_breakers_"):
		return famCircuit
	case strings.HasPrefix(name, "resilience4j.retry.") || strings.HasPrefix(name, "resilience4j_retry_") ||
		strings.HasPrefix(name, "envoy_cluster_upstream_rq_retry"):
		return famRetry
	}
	return famUnknown
}
