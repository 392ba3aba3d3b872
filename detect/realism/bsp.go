package realism

import (
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The OpenTelemetry SDK's batch span processor defaults, read from the SDK
// itself so that the model cannot drift from it.
const (
	// ScheduledDelay is how long spans wait in a batch before it is exported.
	ScheduledDelay = sdktrace.DefaultScheduleDelay * time.Millisecond
	// MaxExportBatchSize is the batch size that triggers an export at once.
	MaxExportBatchSize = sdktrace.DefaultMaxExportBatchSize
	// MaxQueueSize bounds the spans waiting for export; beyond, spans are
	// dropped.
	MaxQueueSize = sdktrace.DefaultMaxQueueSize
)

// Export is one export request a BatchProcessor sends: the spans of one
// resource, in the order they ended.
type Export struct {
	At       time.Time // when the exporter sent it
	Resource *Resource
	Spans    []*Span
	// Reason is why it was sent: "timer" (the scheduled delay ran out),
	// "full" (MaxExportBatchSize spans were queued) or "shutdown".
	Reason string
}

// BatchProcessor models the OpenTelemetry Go SDK's BatchSpanProcessor of one
// resource (one replica) in simulated time: a span is queued when it ends;
// the batch is exported when the timer fires (every ScheduledDelay, the
// timer restarting at every export) or at once when MaxExportBatchSize spans
// are queued; spans arriving while MaxQueueSize are queued are dropped and
// counted; Shutdown flushes. Exporting takes no simulated time here, so the
// queue never holds more than one batch unless MaxBatch > MaxQueue.
//
// The caller drives it: OnEnd for every ended span, Tick when Next is
// reached. It is not safe for concurrent use.
type BatchProcessor struct {
	Resource *Resource
	Delay    time.Duration
	MaxBatch int
	MaxQueue int
	// Send receives each export. It owns the Export.
	Send func(Export)

	queue   []*Span
	next    time.Time
	gen     uint64
	Dropped int // spans dropped because the queue was full
	Exports int
}

// NewBatchProcessor returns a processor with the SDK's defaults whose timer
// starts at start (the replica's start, which gives each replica its own
// export phase).
func NewBatchProcessor(res *Resource, start time.Time, send func(Export)) *BatchProcessor {
	return &BatchProcessor{Resource: res, Delay: ScheduledDelay, MaxBatch: MaxExportBatchSize, MaxQueue: MaxQueueSize, Send: send, next: start.Add(ScheduledDelay)}
}

// Next returns when the timer fires next, and a generation that changes
// whenever the timer is restarted: a tick scheduled for an older
// generation is stale and must be dropped (Tick does so).
func (b *BatchProcessor) Next() (time.Time, uint64) { return b.next, b.gen }

// OnEnd queues s, which ended at at (the span's end time). A full batch is
// exported at once and restarts the timer; it reports whether it did.
func (b *BatchProcessor) OnEnd(s *Span, at time.Time) (restarted bool) {
	if len(b.queue) >= b.MaxQueue {
		b.Dropped++
		return false
	}
	b.queue = append(b.queue, s)
	if len(b.queue) >= b.MaxBatch {
		b.export(at, "full")
		return true
	}
	return false
}

// Tick fires the timer at at if gen is the current generation: the queued
// spans (up to MaxBatch) are exported and the timer restarts. A stale gen is
// ignored; it reports whether the tick was current.
func (b *BatchProcessor) Tick(at time.Time, gen uint64) bool {
	if gen != b.gen {
		return false
	}
	b.export(at, "timer")
	return true
}

// Shutdown exports everything queued at at, as the SDK's Shutdown does
// (ForceFlush), and stops the timer.
func (b *BatchProcessor) Shutdown(at time.Time) {
	for len(b.queue) > 0 {
		n := min(len(b.queue), b.MaxBatch)
		b.send(at, n, "shutdown")
	}
	b.gen++
	b.next = time.Time{}
}

func (b *BatchProcessor) export(at time.Time, reason string) {
	if n := min(len(b.queue), b.MaxBatch); n > 0 {
		b.send(at, n, reason)
	}
	b.gen++
	b.next = at.Add(b.Delay)
}

func (b *BatchProcessor) send(at time.Time, n int, reason string) {
	spans := make([]*Span, n)
	copy(spans, b.queue[:n])
	b.queue = append(b.queue[:0], b.queue[n:]...)
	b.Exports++
	if b.Send != nil {
		b.Send(Export{At: at, Resource: b.Resource, Spans: spans, Reason: reason})
	}
}
