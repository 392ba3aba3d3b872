package otlpwire

import (
	"encoding/binary"
	"fmt"
)

// Visitor receives what ReadTraces reads of a request, in the order the
// spans appear in it (the order pdata gives them). Its methods must not
// keep the strings, byte slices or *Span they are handed beyond the life
// of the request's bytes (see ReadTraces).
type Visitor interface {
	// ResourceAttr is called for each attribute of a ResourceSpans'
	// resource, in order, before BeginSpans (the resource may follow its
	// spans on the wire; ReadTraces reads it first).
	ResourceAttr(key string, v Value)
	// BeginSpans is called once per ResourceSpans, after its resource's
	// attributes and before its spans.
	BeginSpans(rs ResourceSpans)
	// SpanAttr is called for each attribute of a span, in order, and
	// SpanLink for each of its links, before Span is called for it.
	SpanAttr(key string, v Value)
	SpanLink(trace [16]byte, span [8]byte)
	// Span is called once per span, after its attributes and links. s is
	// reused for the next span.
	Span(s *Span)
}

// Span is what ReadTraces reads of a span besides its attributes and
// links. Strings alias the request's bytes.
type Span struct {
	Trace         [16]byte
	ID, Parent    [8]byte
	TraceState    string
	Name          string
	Kind          int32 // as sent: pdata's SpanKind, unchecked
	Start, End    uint64
	StatusCode    int32 // as sent: pdata's StatusCode, unchecked
	StatusMessage string
	// Raw is the span's encoded message as sent, checked: a Span of the
	// OTLP trace proto, or for a request read by a JSONReader the span's
	// JSON text (every byte the decoder read of it, as pdata's would).
	// Events reads its events from it.
	Raw []byte

	// events and jr are the events of a span read from JSON, and their
	// reader.
	events [][]byte
	jr     *JSONReader
}

// JSON reports whether s was read from OTLP/JSON (by a JSONReader).
func (s *Span) JSON() bool { return s.jr != nil }

// ResourceSpans is one ResourceSpans of a request, as its checked bytes
// (protobuf), or its resource values as sent (JSON, see AppendJSON).
type ResourceSpans struct {
	b    []byte
	json [][]byte
}

// AppendResource appends to dst the resource of rs encoded as field 1 of
// a ResourceSpans, each occurrence of the field as sent (a decoder merges
// them as pdata did), and returns the extended slice.
func (rs ResourceSpans) AppendResource(dst []byte) []byte {
	for pos := 0; pos < len(rs.b); {
		num, typ, p, err := tag(rs.b, pos)
		if err != nil {
			return dst
		}
		start := pos
		if pos, err = skip(rs.b, p, typ); err != nil {
			return dst
		}
		if num == 1 {
			dst = append(dst, rs.b[start:pos]...)
		}
	}
	return dst
}

// ReadTraces reads body, an OTLP/protobuf ExportTraceServiceRequest, and
// hands what it reads to v. It returns an error, and may have called v
// already, for every request pdata's decoder refuses, and for requests
// nesting MaxNesting levels deep or more (ErrTooDeep), which the receiver
// refuses before pdata sees them; it accepts every other request. Deep
// nesting costs no stack beyond MaxNesting frames.
//
// body belongs to the caller: ReadTraces keeps nothing of it, but the
// strings and slices it hands to v share body's memory, valid only as
// long as the caller keeps body unchanged.
func ReadTraces(body []byte, v Visitor) error {
	// The Span handed to v is reused for every span: one allocation per
	// request (a pointer handed to an interface method escapes).
	sp := new(Span)
	for pos := 0; pos < len(body); {
		num, typ, p, err := tag(body, pos)
		if err != nil {
			return err
		}
		pos = p
		if num != 1 {
			if pos, err = skip(body, pos, typ); err != nil {
				return err
			}
			continue
		}
		if typ != wireLen {
			return wireTypeError("ExportTraceServiceRequest", num, typ)
		}
		var f []byte
		if f, pos, err = field(body, pos); err != nil {
			return err
		}
		if err := resourceSpans(f, v, sp); err != nil {
			return err
		}
	}
	return nil
}

