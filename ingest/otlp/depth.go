package otlp

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
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
// maxNesting, before they reach a recursive decoder.
func checkNesting(body []byte, f format) error {
	if f == formatJSON {
		return checkJSONNesting(body)
	}
	if protoTooDeep(body, 0) {
		return errTooDeep
	}
	return nil
}

// protoTooDeep reports whether b, read as a protobuf message at depth,
// holds length-delimited fields that themselves read as messages nested
// beyond maxNesting. Without the schema it cannot tell a sub-message from a
// string, so it tries each length-delimited field as a message: a string
// fails to parse within a few bytes, and since a field's bytes are scanned
// by the field's own call only, the whole scan is linear in len(b). Its
// recursion is bounded by maxNesting.
func protoTooDeep(b []byte, depth int) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num <= 0 {
			return false // not a message: a string or garbage the decoder will refuse
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			if len(v) > 0 {
				if depth+1 >= maxNesting {
					if looksLikeMessage(v) {
						return true
					}
				} else if protoTooDeep(v, depth+1) {
					return true
				}
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return false
}

// looksLikeMessage reports whether b starts with a well-formed
// length-delimited field, the only kind that can nest further.
func looksLikeMessage(b []byte) bool {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num <= 0 || typ != protowire.BytesType {
		return false
	}
	_, m := protowire.ConsumeBytes(b[n:])
	return m >= 0
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
type nestingCodec struct{ delegate encoding.CodecV2 }

// newNestingCodec wraps the codec registered as "proto": pdata's, which
// registers itself over gRPC's own (gRPC always registers one).
func newNestingCodec() nestingCodec { return nestingCodec{delegate: encoding.GetCodecV2("proto")} }

func (c nestingCodec) Marshal(v any) (mem.BufferSlice, error) { return c.delegate.Marshal(v) }

func (c nestingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	tooDeep := protoTooDeep(buf.ReadOnlyData(), 0)
	buf.Free()
	if tooDeep {
		return errTooDeep
	}
	return c.delegate.Unmarshal(data, v)
}

func (c nestingCodec) Name() string { return c.delegate.Name() }
