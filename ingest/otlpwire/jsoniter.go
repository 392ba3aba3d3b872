package otlpwire

// The tokenizer of ReadTracesJSON. pdata reads OTLP/JSON with
// github.com/json-iterator/go (v1.1.12, ConfigFastest, through its
// internal/json wrapper), whose grammar is not JSON's: an object may start
// at a ',' or end at a '}' it did not open, an array may start at a ',',
// a skipped number is checked by a float parse, and so on. To refuse
// exactly the requests pdata refuses, jsonIter is a port of the
// json-iterator functions pdata calls (MIT licence, Copyright (c) 2016
// json-iterator), step for step, with two changes: it reads one
// complete buffer (no io.Reader), and it returns strings that alias the
// buffer, or the reader's arena when they hold escapes, instead of
// copying each one. Like json-iterator it records the first error and
// carries on; the readers above it stop at the first error they see,
// which gives the same verdict because an error, once recorded, is never
// cleared (but for the one case skipNumber handles, as json-iterator
// does).

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
)

// errEOF is json-iterator's io.EOF: the buffer ended where more was
// expected. A later error replaces it.
var errEOF = fmt.Errorf("%w: unexpected end of JSON", ErrMalformed)

// jsonValueType is json-iterator's ValueType.
type jsonValueType uint8

const (
	jsonInvalid jsonValueType = iota
	jsonString
	jsonNumber
	jsonNil
	jsonBool
	jsonArray
	jsonObject
)

var (
	jsonValueTypes  [256]jsonValueType
	jsonIntDigits   [256]int8
	jsonFloatDigits [256]int8
)

const (
	invalidCharForNumber = int8(-1)
	endOfNumber          = int8(-2)
	dotInNumber          = int8(-3)

	uint32SafeToMultiply10 = uint32(0xffffffff)/10 - 1
	uint64SafeToMultiple10 = uint64(0xffffffffffffffff)/10 - 1
	maxFloat64             = 1<<53 - 1

	// jsonMaxDepth is json-iterator's bound on the nesting Skip follows.
	jsonMaxDepth = 10000
)

var pow10 = []uint64{1, 10, 100, 1000, 10000, 100000, 1000000}

func init() {
	for i := range jsonIntDigits {
		jsonIntDigits[i] = invalidCharForNumber
		jsonFloatDigits[i] = invalidCharForNumber
	}
	for i := int8('0'); i <= int8('9'); i++ {
		jsonIntDigits[i] = i - int8('0')
		jsonFloatDigits[i] = i - int8('0')
	}
	for _, c := range []byte{',', ']', '}', ' ', '\t', '\n'} {
		jsonFloatDigits[c] = endOfNumber
	}
	jsonFloatDigits['.'] = dotInNumber
	jsonValueTypes['"'] = jsonString
	for _, c := range []byte("-0123456789") {
		jsonValueTypes[c] = jsonNumber
	}
	jsonValueTypes['t'] = jsonBool
	jsonValueTypes['f'] = jsonBool
	jsonValueTypes['n'] = jsonNil
	jsonValueTypes['['] = jsonArray
	jsonValueTypes['{'] = jsonObject
}

// jsonIter is json-iterator's Iterator over one buffer. It is not safe
// for concurrent use.
type jsonIter struct {
	buf   []byte
	head  int
	depth int
	err   error
	arena *arena

	// nest counts the brackets read so far as the receiver's nesting
	// check counts them ('{' and '[' up, '}' and ']' down), each once:
	// seen is past the last one counted (a byte read again after
	// unreadByte, or by a second pass, is not counted again). A
	// request accepted so far has the same brackets outside strings for
	// this reader as for the check (see ReadTraces). count enables it.
	nest, seen int
	count      bool
}

func (it *jsonIter) reset(buf []byte, a *arena) {
	*it = jsonIter{buf: buf, arena: a}
}

// fail is json-iterator's ReportError: the first error counts, but an
// end of buffer gives way to a later error.
func (it *jsonIter) fail(op, msg string) {
	if it.err != nil && it.err != errEOF {
		return
	}
	it.err = fmt.Errorf("%w: JSON %s: %s at byte %d", ErrMalformed, op, msg, it.head)
}