// Field numbers of ResourceSpans.
const (
	rsResource             = 1
	rsScopeSpans           = 2
	rsSchemaURL            = 3
	rsDeprecatedScopeSpans = 1000 // instrumentation_library_spans, before OTLP 1.0
)

// resourceSpans reads a ResourceSpans (level 1) in two passes: the first
// checks its fields and reads its resource, the second its spans, so that
// the visitor knows the resource before the spans whatever the order on
// the wire. As pdata does, it reads the deprecated field 1000 only when
// field 2 is absent (and checks it either way).
func resourceSpans(b []byte, v Visitor, sp *Span) error {
	const depth = 1
	hasScopes := false
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case rsResource, rsScopeSpans, rsSchemaURL, rsDeprecatedScopeSpans:
			if typ != wireLen {
				return wireTypeError("ResourceSpans", num, typ)
			}
			var f []byte
			if f, pos, err = field(b, pos); err != nil {
				return err
			}
			switch num {
			case rsResource:
				if err := resource(f, depth+1, v); err != nil {
					return err
				}
			case rsScopeSpans:
				hasScopes = true
			}
		default:
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
		}
	}
	if v != nil {
		v.BeginSpans(ResourceSpans{b: b})
	}
	for pos := 0; pos < len(b); {
		num, typ, p, _ := tag(b, pos)
		if num != rsScopeSpans && num != rsDeprecatedScopeSpans {
			pos, _ = skip(b, p, typ)
			continue
		}
		f, end, _ := field(b, p)
		pos = end
		sv := v
		if num == rsDeprecatedScopeSpans && hasScopes {
			sv = nil // checked, not read
		}
		if err := scopeSpans(f, depth+1, sv, sp); err != nil {
			return err
		}
	}
	return nil
}

// resource reads a Resource, handing its attributes to v when not nil.
func resource(b []byte, depth int, v Visitor) error {
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case 1, 3: // attributes, entity refs
			if typ != wireLen {
				return wireTypeError("Resource", num, typ)
			}
			var f []byte
			if f, pos, err = field(b, pos); err != nil {
				return err
			}
			if num == 3 {
				err = entityRef(f)
			} else {
				err = attribute(f, depth+1, v, true)
			}
			if err != nil {
				return err
			}
		case 2: // dropped attributes count
			if pos, err = varintField(b, pos, typ, "Resource", num); err != nil {
				return err
			}
		default:
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
		}
	}
	return nil
}

// attribute reads a KeyValue at depth and hands it to v (ResourceAttr when
// ofResource, else SpanAttr), when v is not nil.
func attribute(b []byte, depth int, v Visitor, ofResource bool) error {
	if v == nil {
		return keyValueSkip(b, depth)
	}
	key, val, ok := shortKeyValue(b)
	if !ok {
		var err error
		if key, err = keyValue(b, depth, &val); err != nil {
			return err
		}
	}
	if ofResource {
		v.ResourceAttr(key, val)
	} else {
		v.SpanAttr(key, val)
	}
	return nil
}

