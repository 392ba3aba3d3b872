package otlp

import (
	"fmt"
	"reflect"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// maxNesting bounds how deeply the messages of one request may nest. The
// pdata decoders recurse once per level (an attribute value holding a list
// holding a value ...), and a 16 MiB request nested a million levels deep
// overflows the goroutine stack: a fatal error that no recover catches. An
// OTLP request nests about eight levels plus whatever its attribute values
// add; 64 leaves plenty of room.
const maxNesting = 64

// errTooDeep means a request nests deeper than maxNesting.
var errTooDeep = fmt.Errorf("message nesting deeper than %d levels", maxNesting)

// checkNesting refuses protobuf and JSON bodies nested deeper than
// maxNesting, before they reach a recursive decoder. k is the request
// message a protobuf body holds.
func checkNesting(body []byte, f format, k msgKind) error {
	if f == formatJSON {
		return checkJSONNesting(body)
	}
	if protoTooDeep(body, k) {
		return errTooDeep
	}
	return nil
}

// msgKind is an OTLP message as the nesting check sees it: one of the
// messages on the way from a request to an attribute value, the only place
// OTLP nests without bound (AnyValue -> ArrayValue or KeyValueList ->
// AnyValue ...). Every other message (ids, Status, EntityRef, histogram
// buckets, quantiles) is a leaf, msgLeaf: pdata decodes it without calling
// another message's decoder, so the check skips it by its length.
type msgKind uint8

const (
	msgLeaf msgKind = iota
	msgTraceRequest
	msgMetricsRequest
	msgResourceSpans
	msgResourceMetrics
	msgResource
	msgScopeSpans
	msgScopeMetrics
	msgScope
	msgSpan
	msgSpanEvent
	msgSpanLink
	msgMetric
	msgNumberPoints // Gauge and Sum
	msgHistogram
	msgExpHistogram
	msgSummary
	msgNumberPoint
	msgHistogramPoint
	msgExpHistogramPoint
	msgSummaryPoint
	msgExemplar
	msgKeyValue
	msgAnyValue
	msgArrayValue
	msgKeyValueList
	msgAny // a request of unknown schema: every length-delimited field may be a message
	numMsgKinds
)

// msgFields maps a message and a field number below 16 to the kind of the
// message the field holds (msgLeaf when it holds none, or one that nests no
// further). It follows the decoders of go.opentelemetry.io/collector/pdata
// (internal/generated_proto_*.go): the fields whose decoding calls another
// message's decoder that can lead to an attribute value. The deprecated
// field 1000 of ResourceSpans and ResourceMetrics (instrumentation library
// spans and metrics) is handled by childKind.
var msgFields = [numMsgKinds][16]msgKind{
	msgTraceRequest:      {1: msgResourceSpans},
	msgMetricsRequest:    {1: msgResourceMetrics},
	msgResourceSpans:     {1: msgResource, 2: msgScopeSpans},
	msgResourceMetrics:   {1: msgResource, 2: msgScopeMetrics},
	msgResource:          {1: msgKeyValue},
	msgScopeSpans:        {1: msgScope, 2: msgSpan},
	msgScopeMetrics:      {1: msgScope, 2: msgMetric},
	msgScope:             {3: msgKeyValue},
	msgSpan:              {9: msgKeyValue, 11: msgSpanEvent, 13: msgSpanLink},
	msgSpanEvent:         {3: msgKeyValue},
	msgSpanLink:          {4: msgKeyValue},
	msgMetric:            {5: msgNumberPoints, 7: msgNumberPoints, 9: msgHistogram, 10: msgExpHistogram, 11: msgSummary, 12: msgKeyValue},
	msgNumberPoints:      {1: msgNumberPoint},
	msgHistogram:         {1: msgHistogramPoint},
	msgExpHistogram:      {1: msgExpHistogramPoint},
	msgSummary:           {1: msgSummaryPoint},
	msgNumberPoint:       {5: msgExemplar, 7: msgKeyValue},
	msgHistogramPoint:    {8: msgExemplar, 9: msgKeyValue},
	msgExpHistogramPoint: {1: msgKeyValue, 11: msgExemplar},
	msgSummaryPoint:      {7: msgKeyValue},
	msgExemplar:          {7: msgKeyValue},
	msgKeyValue:          {2: msgAnyValue},
	msgAnyValue:          {5: msgArrayValue, 6: msgKeyValueList},
	msgArrayValue:        {1: msgAnyValue},
	msgKeyValueList:      {1: msgKeyValue},
}

// childKind returns the kind of the message that field num of a k message
// holds.
func childKind(k msgKind, num int32) msgKind {
	if uint32(num) < 16 {
		return msgFields[k][num]
	}
	if num == 1000 && (k == msgResourceSpans || k == msgResourceMetrics) {
		return msgFields[k][2]
	}
	return msgLeaf
}

// protoTooDeep reports whether b, a protobuf k message, holds messages
// nested maxNesting levels deep or more (the request itself at level 0),
// counting the messages pdata's decoder would recurse into.
//
// It costs far less than the decode it guards: it descends only into the
// fields that lead to attribute values, and skips by its length any
// message too short to reach the bound (a level of nesting takes at least
// two bytes, a tag and a length), which is nearly every attribute. Where b
// is malformed it stops and reports false: pdata's decoder, which reads
// the same bytes in the same order and recurses into nothing the scan has
// not checked, refuses the request there.
func protoTooDeep(b []byte, k msgKind) bool {
	return scanNesting(b, k, 0) == nestingTooDeep
}

// nesting is the verdict of scanNesting.
type nesting uint8

const (
	nestingOK        nesting = iota // no deeper than the bound so far
	nestingTooDeep                  // deeper than the bound
	nestingMalformed                // not protobuf: the decoder stops here
)

// scanNesting scans b, a k message at depth. Its recursion is bounded by
// maxNesting, and each byte is read by one call only, so it is linear in
// len(b).
func scanNesting(b []byte, k msgKind, depth int) nesting {
	for pos := 0; pos < len(b); {
		// One-byte tags and lengths (fields 1-15, values below 128 bytes)
		// are read inline: they are nearly all of them.
		var num int32
		var typ int8
		if c := b[pos]; c < 0x80 {
			num, typ = int32(c>>3), int8(c&7)
			if num == 0 {
				return nestingMalformed
			}
			pos++
		} else {
			var ok bool
			if num, typ, pos, ok = consumeTag(b, pos); !ok {
				return nestingMalformed
			}
		}
		if typ != wireLen {
			var ok bool
			if pos, ok = consumeUnknown(b, pos, typ); !ok {
				return nestingMalformed
			}
			continue
		}
		var n int
		if pos < len(b) && b[pos] < 0x80 {
			n = int(b[pos])
			pos++
			if pos+n > len(b) {
				return nestingMalformed
			}
		} else {
			end, ok := 0, false
			if n, end, ok = consumeLen(b, pos); !ok {
				return nestingMalformed
			}
			pos = end - n
		}
		start := pos
		pos += n
		c := msgAny
		if k != msgAny {
			if c = childKind(k, num); c == msgLeaf {
				continue
			}
		}
		// The field's message is at depth+1 and, n bytes long, holds
		// messages at most n/2 levels below it.
		if depth+1+n/2 < maxNesting {
			continue
		}
		if depth+1 >= maxNesting {
			if c != msgAny || looksLikeMessage(b[start:pos]) {
				return nestingTooDeep
			}
			continue
		}
		switch scanNesting(b[start:pos], c, depth+1) {
		case nestingTooDeep:
			return nestingTooDeep
		case nestingMalformed:
			if c != msgAny {
				return nestingMalformed
			}
			// Without a schema a malformed field is taken for a string
			// or bytes: the scan goes on with the next field.
		}
	}
	return nestingOK
}

// looksLikeMessage reports whether b starts with a well-formed
// length-delimited field, the only kind that can nest further: without a
// schema, the scan's guess of whether b is a message.
func looksLikeMessage(b []byte) bool {
	_, typ, p, ok := consumeTag(b, 0)
	if !ok || typ != wireLen {
		return false
	}
	_, _, ok = consumeLen(b, p)
	return ok
}

// The wire reading below follows pdata's decoder
// (go.opentelemetry.io/collector/pdata/internal/proto/unmarshal.go) rather
// than google.golang.org/protobuf/encoding/protowire, where the two
// differ: the scan must accept whatever the decoder accepts, or the
// decoder would go on where the scan stopped looking. (protowire, for one,
// refuses a 10-byte varint whose last byte is above 1, and checks that a
// group ends with its own field number; pdata does neither.)

// Wire types.
const (
	wireVarint     = 0
	wireI64        = 1
	wireLen        = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireI32        = 5
)

// consumeVarint reads a varint at pos and returns it and the position after
// it, as pdata does: at most ten bytes, bits beyond 64 dropped.
func consumeVarint(b []byte, pos int) (uint64, int, bool) {
	if pos < len(b) && b[pos] < 0x80 {
		return uint64(b[pos]), pos + 1, true
	}
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if pos >= len(b) {
			return 0, 0, false
		}
		c := b[pos]
		pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, pos, true
		}
	}
	return 0, 0, false
}