// loadMore is json-iterator's loadMore without a reader: the end.
func (it *jsonIter) loadMore() bool {
	if it.err == nil {
		it.head = len(it.buf)
		it.err = errEOF
	}
	return false
}

func (it *jsonIter) nextToken() byte {
	for i := it.head; i < len(it.buf); i++ {
		switch c := it.buf[i]; c {
		case ' ', '\n', '\t', '\r':
			continue
		case '{', '[', '}', ']':
			it.head = i + 1
			if it.count && i >= it.seen {
				it.bracket(c, i)
			}
			return c
		default:
			it.head = i + 1
			return c
		}
	}
	it.loadMore()
	return 0
}

// bracket counts bracket c, at i, refusing the request with ErrTooDeep
// once the count passes MaxNesting, as the receiver's check would.
func (it *jsonIter) bracket(c byte, i int) {
	it.seen = i + 1
	if c == '}' || c == ']' {
		it.nest--
		return
	}
	if it.nest++; it.nest > MaxNesting {
		it.tooDeep()
	}
}

func (it *jsonIter) readByte() byte {
	if it.head == len(it.buf) {
		it.loadMore()
		return 0
	}
	c := it.buf[it.head]
	it.head++
	return c
}

func (it *jsonIter) unreadByte() {
	if it.err != nil {
		return
	}
	it.head--
}

func (it *jsonIter) whatIsNext() jsonValueType {
	t := jsonValueTypes[it.nextToken()]
	it.unreadByte()
	return t
}

// valueStart returns where the next value starts, past whitespace.
func (it *jsonIter) valueStart() int {
	for i := it.head; i < len(it.buf); i++ {
		switch it.buf[i] {
		case ' ', '\n', '\t', '\r':
			continue
		}
		return i
	}
	return len(it.buf)
}

func (it *jsonIter) skipThreeBytes(b1, b2, b3 byte) {
	if it.readByte() != b1 || it.readByte() != b2 || it.readByte() != b3 {
		it.fail("skipThreeBytes", "expect "+string([]byte{b1, b2, b3}))
	}
}

func (it *jsonIter) skipFourBytes(b1, b2, b3, b4 byte) {
	if it.readByte() != b1 || it.readByte() != b2 || it.readByte() != b3 || it.readByte() != b4 {
		it.fail("skipFourBytes", "expect "+string([]byte{b1, b2, b3, b4}))
	}
}

// readObject is ReadObject: the next field's name, "" at the end of the
// object (or for a field named "", as in json-iterator).
func (it *jsonIter) readObject() string {
	if f, ok := it.nextField(); ok {
		return f
	}
	switch c := it.nextToken(); c {
	case 'n':
		it.skipThreeBytes('u', 'l', 'l')
		return ""
	case '{':
		c = it.nextToken()
		if c == '"' {
			it.unreadByte()
			return it.fieldName()
		}
		if c == '}' {
			return ""
		}
		it.fail("ReadObject", `expect " after {, but found `+string([]byte{c}))
		return ""
	case ',':
		return it.fieldName()
	case '}':
		return ""
	default:
		it.fail("ReadObject", "expect { or , or } or n, but found "+string([]byte{c}))
		return ""
	}
}

// nextField is readObject's path for the common next field, `,"name":`
// with nothing between its tokens and nothing to unescape in its name:
// ok false, and nothing read, for anything else.
func (it *jsonIter) nextField() (string, bool) {
	i := it.head
	if i+2 >= len(it.buf) || it.buf[i] != ',' || it.buf[i+1] != '"' {
		return "", false
	}
	start := i + 2
	for j := plainRun(it.buf, start); j < len(it.buf); j++ {
		switch c := it.buf[j]; {
		case c == '"':
			if j+1 >= len(it.buf) || it.buf[j+1] != ':' {
				return "", false
			}
			it.head = j + 2
			return str(it.buf[start:j]), true
		case c == '\\' || c < ' ':
			return "", false
		}
	}
	return "", false
}

func (it *jsonIter) fieldName() string {
	field := it.readString(true)
	if c := it.nextToken(); c != ':' {
		it.fail("ReadObject", "expect : after object field, but found "+string([]byte{c}))
	}
	return field
}