// shortKeyValue reads the common KeyValue in one go: a key and a value
// of a string, an integer or a bool, each field once, key first (as the
// OpenTelemetry SDKs write it) or value first (as pdata, and so the
// Collector, writes every message: fields in reverse order), with
// one-byte lengths. ok is false for every other KeyValue, which keyValue
// reads (the result is the same: these bytes hold nothing to check
// beyond what is read here).
func shortKeyValue(b []byte) (key string, v Value, ok bool) {
	if len(b) < 4 || b[1] >= 0x80 {
		return "", Value{}, false
	}
	k := 2 + int(b[1]) // where the second field starts
	if k+2 > len(b) || b[k+1] >= 0x80 || k+2+int(b[k+1]) != len(b) {
		return "", Value{}, false
	}
	var av []byte
	switch {
	case b[0] == 1<<3|wireLen && b[k] == 2<<3|wireLen:
		key, av = str(b[2:k]), b[k+2:]
	case b[0] == 2<<3|wireLen && b[k] == 1<<3|wireLen:
		key, av = str(b[k+2:]), b[2:k]
	default:
		return "", Value{}, false
	}
	if len(av) < 2 {
		return "", Value{}, false
	}
	switch av[0] {
	case 1<<3 | wireLen: // string
		if av[1] >= 0x80 || 2+int(av[1]) != len(av) {
			return "", Value{}, false
		}
		return key, Value{Type: ValueStr, Str: str(av[2:])}, true
	case 2<<3 | wireVarint, 3<<3 | wireVarint: // bool, int
		x, n := binary.Uvarint(av[1:])
		if n <= 0 || 1+n != len(av) {
			return "", Value{}, false
		}
		if av[0] == 2<<3|wireVarint {
			return key, Value{Type: ValueBool, Bool: x != 0}, true
		}
		return key, Value{Type: ValueInt, Int: int64(x)}, true
	}
	return "", Value{}, false
}

// varintField skips a varint field of msg whose tag ended at pos,
// refusing another wire type.
func varintField(b []byte, pos int, typ int8, msg string, num int32) (int, error) {
	if typ != wireVarint {
		return 0, wireTypeError(msg, num, typ)
	}
	_, pos, err := varint(b, pos)
	return pos, err
}

// lenField skips a length-delimited field of msg whose tag ended at pos,
// refusing another wire type.
func lenField(b []byte, pos int, typ int8, msg string, num int32) ([]byte, int, error) {
	if typ != wireLen {
		return nil, 0, wireTypeError(msg, num, typ)
	}
	return field(b, pos)
}

