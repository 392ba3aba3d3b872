package otlpwire

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Restarter is implemented by a Visitor that JSONReader.ReadTraces may
// ask to start over. OTLP/JSON lets a ResourceSpans name its resource
// after its spans (or twice, the two merging); the reader hands spans to
// the visitor as it meets them, and in the rare request where a resource
// turns up after spans it already handed out, it calls Restart and reads
// the request again, resource first, in two passes per ResourceSpans.
// Restart must make the visitor forget everything the reader handed it
// for the request. A Visitor without Restart is always read in two
// passes.
type Restarter interface {
	Restart()
}

// errLate stops the one-pass reading of a request whose resource follows
// spans already handed out.
var errLate = errors.New("otlpwire: resource after its spans")

// JSONReader reads OTLP/JSON trace export requests as pdata's JSON
// decoder (ptraceotlp.ExportRequest.UnmarshalJSON) reads them, and
// refuses exactly the requests it refuses (see jsonIter), reading the
// bytes once in the common case.
//
// A JSONReader holds the strings it had to unescape, in an arena of its
// own: the strings and slices it hands a Visitor alias either the
// request's bytes or that arena, and stay valid as long as the caller
// keeps the bytes unchanged and until the next ReadTraces or Reset. The
// zero value is ready to use; a JSONReader is not safe for concurrent
// use.
type JSONReader struct {
	it, sub jsonIter
	arena   arena
	v       Visitor
	careful bool

	sp     Span
	events [][]byte // the events of sp, as read
	// res holds, for each ResourceSpans of the request in turn, its
	// resource values as sent; rs is where the current one's start.
	res    [][]byte
	rs     int
	scopes []int // careful mode: where the scopeSpans values start
}

// Reset forgets the last request, keeping the reader's buffers (within
// bounds).
func (r *JSONReader) Reset() {
	r.arena.reset()
	clear(r.res)
	r.res = r.res[:0]
	clear(r.events)
	r.events = r.events[:0]
	r.sp = Span{}
	r.v = nil
	r.it, r.sub = jsonIter{}, jsonIter{}
}

// ReadTraces reads body, an OTLP/JSON ExportTraceServiceRequest, and
// hands what it reads to v as ReadTraces does for protobuf: resource
// attributes, then BeginSpans, then each span's attributes and links and
// the span, in the order of the request. As pdata's decoder does, it
// reads the spans of "scopeSpans" only (the deprecated field is checked,
// not read) and ignores whatever follows the request's object.
//
// It returns an error, and may have called v already, for every request
// pdata's decoder refuses (wrapping ErrMalformed), and with ErrTooDeep
// for a request that nests objects and arrays more than MaxNesting deep
// (the receiver's bound) or nests attribute values MaxNesting deep
// without them (which pdata's decoder would follow without bound).
//
// Spans handed to v carry their JSON text as Raw; their Events read it.
func (r *JSONReader) ReadTraces(body []byte, v Visitor) error {
	rs, canRestart := v.(Restarter)
	r.v = v
	r.careful = !canRestart
	r.res, r.rs = r.res[:0], 0
	err := r.read(body)
	if err == errLate {
		rs.Restart()
		r.careful = true
		r.res, r.rs = r.res[:0], 0
		err = r.read(body)
	}
	r.v = nil
	return err
}

// jsonTooDeep reports whether b, read from depth, nests objects and
// arrays more than MaxNesting deep, counting brackets outside strings as
// the receiver's nesting check does (a string ends at the first '"' not
// escaped by a '\\', or with the body).
func jsonTooDeep(b []byte, depth int) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i+1)
		case '{', '[':
			if depth++; depth > MaxNesting {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// stringEnd returns the index of the '"' ending the string that starts at
// i, or len(b) (or more) if it does not end.
func stringEnd(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for {
		for ; i+8 <= len(b); i += 8 {
			w := binary.LittleEndian.Uint64(b[i:])
			q, bs := w^('"'*ones), w^('\\'*ones)
			if ((q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
				break
			}
		}
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				return i
			case '\\':
				i++ // the escaped byte, whatever it is, is skipped
				continue
			}
			if i&7 == 7 {
				// A word boundary past the stop: back to words.
				i++
				break
			}
		}
		if i >= len(b) {
			return i
		}
	}
}