// readArray is ReadArray: whether another element follows.
func (it *jsonIter) readArray() bool {
	switch c := it.nextToken(); c {
	case 'n':
		it.skipThreeBytes('u', 'l', 'l')
		return false
	case '[':
		if it.nextToken() != ']' {
			it.unreadByte()
			return true
		}
		return false
	case ']':
		return false
	case ',':
		return true
	default:
		it.fail("ReadArray", "expect [ or , or ] or n, but found "+string([]byte{c}))
		return false
	}
}

// readString is ReadString. With keep false the string is checked, not
// returned. A string without escapes aliases the buffer; one with escapes
// is unescaped into the arena.
func (it *jsonIter) readString(keep bool) string {
	c := it.nextToken()
	if c == '"' {
		for i := plainRun(it.buf, it.head); i < len(it.buf); i++ {
			c := it.buf[i]
			if c == '"' {
				s := it.buf[it.head:i]
				it.head = i + 1
				if !keep {
					return ""
				}
				return str(s)
			} else if c == '\\' {
				break
			} else if c < ' ' {
				it.fail("ReadString", fmt.Sprintf("invalid control character found: %d", c))
				return ""
			}
		}
		return it.readStringSlowPath(keep)
	} else if c == 'n' {
		it.skipThreeBytes('u', 'l', 'l')
		return ""
	}
	it.fail("ReadString", `expects " or n, but found `+string([]byte{c}))
	return ""
}

// plainRun returns the index of the first byte at or after i that is a
// '"', a '\\' or a control character, or a nearby index before it, eight
// bytes at a time.
func plainRun(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q := w ^ ('"' * ones)
		bs := w ^ ('\\' * ones)
		// A byte below 0x20, or equal to '"' or '\\', sets a high bit
		// here (the usual tests for a byte below n and a zero byte:
		// exact as to whether the word holds one).
		if ((w-0x20*ones)&^w|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			return i
		}
	}
	return i
}

func (it *jsonIter) readStringSlowPath(keep bool) string {
	// Checked strings are unescaped past the arena's end too, and
	// forgotten.
	dst := it.arena.start()
	for it.err == nil {
		c := it.readByte()
		if c == '"' {
			if !keep {
				return ""
			}
			return it.arena.finish(dst)
		}
		if c == '\\' {
			c = it.readByte()
			dst = it.readEscapedChar(c, dst)
		} else {
			dst = append(dst, c)
		}
	}
	it.fail("readStringSlowPath", "unexpected end of input")
	return ""
}

