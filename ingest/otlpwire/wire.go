// Package otlpwire reads OTLP/protobuf trace export requests
// (ExportTraceServiceRequest) straight from their bytes, without building
// pdata objects: it walks the request once, hands the fields a reader asks
// for to a Visitor, and checks everything else as pdata's decoder would,
// so that it refuses exactly the requests pdata refuses.
//
// Nothing is allocated per span: strings handed to the Visitor alias the
// request's bytes (see ReadTraces for how long they stay valid).
package otlpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// MaxNesting bounds how deeply the messages of a request may nest, the
// request itself at level 0, counting the messages pdata's decoder
// recurses into (as the receiver's nesting check counts them). A message
// at level MaxNesting refuses the request with ErrTooDeep.
const MaxNesting = 64

// Errors of ReadTraces. Every error means the request is malformed; pdata's
// decoder refuses the same requests, with other words.
var (
	// ErrTooDeep means the request nests MaxNesting levels deep or more.
	ErrTooDeep = fmt.Errorf("otlpwire: message nesting deeper than %d levels", MaxNesting)
	// ErrTruncated means a field runs past the end of its message.
	ErrTruncated = errors.New("otlpwire: unexpected end of message")
	// ErrOverflow means a varint is longer than ten bytes.
	ErrOverflow = errors.New("otlpwire: integer overflow")
	// ErrMalformed covers the remaining wire errors: a zero or negative
	// field number, an unknown wire type, an unbalanced group, a negative
	// length, a trace or span id of the wrong length.
	ErrMalformed = errors.New("otlpwire: malformed message")
)

// wireTypeError is a known field with the wrong wire type.
func wireTypeError(msg string, num int32, typ int8) error {
	return fmt.Errorf("%w: wire type %d for field %d of %s", ErrMalformed, typ, num, msg)
}

// Wire types.
const (
	wireVarint     = 0
	wireI64        = 1
	wireLen        = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireI32        = 5
)

// The readers below follow pdata's (go.opentelemetry.io/collector/pdata
// internal/proto/unmarshal.go) where it differs from protowire: a varint
// of ten bytes keeps its low 64 bits whatever its last byte, and groups
// are skipped without checking their field numbers.

// varint reads a varint at pos.
func varint(b []byte, pos int) (uint64, int, error) {
	if pos < len(b) && b[pos] < 0x80 {
		return uint64(b[pos]), pos + 1, nil
	}
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if pos >= len(b) {
			return 0, 0, ErrTruncated
		}
		c := b[pos]
		pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, pos, nil
		}
	}
	return 0, 0, ErrOverflow
}

// tag reads a field tag at pos.
func tag(b []byte, pos int) (int32, int8, int, error) {
	if pos < len(b) && b[pos] < 0x80 {
		c := b[pos]
		if c>>3 == 0 {
			return 0, 0, 0, ErrMalformed
		}
		return int32(c >> 3), int8(c & 7), pos + 1, nil
	}
	t, pos, err := varint(b, pos)
	if err != nil {
		return 0, 0, 0, err
	}
	num := int32(t >> 3)
	if num <= 0 {
		return 0, 0, 0, ErrMalformed
	}
	return num, int8(t & 7), pos, nil
}

// field reads the bytes of a length-delimited field whose tag ended at pos.
func field(b []byte, pos int) ([]byte, int, error) {
	var n uint64
	if pos < len(b) && b[pos] < 0x80 {
		n = uint64(b[pos])
		pos++
	} else {
		var err error
		if n, pos, err = varint(b, pos); err != nil {
			return nil, 0, err
		}
	}
	l := int(n)
	if l < 0 {
		return nil, 0, ErrMalformed
	}
	end := pos + l
	if end < 0 || end > len(b) {
		return nil, 0, ErrTruncated
	}
	return b[pos:end], end, nil
}

// fixed64 reads an I64 field whose tag ended at pos.
func fixed64(b []byte, pos int) (uint64, int, error) {
	if pos+8 > len(b) {
		return 0, 0, ErrTruncated
	}
	return binary.LittleEndian.Uint64(b[pos:]), pos + 8, nil
}

// skip skips a field of wire type typ whose tag ended at pos, as pdata's
// proto.ConsumeUnknown does (groups without recursion, up to the first
// field with a value once balanced).
func skip(b []byte, pos int, typ int8) (int, error) {
	depth := 0
	for pos < len(b) {
		var err error
		switch typ {
		case wireVarint:
			_, pos, err = varint(b, pos)
			return pos, err
		case wireI64:
			if pos+8 > len(b) {
				return 0, ErrTruncated
			}
			return pos + 8, nil
		case wireLen:
			_, pos, err = field(b, pos)
			return pos, err
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, ErrMalformed
			}
			depth--
		case wireI32:
			if pos+4 > len(b) {
				return 0, ErrTruncated
			}
			return pos + 4, nil
		default:
			return 0, ErrMalformed
		}
		if depth == 0 {
			return pos, nil
		}
		if _, typ, pos, err = tag(b, pos); err != nil {
			return 0, err
		}
	}
	return 0, ErrTruncated
}