// read reads the request once.
//
// The receiver refuses a body nested more than MaxNesting deep before
// pdata reads it; read counts the brackets as it goes instead of
// scanning the body first. Until the first error, the bytes this reader
// reads as strings are those the check skips as strings (the one
// difference, a '\\' before the '"' ending an id or a bytes value, is
// refused as soon as it is read), and it reads every other '{', '[',
// '}' and ']' as a token. So its count matches the check's over what
// it read, and what it did not read (after the request's object) is
// scanned.
func (r *JSONReader) read(body []byte) error {
	it := &r.it
	it.reset(body, &r.arena)
	it.count = true
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "resourceSpans", "resource_spans":
			for it.readArray() && it.err == nil {
				r.resourceSpans()
			}
		default:
			it.skip()
		}
	}
	if it.err == nil && jsonTooDeep(body[it.head:], it.nest) {
		return ErrTooDeep
	}
	return it.err
}

// errDeepValues is the refusal of attribute values nested MaxNesting
// deep without as many brackets.
var errDeepValues = fmt.Errorf("%w: attribute values nested without brackets", ErrTooDeep)

// tooDeep stops the reading of a request nested MaxNesting deep.
func (it *jsonIter) tooDeep() {
	if it.err == nil || it.err == errEOF {
		it.err = ErrTooDeep
	}
}

// valuesTooDeep stops the reading of attribute values nested MaxNesting
// deep (which pdata would follow without bound).
func (it *jsonIter) valuesTooDeep() {
	if it.err == nil || it.err == errEOF {
		it.err = errDeepValues
	}
}

// resourceSpans reads a ResourceSpans. In one pass, the spans go to the
// visitor as they come, after BeginSpans at the first "scopeSpans"; a
// resource after that stops the pass (errLate). In careful mode, the first
// pass reads the resource and checks the rest, the second reads the spans.
func (r *JSONReader) resourceSpans() {
	it := &r.it
	r.rs = len(r.res)
	r.scopes = r.scopes[:0]
	begun := false
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "resource":
			if begun {
				it.err = errLate
				return
			}
			start := it.valueStart()
			r.resource(2)
			r.res = append(r.res, it.buf[start:it.head])
		case "scopeSpans", "scope_spans":
			if r.careful {
				r.scopes = append(r.scopes, it.head)
				r.scopeSpansArray(nil)
				continue
			}
			if !begun {
				begun = true
				r.v.BeginSpans(ResourceSpans{json: r.res[r.rs:]})
			}
			r.scopeSpansArray(r.v)
		case "schemaUrl", "schema_url":
			it.readString(false)
		case "deprecatedScopeSpans", "deprecated_scope_spans":
			r.scopeSpansArray(nil)
		default:
			it.skip()
		}
	}
	if it.err != nil || begun {
		return
	}
	r.v.BeginSpans(ResourceSpans{json: r.res[r.rs:]})
	end := it.head
	for _, start := range r.scopes {
		it.head = start
		r.scopeSpansArray(r.v)
	}
	it.head = end
}

// resource reads a Resource at depth, handing its attributes to the
// visitor.
func (r *JSONReader) resource(depth int) {
	it := &r.it
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "attributes":
			for it.readArray() && it.err == nil {
				var val Value
				key := kvJSON(it, depth+1, &val)
				if it.err == nil {
					r.v.ResourceAttr(key, val)
				}
			}
		case "droppedAttributesCount", "dropped_attributes_count":
			it.readUint32Value()
		case "entityRefs", "entity_refs":
			for it.readArray() && it.err == nil {
				entityRefJSON(it)
			}
		default:
			it.skip()
		}
	}
}

func entityRefJSON(it *jsonIter) {
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "schemaUrl", "schema_url", "type":
			it.readString(false)
		case "idKeys", "id_keys", "descriptionKeys", "description_keys":
			for it.readArray() && it.err == nil {
				it.readString(false)
			}
		default:
			it.skip()
		}
	}
}

// scopeSpansArray reads the value of "scopeSpans", handing its spans to
// v when not nil.
func (r *JSONReader) scopeSpansArray(v Visitor) {
	it := &r.it
	for it.readArray() && it.err == nil {
		for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
			switch f {
			case "scope":
				scopeJSON(it, 3)
			case "spans":
				for it.readArray() && it.err == nil {
					r.span(v)
				}
			case "schemaUrl", "schema_url":
				it.readString(false)
			default:
				it.skip()
			}
		}
	}
}