func (it *jsonIter) readEscapedChar(c byte, dst []byte) []byte {
	switch c {
	case 'u':
		r := it.readU4()
		if utf16.IsSurrogate(r) {
			c = it.readByte()
			if it.err != nil {
				return nil
			}
			if c != '\\' {
				it.unreadByte()
				return appendRune(dst, r)
			}
			c = it.readByte()
			if it.err != nil {
				return nil
			}
			if c != 'u' {
				dst = appendRune(dst, r)
				return it.readEscapedChar(c, dst)
			}
			r2 := it.readU4()
			if it.err != nil {
				return nil
			}
			if combined := utf16.DecodeRune(r, r2); combined == '\uFFFD' {
				dst = appendRune(dst, r)
				dst = appendRune(dst, r2)
			} else {
				dst = appendRune(dst, combined)
			}
		} else {
			dst = appendRune(dst, r)
		}
	case '"':
		dst = append(dst, '"')
	case '\\':
		dst = append(dst, '\\')
	case '/':
		dst = append(dst, '/')
	case 'b':
		dst = append(dst, '\b')
	case 'f':
		dst = append(dst, '\f')
	case 'n':
		dst = append(dst, '\n')
	case 'r':
		dst = append(dst, '\r')
	case 't':
		dst = append(dst, '\t')
	default:
		it.fail("readEscapedChar", `invalid escape char after \`)
		return nil
	}
	return dst
}

func (it *jsonIter) readU4() rune {
	var r rune
	for range 4 {
		c := it.readByte()
		if it.err != nil {
			return r
		}
		switch {
		case c >= '0' && c <= '9':
			r = r*16 + rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r*16 + rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r*16 + rune(c-'A'+10)
		default:
			it.fail("readU4", "expects 0~9 or a~f, but found "+string([]byte{c}))
			return r
		}
	}
	return r
}

// appendRune is json-iterator's appendRune: surrogates and runes beyond
// the last code point become U+FFFD.
func appendRune(p []byte, r rune) []byte {
	const (
		tx, t2, t3, t4 = 0x80, 0xC0, 0xE0, 0xF0
		maskx          = 0x3F
	)
	switch i := uint32(r); {
	case i <= 1<<7-1:
		return append(p, byte(r))
	case i <= 1<<11-1:
		return append(p, t2|byte(r>>6), tx|byte(r)&maskx)
	case i > 0x10FFFF, 0xD800 <= i && i <= 0xDFFF:
		r = '\uFFFD'
		fallthrough
	case i <= 1<<16-1:
		return append(p, t3|byte(r>>12), tx|byte(r>>6)&maskx, tx|byte(r)&maskx)
	default:
		return append(p, t4|byte(r>>18), tx|byte(r>>12)&maskx, tx|byte(r>>6)&maskx, tx|byte(r)&maskx)
	}
}

// readStringAsSlice is ReadStringAsSlice: the bytes up to the next '"',
// escapes and all.
func (it *jsonIter) readStringAsSlice() []byte {
	if c := it.nextToken(); c != '"' {
		it.fail("ReadStringAsSlice", `expects " or n, but found `+string([]byte{c}))
		return nil
	}
	for i := it.head; i < len(it.buf); i++ {
		if it.buf[i] == '"' {
			s := it.buf[it.head:i]
			it.head = i + 1
			return s
		}
	}
	it.head = len(it.buf)
	it.loadMore()
	return nil
}

func (it *jsonIter) readBool() bool {
	switch c := it.nextToken(); c {
	case 't':
		it.skipThreeBytes('r', 'u', 'e')
		return true
	case 'f':
		it.skipFourBytes('a', 'l', 's', 'e')
		return false
	default:
		it.fail("ReadBool", "expect t or f, but found "+string([]byte{c}))
		return false
	}
}

// Skip and its helpers (json-iterator's strict mode).

func (it *jsonIter) skip() {
	switch c := it.nextToken(); c {
	case '"':
		it.skipString()
	case 'n':
		it.skipThreeBytes('u', 'l', 'l')
	case 't':
		it.skipThreeBytes('r', 'u', 'e')
	case 'f':
		it.skipFourBytes('a', 'l', 's', 'e')
	case '0':
		it.unreadByte()
		it.readFloat32()
	case '-', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		it.skipNumber()
	case '[':
		it.skipArray()
	case '{':
		it.skipObject()
	default:
		it.fail("Skip", fmt.Sprintf("do not know how to skip: %v", c))
	}
}

func (it *jsonIter) skipNumber() {
	if it.trySkipNumber() {
		return
	}
	it.unreadByte()
	if it.err != nil && it.err != errEOF {
		return
	}
	it.readFloat64()
	if it.err != nil && it.err != errEOF {
		// json-iterator clears the float's error and tries a big float.
		it.err = nil
		it.readBigFloat()
	}
}

func (it *jsonIter) trySkipNumber() bool {
	dotFound := false
	for i := it.head; i < len(it.buf); i++ {
		c := it.buf[i]
		switch c {
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		case '.':
			if dotFound {
				it.fail("validateNumber", "more than one dot found in number")
				return true
			}
			if i+1 == len(it.buf) {
				return false
			}
			switch it.buf[i+1] {
			case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			default:
				it.fail("validateNumber", "missing digit after dot")
				return true
			}
			dotFound = true
		default:
			switch c {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				if it.head == i {
					return false
				}
				it.head = i
				return true
			}
			return false
		}
	}
	return false
}

func (it *jsonIter) skipString() {
	if !it.trySkipString() {
		it.unreadByte()
		it.readString(false)
	}
}

func (it *jsonIter) trySkipString() bool {
	for i := it.head; i < len(it.buf); i++ {
		c := it.buf[i]
		if c == '"' {
			it.head = i + 1
			return true
		} else if c == '\\' {
			return false
		} else if c < ' ' {
			it.fail("trySkipString", fmt.Sprintf("invalid control character found: %d", c))
			return true
		}
	}
	return false
}

func (it *jsonIter) incrementDepth() bool {
	it.depth++
	if it.depth <= jsonMaxDepth {
		return true
	}
	it.fail("incrementDepth", "exceeded max depth")
	return false
}

func (it *jsonIter) decrementDepth() bool {
	it.depth--
	if it.depth >= 0 {
		return true
	}
	it.fail("decrementDepth", "unexpected negative nesting")
	return false
}

// skipObject is ReadObjectCB with a callback skipping each value.
func (it *jsonIter) skipObject() {
	it.unreadByte()
	c := it.nextToken()
	if c == '{' {
		if !it.incrementDepth() {
			return
		}
		c = it.nextToken()
		if c == '"' {
			it.unreadByte()
			it.fieldNameSkip()
			it.skip()
			c = it.nextToken()
			for c == ',' {
				it.fieldNameSkip()
				it.skip()
				c = it.nextToken()
			}
			if c != '}' {
				it.fail("ReadObjectCB", "object not ended with }")
				it.decrementDepth()
				return
			}
			it.decrementDepth()
			return
		}
		if c == '}' {
			it.decrementDepth()
			return
		}
		it.fail("ReadObjectCB", `expect " after {, but found `+string([]byte{c}))
		it.decrementDepth()
		return
	}
	if c == 'n' {
		it.skipThreeBytes('u', 'l', 'l')
		return
	}
	it.fail("ReadObjectCB", "expect { or n, but found "+string([]byte{c}))
}

func (it *jsonIter) fieldNameSkip() {
	it.readString(false)
	if c := it.nextToken(); c != ':' {
		it.fail("ReadObject", "expect : after object field, but found "+string([]byte{c}))
	}
}

// skipArray is ReadArrayCB with a callback skipping each element.
func (it *jsonIter) skipArray() {
	it.unreadByte()
	c := it.nextToken()
	if c == '[' {
		if !it.incrementDepth() {
			return
		}
		c = it.nextToken()
		if c != ']' {
			it.unreadByte()
			it.skip()
			c = it.nextToken()
			for c == ',' {
				it.skip()
				c = it.nextToken()
			}
			if c != ']' {
				it.fail("ReadArrayCB", "expect ] in the end, but found "+string([]byte{c}))
				it.decrementDepth()
				return
			}
			it.decrementDepth()
			return
		}
		it.decrementDepth()
		return
	}
	if c == 'n' {
		it.skipThreeBytes('u', 'l', 'l')
		return
	}
	it.fail("ReadArrayCB", "expect [ or n, but found "+string([]byte{c}))
}

// Numbers.

func (it *jsonIter) readInt32Raw() int32 {
	c := it.nextToken()
	if c == '-' {
		val := it.readUint32(it.readByte())
		if val > 1<<31 {
			it.fail("ReadInt32", "overflow: "+strconv.FormatInt(int64(val), 10))
			return 0
		}
		return -int32(val)
	}
	val := it.readUint32(c)
	if val > 1<<31-1 {
		it.fail("ReadInt32", "overflow: "+strconv.FormatInt(int64(val), 10))
		return 0
	}
	return int32(val)
}

func (it *jsonIter) readInt64Raw() int64 {
	c := it.nextToken()
	if c == '-' {
		val := it.readUint64(it.readByte())
		if val > 1<<63 {
			it.fail("ReadInt64", "overflow: "+strconv.FormatUint(val, 10))
			return 0
		}
		return -int64(val)
	}
	val := it.readUint64(c)
	if val > 1<<63-1 {
		it.fail("ReadInt64", "overflow: "+strconv.FormatUint(val, 10))
		return 0
	}
	return int64(val)
}

func (it *jsonIter) readUint32(c byte) uint32 {
	ind := jsonIntDigits[c]
	if ind == 0 {
		it.assertInteger()
		return 0
	}
	if ind == invalidCharForNumber {
		it.fail("readUint32", "unexpected character: "+string([]byte{byte(ind)}))
		return 0
	}
	value := uint32(ind)
	if len(it.buf)-it.head > 10 {
		// json-iterator reads up to seven more digits unchecked: they
		// cannot overflow.
		i := it.head
		for range 7 {
			d := jsonIntDigits[it.buf[i]]
			if d == invalidCharForNumber {
				it.head = i
				it.assertInteger()
				return value
			}
			value = value*10 + uint32(d)
			i++
		}
		it.head = i
		if jsonIntDigits[it.buf[i]] == invalidCharForNumber {
			it.assertInteger()
			return value
		}
	}
	for i := it.head; i < len(it.buf); i++ {
		ind = jsonIntDigits[it.buf[i]]
		if ind == invalidCharForNumber {
			it.head = i
			it.assertInteger()
			return value
		}
		if value > uint32SafeToMultiply10 {
			value2 := (value << 3) + (value << 1) + uint32(ind)
			if value2 < value {
				it.fail("readUint32", "overflow")
				return 0
			}
			value = value2
			continue
		}
		value = (value << 3) + (value << 1) + uint32(ind)
	}
	it.head = len(it.buf)
	it.loadMore()
	it.assertInteger()
	return value
}

func (it *jsonIter) readUint64(c byte) uint64 {
	ind := jsonIntDigits[c]
	if ind == 0 {
		it.assertInteger()
		return 0
	}
	if ind == invalidCharForNumber {
		it.fail("readUint64", "unexpected character: "+string([]byte{byte(ind)}))
		return 0
	}
	value := uint64(ind)
	if len(it.buf)-it.head > 10 {
		i := it.head
		for range 7 {
			d := jsonIntDigits[it.buf[i]]
			if d == invalidCharForNumber {
				it.head = i
				it.assertInteger()
				return value
			}
			value = value*10 + uint64(d)
			i++
		}
		it.head = i
		if jsonIntDigits[it.buf[i]] == invalidCharForNumber {
			it.assertInteger()
			return value
		}
	}
	for i := it.head; i < len(it.buf); i++ {
		ind = jsonIntDigits[it.buf[i]]
		if ind == invalidCharForNumber {
			it.head = i
			it.assertInteger()
			return value
		}
		if value > uint64SafeToMultiple10 {
			value2 := (value << 3) + (value << 1) + uint64(ind)
			if value2 < value {
				it.fail("readUint64", "overflow")
				return 0
			}
			value = value2
			continue
		}
		value = (value << 3) + (value << 1) + uint64(ind)
	}
	it.head = len(it.buf)
	it.loadMore()
	it.assertInteger()
	return value
}

func (it *jsonIter) assertInteger() {
	if it.head < len(it.buf) && it.buf[it.head] == '.' {
		it.fail("assertInteger", "can not decode float as int")
	}
}

func (it *jsonIter) readFloat32() float32 {
	if it.nextToken() == '-' {
		return -it.readPositiveFloat32()
	}
	it.unreadByte()
	return it.readPositiveFloat32()
}

func (it *jsonIter) readFloat64Raw() float64 {
	if it.nextToken() == '-' {
		return -it.readPositiveFloat64()
	}
	it.unreadByte()
	return it.readPositiveFloat64()
}

// readPositiveFloat32 is json-iterator's fast float parse, which falls
// back to strconv for what it cannot read exactly.
func (it *jsonIter) readPositiveFloat32() float32 {
	value, ok, done := it.fastFloat(false)
	if done {
		if !ok {
			return 0
		}
		return float32(value)
	}
	return it.readFloat32SlowPath()
}

func (it *jsonIter) readPositiveFloat64() float64 {
	value, ok, done := it.fastFloat(true)
	if done {
		if !ok {
			return 0
		}
		return value
	}
	return it.readFloat64SlowPath()
}

// fastFloat is the shared body of readPositiveFloat32 and 64: done false
// means the slow path is to be taken; ok false means it failed.
func (it *jsonIter) fastFloat(is64 bool) (v float64, ok, done bool) {
	i := it.head
	if i == len(it.buf) {
		return 0, false, false
	}
	c := it.buf[i]
	i++
	ind := jsonFloatDigits[c]
	switch ind {
	case invalidCharForNumber:
		return 0, false, false
	case endOfNumber:
		it.fail("readFloat", "empty number")
		return 0, false, true
	case dotInNumber:
		it.fail("readFloat", "leading dot is invalid")
		return 0, false, true
	case 0:
		if i == len(it.buf) {
			return 0, false, false
		}
		switch it.buf[i] {
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			it.fail("readFloat", "leading zero is invalid")
			return 0, false, true
		}
	}
	value := uint64(ind)
loop:
	for ; i < len(it.buf); i++ {
		c = it.buf[i]
		ind := jsonFloatDigits[c]
		switch ind {
		case invalidCharForNumber:
			return 0, false, false
		case endOfNumber:
			it.head = i
			if is64 {
				return float64(value), true, true
			}
			return float64(float32(value)), true, true
		case dotInNumber:
			break loop
		}
		if value > uint64SafeToMultiple10 {
			return 0, false, false
		}
		value = (value << 3) + (value << 1) + uint64(ind)
	}
	if c == '.' {
		i++
		decimalPlaces := 0
		if i == len(it.buf) {
			return 0, false, false
		}
		for ; i < len(it.buf); i++ {
			c = it.buf[i]
			ind := jsonFloatDigits[c]
			switch ind {
			case endOfNumber:
				if decimalPlaces > 0 && decimalPlaces < len(pow10) {
					it.head = i
					if is64 {
						return float64(value) / float64(pow10[decimalPlaces]), true, true
					}
					return float64(float32(float64(value) / float64(pow10[decimalPlaces]))), true, true
				}
				return 0, false, false
			case invalidCharForNumber, dotInNumber:
				return 0, false, false
			}
			decimalPlaces++
			if value > uint64SafeToMultiple10 {
				return 0, false, false
			}
			value = (value << 3) + (value << 1) + uint64(ind)
			if is64 && value > maxFloat64 {
				return 0, false, false
			}
		}
	}
	return 0, false, false
}

func (it *jsonIter) readNumberAsString() string {
	start := it.head
	i := it.head
	for ; i < len(it.buf); i++ {
		switch it.buf[i] {
		case '+', '-', '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			continue
		}
		break
	}
	s := str(it.buf[start:i])
	if i == len(it.buf) {
		it.loadMore()
	} else {
		it.head = i
	}
	if it.err != nil && it.err != errEOF {
		return s
	}
	if len(s) == 0 {
		it.fail("readNumberAsString", "invalid number")
	}
	return s
}

func (it *jsonIter) readFloat32SlowPath() float32 {
	s := it.readNumberAsString()
	if it.err != nil && it.err != errEOF {
		return 0
	}
	if msg := validateFloat(s); msg != "" {
		it.fail("readFloat32SlowPath", msg)
		return 0
	}
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		it.err = fmt.Errorf("%w: JSON number: %w", ErrMalformed, err)
		return 0
	}
	return float32(v)
}

