// Package enumtext names the values of small typed enumerations (node kinds,
// protocols, finding states, ...) for String and text encoding, rejecting
// names and values it does not know. The types stay in their own packages;
// each keeps its names in a Names value.
package enumtext

import "fmt"

// Names holds the names of an enumeration whose values are indexes into
// List. The zero value's name is List[0]; it is a valid value only when
// ZeroValid is set. Names values are read-only after construction and safe
// for concurrent use.
type Names[T ~uint8] struct {
	Type      string // the type's name, for messages: "node kind"
	List      []string
	ZeroValid bool
}

func (n Names[T]) valid(v T) bool {
	return int(v) < len(n.List) && (v != 0 || n.ZeroValid)
}

// String returns v's name, or Type(v) for a value without one.
func (n Names[T]) String(v T) string {
	if int(v) < len(n.List) && (v != 0 || n.ZeroValid) {
		return n.List[v]
	}
	return fmt.Sprintf("%s(%d)", n.Type, uint8(v))
}

// Valid reports whether v has a name.
func (n Names[T]) Valid(v T) bool { return n.valid(v) }

// Marshal returns v's name, or an error for a value without one.
func (n Names[T]) Marshal(v T) ([]byte, error) {
	if !n.valid(v) {
		return nil, fmt.Errorf("invalid %s %d", n.Type, uint8(v))
	}
	return []byte(n.List[v]), nil
}

// Unmarshal returns the value named b, or an error for an unknown name.
func (n Names[T]) Unmarshal(b []byte) (T, error) {
	for i, name := range n.List {
		if (i != 0 || n.ZeroValid) && name == string(b) {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", n.Type, b)
}