// entityRef checks an EntityRef: four strings (schema URL, type, id keys,
// description keys).
func entityRef(b []byte) error {
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		if num >= 1 && num <= 4 {
			_, pos, err = lenField(b, pos, typ, "EntityRef", num)
		} else {
			pos, err = skip(b, pos, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// scopeSpans reads a ScopeSpans, handing its spans to v when not nil, read
// into sp.
func scopeSpans(b []byte, depth int, v Visitor, sp *Span) error {
	if depth >= MaxNesting {
		return ErrTooDeep
	}
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case 1, 2, 3: // scope, span, schema URL
			var f []byte
			if f, pos, err = lenField(b, pos, typ, "ScopeSpans", num); err != nil {
				return err
			}
			switch num {
			case 1:
				err = scope(f, depth+1)
			case 2:
				err = span(f, depth+1, v, sp)
			}
			if err != nil {
				return err
			}
		default:
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
		}
	}
	return nil
}

// scope checks an InstrumentationScope.
func scope(b []byte, depth int) error {
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case 1, 2, 3: // name, version, attributes
			var f []byte
			if f, pos, err = lenField(b, pos, typ, "InstrumentationScope", num); err != nil {
				return err
			}
			if num == 3 {
				if err := keyValueSkip(f, depth+1); err != nil {
					return err
				}
			}
		case 4: // dropped attributes count
			pos, err = varintField(b, pos, typ, "InstrumentationScope", num)
		default:
			pos, err = skip(b, pos, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Field numbers of Span.
const (
	spTraceID      = 1
	spSpanID       = 2
	spTraceState   = 3
	spParentSpanID = 4
	spName         = 5
	spKind         = 6
	spStart        = 7
	spEnd          = 8
	spAttributes   = 9
	spDroppedAttrs = 10
	spEvents       = 11
	spDroppedEvts  = 12
	spLinks        = 13
	spDroppedLinks = 14
	spStatus       = 15
	spFlags        = 16
)

// errIDLength is a trace or span id neither empty nor of its size.
var errIDLength = fmt.Errorf("%w: id of the wrong length", ErrMalformed)

// readID reads an id field into id: empty means all zero, as in pdata.
func readID(f []byte, id []byte) error {
	switch len(f) {
	case 0:
		clear(id)
	case len(id):
		copy(id, f)
	default:
		return errIDLength
	}
	return nil
}

// span reads a Span at depth into s and hands it to v when v is not nil.
// A repeated singular field takes its last value, and repeated statuses
// merge, as in pdata.
func span(b []byte, depth int, v Visitor, s *Span) error {
	if depth >= MaxNesting {
		return ErrTooDeep
	}
	*s = Span{Raw: b}
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case spTraceID, spSpanID, spTraceState, spParentSpanID, spName, spAttributes, spEvents, spLinks, spStatus:
			var f []byte
			if f, pos, err = lenField(b, pos, typ, "Span", num); err != nil {
				return err
			}
			switch num {
			case spTraceID:
				err = readID(f, s.Trace[:])
			case spSpanID:
				err = readID(f, s.ID[:])
			case spParentSpanID:
				err = readID(f, s.Parent[:])
			case spTraceState:
				s.TraceState = str(f)
			case spName:
				s.Name = str(f)
			case spAttributes:
				err = attribute(f, depth+1, v, false)
			case spEvents:
				err = event(f, depth+1)
			case spLinks:
				err = link(f, depth+1, v)
			case spStatus:
				err = status(f, s)
			}
			if err != nil {
				return err
			}
		case spKind:
			if typ != wireVarint {
				return wireTypeError("Span", num, typ)
			}
			var x uint64
			if x, pos, err = varint(b, pos); err != nil {
				return err
			}
			s.Kind = int32(x)
		case spStart, spEnd:
			if typ != wireI64 {
				return wireTypeError("Span", num, typ)
			}
			var x uint64
			if x, pos, err = fixed64(b, pos); err != nil {
				return err
			}
			if num == spStart {
				s.Start = x
			} else {
				s.End = x
			}
		case spDroppedAttrs, spDroppedEvts, spDroppedLinks:
			if pos, err = varintField(b, pos, typ, "Span", num); err != nil {
				return err
			}
		case spFlags:
			if typ != wireI32 {
				return wireTypeError("Span", num, typ)
			}
			if pos+4 > len(b) {
				return ErrTruncated
			}
			pos += 4
		default:
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
		}
	}
	if v != nil {
		v.Span(s)
	}
	return nil
}

// status reads a Status into s, merging with what an earlier one set.
func status(b []byte, s *Span) error {
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case 2:
			var f []byte
			if f, pos, err = lenField(b, pos, typ, "Status", num); err != nil {
				return err
			}
			s.StatusMessage = str(f)
		case 3:
			if typ != wireVarint {
				return wireTypeError("Status", num, typ)
			}
			var x uint64
			if x, pos, err = varint(b, pos); err != nil {
				return err
			}
			s.StatusCode = int32(x)
		default:
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
		}
	}
	return nil
}

// event checks a Span.Event at depth.
func event(b []byte, depth int) error {
	if depth >= MaxNesting {
		return ErrTooDeep
	}
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case 1: // time
			if typ != wireI64 {
				return wireTypeError("Span.Event", num, typ)
			}
			if pos+8 > len(b) {
				return ErrTruncated
			}
			pos += 8
		case 2, 3: // name, attributes
			var f []byte
			if f, pos, err = lenField(b, pos, typ, "Span.Event", num); err != nil {
				return err
			}
			if num == 3 {
				err = keyValueSkip(f, depth+1)
			}
		case 4: // dropped attributes count
			pos, err = varintField(b, pos, typ, "Span.Event", num)
		default:
			pos, err = skip(b, pos, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// link reads a Span.Link at depth and hands its ids to v when not nil.
func link(b []byte, depth int, v Visitor) error {
	if depth >= MaxNesting {
		return ErrTooDeep
	}
	var trace [16]byte
	var id [8]byte
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case 1, 2, 3, 4: // trace id, span id, trace state, attributes
			var f []byte
			if f, pos, err = lenField(b, pos, typ, "Span.Link", num); err != nil {
				return err
			}
			switch num {
			case 1:
				err = readID(f, trace[:])
			case 2:
				err = readID(f, id[:])
			case 4:
				err = keyValueSkip(f, depth+1)
			}
		case 5: // dropped attributes count
			pos, err = varintField(b, pos, typ, "Span.Link", num)
		case 6: // flags
			if typ != wireI32 {
				return wireTypeError("Span.Link", num, typ)
			}
			if pos+4 > len(b) {
				return ErrTruncated
			}
			pos += 4
		default:
			pos, err = skip(b, pos, typ)
		}
		if err != nil {
			return err
		}
	}
	if v != nil {
		v.SpanLink(trace, id)
	}
	return nil
}