func (it *jsonIter) readFloat64SlowPath() float64 {
	s := it.readNumberAsString()
	if it.err != nil && it.err != errEOF {
		return 0
	}
	if msg := validateFloat(s); msg != "" {
		it.fail("readFloat64SlowPath", msg)
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		it.err = fmt.Errorf("%w: JSON number: %w", ErrMalformed, err)
		return 0
	}
	return v
}

func validateFloat(s string) string {
	if len(s) == 0 {
		return "empty number"
	}
	if s[0] == '-' {
		return "-- is not valid"
	}
	if dot := strings.IndexByte(s, '.'); dot != -1 {
		if dot == len(s)-1 {
			return "dot can not be last character"
		}
		switch s[dot+1] {
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		default:
			return "missing digit after dot"
		}
	}
	return ""
}

func (it *jsonIter) readBigFloat() {
	s := it.readNumberAsString()
	if it.err != nil && it.err != errEOF {
		return
	}
	prec := max(64, len(s))
	if _, _, err := big.ParseFloat(s, 10, uint(prec), big.ToZero); err != nil {
		it.err = fmt.Errorf("%w: JSON number: %w", ErrMalformed, err)
	}
}

// pdata's internal/json wrapper: integers and floats as numbers or
// decimal strings, enums as numbers or names, bytes as base64.