// consumeTag reads a field tag at pos: field number, wire type and the
// position after it.
func consumeTag(b []byte, pos int) (int32, int8, int, bool) {
	tag, pos, ok := consumeVarint(b, pos)
	num := int32(tag >> 3)
	if !ok || num <= 0 {
		return 0, 0, 0, false
	}
	return num, int8(tag & 7), pos, true
}

// consumeLen reads the length of a length-delimited field at pos and
// returns it and the position after the field's bytes.
func consumeLen(b []byte, pos int) (int, int, bool) {
	v, pos, ok := consumeVarint(b, pos)
	n := int(v)
	if !ok || n < 0 {
		return 0, 0, false
	}
	pos += n
	if pos < 0 || pos > len(b) {
		return 0, 0, false
	}
	return n, pos, true
}

// consumeUnknown skips a field of wire type typ other than length-delimited
// whose tag ended at pos, and returns the position after it. Groups are
// skipped as pdata's proto.ConsumeUnknown skips them, without recursion and
// up to the first field with a value.
func consumeUnknown(b []byte, pos int, typ int8) (int, bool) {
	depth := 0
	for pos < len(b) {
		var ok bool
		switch typ {
		case wireVarint:
			_, pos, ok = consumeVarint(b, pos)
			return pos, ok
		case wireI64:
			pos += 8
			return pos, pos <= len(b)
		case wireLen:
			_, pos, ok = consumeLen(b, pos)
			return pos, ok
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, false
			}
			depth--
		case wireI32:
			pos += 4
			return pos, pos <= len(b)
		default:
			return 0, false
		}
		if depth == 0 {
			return pos, true
		}
		if _, typ, pos, ok = consumeTag(b, pos); !ok {
			return 0, false
		}
	}
	return 0, false
}

