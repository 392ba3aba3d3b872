package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/simulate/scenario"
	"github.com/seed-a49a8342/cartograph/simulate/synth"
)

// entry is one pre-encoded export request.
type entry struct {
	// raw is the encoded ExportTraceServiceRequest. Its trace ids are
	// rewritten in place before each send (see stamp).
	raw []byte
	// idAt are the offsets in raw of the high 8 bytes of every trace id, of
	// spans and of span links: the generator puts a fixed value there (the
	// pool's base) and a sequence number in the low 8 bytes.
	idAt []int32
	// req is raw decoded once, for the pdata gRPC client only.
	req   ptraceotlp.ExportRequest
	spans int64
}

// workerPool is the part of the pool one worker replays.
type workerPool struct {
	entries []*entry
	// base is the high 8 bytes of the entries' trace ids as generated.
	base uint64
	// salt is mixed into the trace ids sent.
	salt uint64
}

// traceSource makes the requests of one worker's pool: next returns the
// traces of one request, whose trace ids all have high as their high 8
// bytes.
type traceSource struct {
	next func() ptrace.Traces
	high uint64
}

// newTraceSource returns worker w's source: the generated system of
// simulate/scenario (all workers share its topology, each has its own
// stream), or with cfg.Services 0 the fixed 8-span shop trace of
// simulate/synth.
func newTraceSource(cfg config, w int) (traceSource, error) {
	if cfg.Shape == shapeTelemetrygen {
		base := cfg.Seed + uint64(w)
		g := synth.New(base, time.Unix(1_700_000_000, 0))
		return traceSource{next: func() ptrace.Traces { return g.TelemetrygenTraces(cfg.TracesPerRequest) }, high: base}, nil
	}
	if cfg.Services == 0 {
		base := cfg.Seed + uint64(w)
		g := synth.New(base, time.Unix(1_700_000_000, 0))
		return traceSource{next: func() ptrace.Traces { return g.Traces(cfg.TracesPerRequest) }, high: base}, nil
	}
	g, err := scenario.New(scenario.Options{Services: cfg.Services, Seed: cfg.Seed, Stream: uint64(w), Faults: cfg.Faults})
	if err != nil {
		return traceSource{}, err
	}
	// Requests are 10 ms apart, ending at the time the pool is built.
	now := time.Now().Add(-time.Duration(cfg.Pool) * 10 * time.Millisecond)
	return traceSource{next: func() ptrace.Traces {
		now = now.Add(10 * time.Millisecond)
		return g.Traces(now, cfg.TracesPerRequest)
	}, high: g.TraceIDHigh()}, nil
}

// buildPool generates and encodes n requests from src; salt is mixed into
// the trace ids sent.
func buildPool(src traceSource, salt uint64, n int, decode bool) (*workerPool, error) {
	base := src.high
	var prefix [10]byte
	// Span.trace_id and Span.Link.trace_id are both field 1, wire type 2
	// (tag 0x0a), length 16.
	prefix[0], prefix[1] = 0x0a, 0x10
	binary.BigEndian.PutUint64(prefix[2:], base)
	p := &workerPool{base: base, salt: salt}
	for range n {
		td := src.next()
		raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			return nil, fmt.Errorf("encoding a request: %w", err)
		}
		e := &entry{raw: raw, spans: int64(td.SpanCount())}
		for off := 0; ; {
			i := bytes.Index(raw[off:], prefix[:])
			if i < 0 {
				break
			}
			e.idAt = append(e.idAt, int32(off+i+2))
			off += i + len(prefix)
		}
		if want := e.spans + countLinks(td); int64(len(e.idAt)) != want {
			return nil, fmt.Errorf("found %d trace ids in a request of %d spans and links", len(e.idAt), want)
		}
		if decode {
			e.req = ptraceotlp.NewExportRequest()
			if err := e.req.UnmarshalProto(raw); err != nil {
				return nil, fmt.Errorf("decoding a request: %w", err)
			}
		}
		p.entries = append(p.entries, e)
	}
	return p, nil
}

// eachSpan calls f for every span of td.
func eachSpan(td ptrace.Traces, f func(ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				f(spans.At(k))
			}
		}
	}
}

func countLinks(td ptrace.Traces) int64 {
	var n int64
	eachSpan(td, func(sp ptrace.Span) { n += int64(sp.Links().Len()) })
	return n
}

// traceHigh returns the high 8 bytes of the trace ids of a worker's pass
// over its pool. Every pass gets fresh trace ids, so replayed traces never
// meet the half-edges of an earlier pass in the collector: workers have
// distinct bases (seed+worker), passes differ above bit 40, and the salted
// mix is a bijection, so ids never repeat within a run; the salt keeps runs
// apart from each other.
func (p *workerPool) traceHigh(pass uint64) uint64 { return mix64((p.base + pass<<40) ^ p.salt) }

// mix64 is the SplitMix64 finaliser, a bijection on uint64.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// stampRaw rewrites the trace ids of e's encoded request for a pass.
func (e *entry) stampRaw(high uint64) {
	for _, at := range e.idAt {
		binary.BigEndian.PutUint64(e.raw[at:at+8], high)
	}
}

// stampPdata rewrites the trace ids of e's decoded request for a pass.
func (e *entry) stampPdata(high uint64) {
	eachSpan(e.req.Traces(), func(sp ptrace.Span) {
		id := sp.TraceID()
		binary.BigEndian.PutUint64(id[:8], high)
		sp.SetTraceID(id)
		links := sp.Links()
		for i := range links.Len() {
			l := links.At(i)
			id := l.TraceID()
			binary.BigEndian.PutUint64(id[:8], high)
			l.SetTraceID(id)
		}
	})
}