var errUnsupportedType = "unsupported value type"

func (it *jsonIter) readInt32() int32 {
	switch it.whatIsNext() {
	case jsonNumber:
		return it.readInt32Raw()
	case jsonString:
		v, err := strconv.ParseInt(it.readString(true), 10, 32)
		if err != nil {
			it.fail("ReadInt32", err.Error())
			return 0
		}
		return int32(v)
	default:
		it.fail("ReadInt32", errUnsupportedType)
		return 0
	}
}

func (it *jsonIter) readUint32Value() uint32 {
	switch it.whatIsNext() {
	case jsonNumber:
		return it.readUint32(it.nextToken())
	case jsonString:
		v, err := strconv.ParseUint(it.readString(true), 10, 32)
		if err != nil {
			it.fail("ReadUint32", err.Error())
			return 0
		}
		return uint32(v)
	default:
		it.fail("ReadUint32", errUnsupportedType)
		return 0
	}
}

func (it *jsonIter) readInt64() int64 {
	switch it.whatIsNext() {
	case jsonNumber:
		return it.readInt64Raw()
	case jsonString:
		v, err := strconv.ParseInt(it.readString(true), 10, 64)
		if err != nil {
			it.fail("ReadInt64", err.Error())
			return 0
		}
		return v
	default:
		it.fail("ReadInt64", errUnsupportedType)
		return 0
	}
}