// checkJSONNesting refuses JSON nested (objects and arrays) deeper than
// maxNesting. Strings are skipped, escapes included; the body is otherwise
// left to the decoder to judge.
func checkJSONNesting(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth++; depth > maxNesting {
				return errTooDeep
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// nestingCodec is the gRPC codec of the receiver: the codec registered as
// "proto" (pdata's), after a nesting check of every request.
type nestingCodec struct {
	delegate encoding.CodecV2
	pool     *requestPool
}

// newNestingCodec wraps the codec registered as "proto": pdata's, which
// registers itself over gRPC's own (gRPC always registers one).
func newNestingCodec() nestingCodec {
	return nestingCodec{
		delegate: encoding.GetCodecV2("proto"),
		pool:     new(requestPool),
	}
}

func (c nestingCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(encodedMessage); ok {
		if len(m) == 0 {
			// An empty message (the answer to an accepted export):
			// nothing to encode, nothing to hold.
			return nil, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	}
	return c.delegate.Marshal(v)
}

// protoUnmarshaler is a pdata request message (the type pdata's gRPC
// services decode into): its own decoder, which keeps nothing of the bytes.
type protoUnmarshaler interface {
	UnmarshalProto([]byte) error
}

// Unmarshal checks the nesting of a request and decodes it. A pdata request
// is decoded here, from the bytes the check read, as pdata's codec would
// decode it: one copy of a request that arrived in several buffers, not
// two.
//
// A wireTraceRequest is read by its consumer instead, from the same
// bytes, which bound their nesting themselves; the buffer then goes to
// the request, whose spans alias it.
func (c nestingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(c.pool)
	if w, ok := v.(*wireTraceRequest); ok {
		d, err := w.decoder.DecodeTracesProto(buf.ReadOnlyData())
		if err != nil {
			buf.Free()
			return err
		}
		w.decoded, w.buf = d, buf
		return nil
	}
	defer buf.Free()
	b := buf.ReadOnlyData()
	if protoTooDeep(b, requestKind(v)) {
		return errTooDeep
	}
	if m, ok := v.(protoUnmarshaler); ok {
		return m.UnmarshalProto(b)
	}
	return c.delegate.Unmarshal(data, v)
}

func (c nestingCodec) Name() string { return c.delegate.Name() }

// requestKind returns the message kind of v, a gRPC request message: a
// trace or metrics export request (pdata's internal types, known by name),
// or msgAny.
func requestKind(v any) msgKind {
	t := reflect.TypeOf(v)
	if t == nil {
		return msgAny
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Name() {
	case "ExportTraceServiceRequest":
		return msgTraceRequest
	case "ExportMetricsServiceRequest":
		return msgMetricsRequest
	}
	return msgAny
}
