package brokermetrics_test

import (
	"context"
	"testing"

	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/ingest/brokermetrics"
)

// BenchmarkConsumeKafka1000Partitions measures a kafkametrics request for one
// group on a topic of 1,000 partitions (lag, committed and end offset per
// partition, and the group's members: 3,001 data points), in data points/s.
func BenchmarkConsumeKafka1000Partitions(b *testing.B) {
	md := kafkaRequest(1000)
	points := md.DataPointCount()
	c, err := brokermetrics.New(brokermetrics.Options{Lag: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.ConsumeMetrics(ctx, md); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(points)*float64(b.N)/b.Elapsed().Seconds(), "points/s")
}

// discard is a lag sink that takes everything and keeps nothing.
type discard struct{}

func (discard) Add([]lag.Sample) int { return 0 }