func (it *jsonIter) readUint64Value() uint64 {
	switch it.whatIsNext() {
	case jsonNumber:
		return it.readUint64(it.nextToken())
	case jsonString:
		v, err := strconv.ParseUint(it.readString(true), 10, 64)
		if err != nil {
			it.fail("ReadUint64", err.Error())
			return 0
		}
		return v
	default:
		it.fail("ReadUint64", errUnsupportedType)
		return 0
	}
}

func (it *jsonIter) readFloat64() float64 {
	switch it.whatIsNext() {
	case jsonNumber:
		return it.readFloat64Raw()
	case jsonString:
		v, err := strconv.ParseFloat(it.readString(true), 64)
		if err != nil {
			it.fail("ReadFloat64", err.Error())
			return 0
		}
		return v
	default:
		it.fail("ReadFloat64", errUnsupportedType)
		return 0
	}
}

// readEnum is ReadEnumValue with a name table.
func (it *jsonIter) readEnum(names []string) int32 {
	switch it.whatIsNext() {
	case jsonNumber:
		return it.readInt32()
	case jsonString:
		s := it.readString(true)
		for i, n := range names {
			if s == n {
				return int32(i)
			}
		}
		it.fail("ReadEnumValue", "unknown string value")
		return 0
	default:
		it.fail("ReadEnumValue", errUnsupportedType)
		return 0
	}
}

