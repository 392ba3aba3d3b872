package graph

import (
	"testing"

	"github.com/seed-a49a8342/cartograph/graph/pairing"
)

// TestSpanKindsArePairingKinds: the graph's span kinds and the pairing
// store's are both OTLP's numbers, so that pairingKind is a conversion.
func TestSpanKindsArePairingKinds(t *testing.T) {
	for k, want := range map[SpanKind]pairing.Kind{
		SpanUnspecified: pairing.KindUnspecified,
		SpanInternal:    pairing.KindInternal,
		SpanServer:      pairing.KindServer,
		SpanClient:      pairing.KindClient,
		SpanProducer:    pairing.KindProducer,
		SpanConsumer:    pairing.KindConsumer,
	} {
		if got := pairingKind(k); got != want {
			t.Errorf("span kind %d is pairing kind %d, want %d", k, got, want)
		}
	}
}