func scopeJSON(it *jsonIter, depth int) {
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "name", "version":
			it.readString(false)
		case "attributes":
			for it.readArray() && it.err == nil {
				kvJSON(it, depth+1, nil)
			}
		case "droppedAttributesCount", "dropped_attributes_count":
			it.readUint32Value()
		default:
			it.skip()
		}
	}
}

// Enum names, by value, as pdata's JSON decoder knows them.
var (
	spanKindNames   = []string{"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"}
	statusCodeNames = []string{"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"}
)

// span reads a Span (level 3) and hands it to v when not nil.
func (r *JSONReader) span(v Visitor) {
	const depth = 3
	it := &r.it
	s := &r.sp
	*s = Span{}
	clear(r.events)
	r.events = r.events[:0]
	start := it.valueStart()
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "traceId", "trace_id":
			readIDJSON(it, s.Trace[:])
		case "spanId", "span_id":
			readIDJSON(it, s.ID[:])
		case "parentSpanId", "parent_span_id":
			readIDJSON(it, s.Parent[:])
		case "traceState", "trace_state":
			s.TraceState = it.readString(v != nil)
		case "name":
			s.Name = it.readString(v != nil)
		case "kind":
			s.Kind = it.readEnum(spanKindNames)
		case "startTimeUnixNano", "start_time_unix_nano":
			s.Start = it.readUint64Value()
		case "endTimeUnixNano", "end_time_unix_nano":
			s.End = it.readUint64Value()
		case "attributes":
			for it.readArray() && it.err == nil {
				var val Value
				key := kvJSON(it, depth+1, &val)
				if v != nil && it.err == nil {
					v.SpanAttr(key, val)
				}
			}
		case "events":
			for it.readArray() && it.err == nil {
				ev := it.valueStart()
				eventJSON(it, depth+1, nil, "", nil)
				if v != nil {
					r.events = append(r.events, it.buf[ev:it.head])
				}
			}
		case "links":
			for it.readArray() && it.err == nil {
				linkJSON(it, depth+1, v)
			}
		case "status":
			statusJSON(it, s)
		case "flags", "droppedAttributesCount", "dropped_attributes_count", "droppedEventsCount",
			"dropped_events_count", "droppedLinksCount", "dropped_links_count":
			it.readUint32Value()
		default:
			it.skip()
		}
	}
	if v == nil || it.err != nil {
		return
	}
	s.Raw = it.buf[start:it.head]
	s.events, s.jr = r.events, r
	v.Span(s)
}

// readIDJSON reads a trace or span id as pdata does: a hex string of the
// id's size, or "" for all zero.
func readIDJSON(it *jsonIter, id []byte) {
	clear(id)
	src := it.readStringAsSlice()
	if len(src) == 0 {
		return
	}
	if len(id) != hex.DecodedLen(len(src)) {
		it.fail("ID.UnmarshalJSONIter", "length mismatch")
		return
	}
	if _, err := hex.Decode(id, src); err != nil {
		it.fail("ID.UnmarshalJSONIter", err.Error())
	}
}

// statusJSON reads a Status into s, merging with an earlier one.
func statusJSON(it *jsonIter, s *Span) {
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "message":
			s.StatusMessage = it.readString(true)
		case "code":
			s.StatusCode = it.readEnum(statusCodeNames)
		default:
			it.skip()
		}
	}
}

// linkJSON reads a Span.Link and hands its ids to v when not nil.
func linkJSON(it *jsonIter, depth int, v Visitor) {
	var trace [16]byte
	var id [8]byte
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "traceId", "trace_id":
			readIDJSON(it, trace[:])
		case "spanId", "span_id":
			readIDJSON(it, id[:])
		case "traceState", "trace_state":
			it.readString(false)
		case "attributes":
			for it.readArray() && it.err == nil {
				kvJSON(it, depth+1, nil)
			}
		case "droppedAttributesCount", "dropped_attributes_count", "flags":
			it.readUint32Value()
		default:
			it.skip()
		}
	}
	if v != nil && it.err == nil {
		v.SpanLink(trace, id)
	}
}