// readBytes checks a base64 string, as ReadBytes reads it, decoding it
// into the arena's scratch space.
func (it *jsonIter) readBytes() {
	b := it.readStringAsSlice()
	if len(b) == 0 {
		return
	}
	a := it.arena
	if n := base64.StdEncoding.DecodedLen(len(b)); cap(a.scratch) < n {
		a.scratch = make([]byte, n)
	}
	if _, err := base64.StdEncoding.Decode(a.scratch[:cap(a.scratch)], b); err != nil {
		it.fail("base64.Decode", err.Error())
	}
}

// arena holds the strings a reader had to unescape, in chunks that never
// move, so that each string stays valid until the arena is reset.
type arena struct {
	cur    []byte
	chunks [][]byte
	// scratch is where base64 values are decoded, to be checked.
	scratch []byte
}

const arenaChunk = 4 << 10

// start returns an empty slice to append a string to.
func (a *arena) start() []byte { return a.cur[len(a.cur):] }

// finish keeps the string appended to s, the slice start returned.
func (a *arena) finish(s []byte) string {
	if len(s) == 0 {
		return ""
	}
	if cap(a.cur)-len(a.cur) >= len(s) && &a.cur[:len(a.cur)+1][len(a.cur)] == &s[0] {
		a.cur = a.cur[:len(a.cur)+len(s)]
		return str(s)
	}
	// s outgrew the chunk and moved: it is a fresh array of its own,
	// which becomes a chunk; the next strings go to a new chunk.
	a.chunks = append(a.chunks, s)
	a.cur = make([]byte, 0, max(arenaChunk, 2*len(s)))
	return str(s)
}

// reset forgets every string, keeping the current chunk's memory (up to
// 1 MiB). The arena holds at most about the unescaped strings of one
// request, which are no longer than the request.
func (a *arena) reset() {
	clear(a.chunks)
	a.chunks = a.chunks[:0]
	if cap(a.cur) > 1<<20 {
		a.cur = nil
	}
	if cap(a.scratch) > 1<<20 {
		a.scratch = nil
	}
	a.cur = a.cur[:0]
}