// Events iterates over the events of a span ReadTraces (or a JSONReader)
// handed out, in order. The zero value has none.
type Events struct {
	b    []byte
	pos  int
	json [][]byte
	jr   *JSONReader
}

// Events returns an iterator over the events of s.
func (s *Span) Events() Events {
	if s.jr != nil {
		return Events{json: s.events, jr: s.jr}
	}
	return Events{b: s.Raw}
}

// Next returns the next event, false after the last.
func (e *Events) Next() (Event, bool) {
	if e.jr != nil {
		if e.pos == len(e.json) {
			return Event{}, false
		}
		e.pos++
		return Event{b: e.json[e.pos-1], jr: e.jr}, true
	}
	for e.pos < len(e.b) {
		num, typ, p, err := tag(e.b, e.pos)
		if err != nil {
			e.pos = len(e.b)
			return Event{}, false
		}
		if num != spEvents || typ != wireLen {
			if e.pos, err = skip(e.b, p, typ); err != nil {
				e.pos = len(e.b)
			}
			continue
		}
		f, end, err := field(e.b, p)
		if err != nil {
			e.pos = len(e.b)
			return Event{}, false
		}
		e.pos = end
		return Event{b: f}, true
	}
	return Event{}, false
}

// Event is one event of a span, as its checked bytes (protobuf or JSON).
type Event struct {
	b  []byte
	jr *JSONReader
}

// Name returns the event's name (the last one sent, as in pdata). For an
// event read from JSON the name may be unescaped into the reader's arena.
func (e Event) Name() string {
	if e.jr != nil {
		return e.jr.eventName(e.b)
	}
	name := ""
	for pos := 0; pos < len(e.b); {
		num, typ, p, err := tag(e.b, pos)
		if err != nil {
			break
		}
		if num == 2 && typ == wireLen {
			f, end, _ := field(e.b, p)
			name, pos = str(f), end
			continue
		}
		if pos, err = skip(e.b, p, typ); err != nil {
			break
		}
	}
	return name
}

// Attr returns the value of the event's first attribute named key, as
// pcommon.Map.Get does.
func (e Event) Attr(key string) (Value, bool) {
	if e.jr != nil {
		return e.jr.eventAttr(e.b, key)
	}
	for pos := 0; pos < len(e.b); {
		num, typ, p, err := tag(e.b, pos)
		if err != nil {
			break
		}
		if num == 3 && typ == wireLen {
			f, end, _ := field(e.b, p)
			pos = end
			var v Value
			if k, err := keyValue(f, 0, &v); err == nil && k == key {
				return v, true
			}
			continue
		}
		if pos, err = skip(e.b, p, typ); err != nil {
			break
		}
	}
	return Value{}, false
}

// putUvarint appends x as a varint.
func putUvarint(dst []byte, x uint64) []byte { return binary.AppendUvarint(dst, x) }

// AppendField appends field num of b's bytes, length-delimited, to dst.
func AppendField(dst []byte, num int, b []byte) []byte {
	dst = putUvarint(dst, uint64(num)<<3|wireLen)
	dst = putUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}