// eventJSON reads a Span.Event at depth: its name into name when not nil
// (the last one counts), and, when attr is not nil, the value of its
// first attribute named key, reporting whether there was one.
func eventJSON(it *jsonIter, depth int, name *string, key string, attr *Value) (found bool) {
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "timeUnixNano", "time_unix_nano":
			it.readUint64Value()
		case "name":
			s := it.readString(name != nil)
			if name != nil {
				*name = s
			}
		case "attributes":
			for it.readArray() && it.err == nil {
				if attr == nil || found {
					kvJSON(it, depth+1, nil)
					continue
				}
				var val Value
				if k := kvJSON(it, depth+1, &val); k == key && it.err == nil {
					*attr, found = val, true
				}
			}
		case "droppedAttributesCount", "dropped_attributes_count":
			it.readUint32Value()
		default:
			it.skip()
		}
	}
	return found
}

// kvJSON reads a KeyValue at depth: its key, and its value into v (merging
// several "value" fields, as pdata does) when v is not nil.
func kvJSON(it *jsonIter, depth int, v *Value) string {
	if depth >= MaxNesting {
		it.valuesTooDeep()
		return ""
	}
	var key string
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "key":
			key = it.readString(v != nil)
		case "value":
			anyValueJSON(it, depth+1, v)
		case "keyStrindex", "key_strindex":
			it.readInt32()
		default:
			it.skip()
		}
	}
	return key
}

// anyValueJSON reads an AnyValue at depth into v when not nil, a later
// member of the oneof replacing an earlier one.
func anyValueJSON(it *jsonIter, depth int, v *Value) {
	if depth >= MaxNesting {
		it.valuesTooDeep()
		return
	}
	keep := v != nil
	var scratch Value
	if v == nil {
		v = &scratch
	}
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		switch f {
		case "stringValue", "string_value":
			*v = Value{Type: ValueStr, Str: it.readString(keep)}
		case "boolValue", "bool_value":
			*v = Value{Type: ValueBool, Bool: it.readBool()}
		case "intValue", "int_value":
			*v = Value{Type: ValueInt, Int: it.readInt64()}
		case "doubleValue", "double_value":
			*v = Value{Type: ValueDouble, Double: it.readFloat64()}
		case "arrayValue", "array_value":
			listJSON(it, depth+1, false)
			*v = Value{Type: ValueOther}
		case "kvlistValue", "kvlist_value":
			listJSON(it, depth+1, true)
			*v = Value{Type: ValueOther}
		case "bytesValue", "bytes_value":
			it.readBytes()
			*v = Value{Type: ValueOther}
		case "stringValueStrindex", "string_value_strindex":
			it.readInt32()
			*v = Value{Type: ValueEmpty}
		default:
			it.skip()
		}
	}
}

// listJSON checks an ArrayValue, or a KeyValueList when kv, at depth.
func listJSON(it *jsonIter, depth int, kv bool) {
	if depth >= MaxNesting {
		it.valuesTooDeep()
		return
	}
	for f := it.readObject(); f != "" && it.err == nil; f = it.readObject() {
		if f != "values" {
			it.skip()
			continue
		}
		for it.readArray() && it.err == nil {
			if kv {
				kvJSON(it, depth+1, nil)
			} else {
				anyValueJSON(it, depth+1, nil)
			}
		}
	}
}

// eventName returns the name of an event read from JSON.
func (r *JSONReader) eventName(b []byte) string {
	var name string
	r.sub.reset(b, &r.arena)
	eventJSON(&r.sub, 4, &name, "", nil)
	return name
}

// eventAttr returns the value of the first attribute named key of an
// event read from JSON.
func (r *JSONReader) eventAttr(b []byte, key string) (Value, bool) {
	var v Value
	r.sub.reset(b, &r.arena)
	ok := eventJSON(&r.sub, 4, nil, key, &v)
	return v, ok
}

// AppendJSON appends the resource of rs, read by a JSONReader, to dst as
// the members of a ResourceSpans object: `"resource":<value as sent>,`
// for each resource it had (a decoder merges them as pdata did).
func (rs ResourceSpans) AppendJSON(dst []byte) []byte {
	for _, v := range rs.json {
		dst = append(dst, `"resource":`...)
		dst = append(dst, v...)
		dst = append(dst, ',')
	}
	return dst
}
