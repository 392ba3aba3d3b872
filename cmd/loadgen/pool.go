package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/ingest/synth"
)

// entry is one pre-encoded export request.
type entry struct {
	// raw is the encoded ExportTraceServiceRequest. Its trace ids are
	// rewritten in place before each send (see stamp).
	raw []byte
	// idAt are the offsets in raw of the high 8 bytes of every span's trace
	// id: synth puts the generator's seed there and a sequence number in the
	// low 8 bytes.
	idAt []int32
	// req is raw decoded once, for the pdata gRPC client only.
	req   ptraceotlp.ExportRequest
	spans int64
}

// workerPool is the part of the pool one worker replays.
type workerPool struct {
	entries []*entry
	// base is the synth seed the entries were generated with, the high 8
	// bytes of their trace ids as generated.
	base uint64
	// salt is mixed into the trace ids sent.
	salt uint64
}

// buildPool generates and encodes n requests of tracesPer traces for worker
// w, deterministically from seed; salt is mixed into the trace ids sent.
func buildPool(seed, salt uint64, w, n, tracesPer int, decode bool) (*workerPool, error) {
	base := seed + uint64(w)
	g := synth.New(base, time.Unix(1_700_000_000, 0))
	var prefix [10]byte
	// Span.trace_id is field 1, wire type 2 (tag 0x0a), length 16.
	prefix[0], prefix[1] = 0x0a, 0x10
	binary.BigEndian.PutUint64(prefix[2:], base)
	p := &workerPool{base: base, salt: salt}
	for range n {
		td := g.Traces(tracesPer)
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
		if int64(len(e.idAt)) != e.spans {
			return nil, fmt.Errorf("found %d trace ids in a request of %d spans", len(e.idAt), e.spans)
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
	rss := e.req.Traces().ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				id := sp.TraceID()
				binary.BigEndian.PutUint64(id[:8], high)
				sp.SetTraceID(pcommon.TraceID(id))
			}
		}
	}
}