// str returns b as a string sharing its memory.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// ValueType is the type of an attribute value, as pcommon.ValueType names
// them.
type ValueType uint8

// Value types. ValueOther is a map, a slice, bytes or a value of a type
// pdata has no name for (which pcommon calls empty).
const (
	ValueEmpty ValueType = iota
	ValueStr
	ValueBool
	ValueInt
	ValueDouble
	ValueOther
)

// Value is an attribute value reduced to its scalar. Only the field of its
// Type is set: Str is "" unless Type is ValueStr, as pcommon.Value.Str()
// is, and likewise Bool, Int and Double.
type Value struct {
	Type   ValueType
	Bool   bool
	Str    string
	Int    int64
	Double float64
}

// anyValue reads an AnyValue at depth into v, merging into what v holds
// as pdata does (a later member of the oneof replaces an earlier one).
func anyValue(b []byte, depth int, v *Value) error {
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
		case 1, 5, 6, 7: // string, array, key-value list, bytes
			if typ != wireLen {
				return wireTypeError("AnyValue", num, typ)
			}
			var f []byte
			if f, pos, err = field(b, pos); err != nil {
				return err
			}
			switch num {
			case 1:
				*v = Value{Type: ValueStr, Str: str(f)}
				continue
			case 5:
				err = repeated(f, depth+1, "ArrayValue", anyValueSkip)
			case 6:
				err = repeated(f, depth+1, "KeyValueList", keyValueSkip)
			}
			if err != nil {
				return err
			}
			*v = Value{Type: ValueOther}
		case 2, 3, 8: // bool, int, string table index
			if typ != wireVarint {
				return wireTypeError("AnyValue", num, typ)
			}
			var x uint64
			if x, pos, err = varint(b, pos); err != nil {
				return err
			}
			switch num {
			case 2:
				*v = Value{Type: ValueBool, Bool: x != 0}
			case 3:
				*v = Value{Type: ValueInt, Int: int64(x)}
			default:
				*v = Value{Type: ValueEmpty}
			}
		case 4: // double
			if typ != wireI64 {
				return wireTypeError("AnyValue", num, typ)
			}
			var x uint64
			if x, pos, err = fixed64(b, pos); err != nil {
				return err
			}
			*v = Value{Type: ValueDouble, Double: math.Float64frombits(x)}
		default:
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
		}
	}
	return nil
}

// anyValueSkip checks an AnyValue at depth.
func anyValueSkip(b []byte, depth int) error {
	var v Value
	return anyValue(b, depth, &v)
}

// keyValueSkip checks a KeyValue at depth.
func keyValueSkip(b []byte, depth int) error {
	_, err := keyValue(b, depth, nil)
	return err
}

// repeated checks b, a message at depth whose field 1 (the only one it
// knows) repeats a message that check reads, as ArrayValue and
// KeyValueList hold their values.
func repeated(b []byte, depth int, msg string, check func([]byte, int) error) error {
	if depth >= MaxNesting {
		return ErrTooDeep
	}
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		if num != 1 {
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
			continue
		}
		if typ != wireLen {
			return wireTypeError(msg, num, typ)
		}
		var f []byte
		if f, pos, err = field(b, pos); err != nil {
			return err
		}
		if err := check(f, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// keyValue reads a KeyValue at depth: its key, and its value into v when v
// is not nil. Several value fields merge, as in pdata.
func keyValue(b []byte, depth int, v *Value) (string, error) {
	if depth >= MaxNesting {
		return "", ErrTooDeep
	}
	var key string
	var scratch Value
	if v == nil {
		v = &scratch
	}
	*v = Value{}
	for pos := 0; pos < len(b); {
		num, typ, p, err := tag(b, pos)
		if err != nil {
			return "", err
		}
		pos = p
		switch num {
		case 1, 2:
			if typ != wireLen {
				return "", wireTypeError("KeyValue", num, typ)
			}
			var f []byte
			if f, pos, err = field(b, pos); err != nil {
				return "", err
			}
			if num == 1 {
				key = str(f)
				continue
			}
			if err := anyValue(f, depth+1, v); err != nil {
				return "", err
			}
		case 3: // key string table index
			if typ != wireVarint {
				return "", wireTypeError("KeyValue", num, typ)
			}
			if _, pos, err = varint(b, pos); err != nil {
				return "", err
			}
		default:
			if pos, err = skip(b, pos, typ); err != nil {
				return "", err
			}
		}
	}
	return key, nil
}
