package semconv

import (
	"slices"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/otlpwire"
)

// wireReader translates an OTLP/protobuf or OTLP/JSON request as otlpwire
// reads it: the otlpwire.Visitor of one request, feeding the same
// translation as pdata's objects do (resourceAttrs.set, spanAttrs.set,
// fill, failure, sanitize). It lives in a pooled batch; its spans alias
// the request's bytes (and, for JSON, the batch's JSONReader arena).
type wireReader struct {
	t     *translator
	spans []graph.Span
	json  bool // the request is OTLP/JSON

	res       resourceAttrs
	names     resourceNames
	a         spanAttrs
	linkStart int

	// total counts the request's spans, invalid those with an empty
	// trace or span id (dropped).
	total, invalid int

	// sampler, when set, picks the traces whose raw spans the observer
	// keeps; observed is the request of those spans, re-encoded as they
	// arrive (flushObserved).
	sampler  TraceSampler
	rs       otlpwire.ResourceSpans
	rsSpans  [][]byte // sampled spans of rs not yet in observed
	scratch  []byte
	observed []byte
}

var (
	_ otlpwire.Visitor   = (*wireReader)(nil)
	_ otlpwire.Restarter = (*wireReader)(nil)
)

// Restart forgets what the request handed w so far, for a JSONReader
// reading it again.
func (w *wireReader) Restart() {
	clear(w.spans)
	w.spans = w.spans[:0]
	w.t.links = w.t.links[:0]
	w.t.tooLong, w.t.invalidUTF8 = 0, 0
	w.res.reset()
	w.names, w.a = resourceNames{}, spanAttrs{}
	w.linkStart, w.total, w.invalid = 0, 0, 0
	w.rs = otlpwire.ResourceSpans{}
	clear(w.rsSpans)
	w.rsSpans = w.rsSpans[:0]
	w.observed = w.observed[:0]
}

func (w *wireReader) ResourceAttr(key string, v otlpwire.Value) { w.res.set(key, v) }

func (w *wireReader) BeginSpans(rs otlpwire.ResourceSpans) {
	w.flushObserved()
	w.names = w.t.resourceNames(&w.res)
	w.res.reset()
	w.rs = rs
	w.a = spanAttrs{}
	w.linkStart = len(w.t.links)
}

func (w *wireReader) SpanAttr(key string, v otlpwire.Value) { w.a.set(key, v) }

func (w *wireReader) SpanLink(trace [16]byte, span [8]byte) {
	if trace == ([16]byte{}) || span == ([8]byte{}) {
		return
	}
	w.t.links = append(w.t.links, graph.SpanRef{Trace: trace, Span: span})
}

func (w *wireReader) Span(in *otlpwire.Span) {
	w.total++
	t := w.t
	if in.Trace == ([16]byte{}) || in.ID == ([8]byte{}) {
		w.invalid++
		t.links = t.links[:w.linkStart]
		w.a = spanAttrs{}
		return
	}
	if len(w.spans) == cap(w.spans) {
		w.spans = slices.Grow(w.spans, max(64, len(w.spans)))
	}
	w.spans = append(w.spans, graph.Span{})
	s := &w.spans[len(w.spans)-1]
	s.Trace = in.Trace
	s.ID = in.ID
	t.setResource(s, &w.names)
	s.Links = t.cutLinks(w.linkStart)
	if t.fill(s, in, &w.a) {
		var texts [2 * failureEventsMax]string
		s.Failure = w.a.failure(in.StatusMessage, wireExceptionTexts(texts[:0], in))
	}
	t.sanitize(s)
	if w.sampler != nil && w.sampler.Sampled(s.Trace) {
		w.rsSpans = append(w.rsSpans, in.Raw)
	}
	w.a = spanAttrs{}
	w.linkStart = len(t.links)
}

// wireExceptionTexts is exceptionTexts for a span read from the wire.
func wireExceptionTexts(dst []string, sp *otlpwire.Span) []string {
	evs := sp.Events()
	for range failureEventsMax {
		ev, ok := evs.Next()
		if !ok {
			break
		}
		if ev.Name() != "exception" {
			continue
		}
		if v, ok := ev.Attr("exception.type"); ok {
			dst = append(dst, v.Str)
		}
		if v, ok := ev.Attr("exception.message"); ok {
			dst = append(dst, v.Str)
		}
	}
	return dst
}

// flushObserved appends the sampled spans of the current resource to
// observed, as one ResourceSpans holding the resource as sent and one
// ScopeSpans (the raw-span sample reads no scope), in the request's
// format. A JSON request is closed by closeObserved.
func (w *wireReader) flushObserved() {
	if len(w.rsSpans) == 0 {
		return
	}
	if w.json {
		w.flushObservedJSON()
		return
	}
	scope := w.scratch[:0]
	for _, sp := range w.rsSpans {
		scope = otlpwire.AppendField(scope, 2, sp)
	}
	rs := w.rs.AppendResource(nil)
	rs = otlpwire.AppendField(rs, 2, scope)
	w.observed = otlpwire.AppendField(w.observed, 1, rs)
	w.scratch = scope[:0]
	clear(w.rsSpans)
	w.rsSpans = w.rsSpans[:0]
}

// flushObservedJSON is flushObserved for a JSON request: the spans'
// and the resource's JSON as sent, in a ResourceSpans object of
// {"resourceSpans":[...]}, which pdata reads as it read the request.
func (w *wireReader) flushObservedJSON() {
	if len(w.observed) == 0 {
		w.observed = append(w.observed, `{"resourceSpans":[`...)
	} else {
		w.observed = append(w.observed, ',')
	}
	w.observed = append(w.observed, '{')
	w.observed = w.rs.AppendJSON(w.observed)
	w.observed = append(w.observed, `"scopeSpans":[{"spans":[`...)
	for i, sp := range w.rsSpans {
		if i > 0 {
			w.observed = append(w.observed, ',')
		}
		w.observed = append(w.observed, sp...)
	}
	w.observed = append(w.observed, "]}]}"...)
	clear(w.rsSpans)
	w.rsSpans = w.rsSpans[:0]
}

// closeObserved ends the sample of a JSON request.
func (w *wireReader) closeObserved() {
	if w.json && len(w.observed) > 0 {
		w.observed = append(w.observed, "]}"...)
	}
}

// reset empties w for the next request, keeping its buffers (within
// bounds) but nothing of the last request.
func (w *wireReader) reset() {
	clear(w.spans)
	if cap(w.spans) > maxPooledSpans {
		w.spans = nil
	}
	w.spans = w.spans[:0]
	w.res.reset()
	w.names, w.a = resourceNames{}, spanAttrs{}
	w.linkStart, w.total, w.invalid = 0, 0, 0
	w.sampler = nil
	w.json = false
	w.rs = otlpwire.ResourceSpans{}
	clear(w.rsSpans)
	w.rsSpans = w.rsSpans[:0]
	w.observed = nil
	if cap(w.scratch) > 1<<20 {
		w.scratch = nil
	}
}
