package otlpwire

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestShortKeyValue: the one-step reader of common KeyValues reads what
// keyValue reads, whether the key or the value comes first (SDKs write the
// key first, pdata the value), and leaves everything else to keyValue.
func TestShortKeyValue(t *testing.T) {
	str := func(s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), s)
	}
	num := func(n protowire.Number, x uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, n, protowire.VarintType), x)
	}
	kv := func(keyFirst bool, key string, any []byte) []byte {
		k := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), key)
		v := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), any)
		if keyFirst {
			return append(k, v...)
		}
		return append(v, k...)
	}
	long := string(make([]byte, 200))
	for _, tc := range []struct {
		name  string
		b     []byte
		short bool // read in one step
	}{
		{"string, key first", kv(true, "peer.service", str("telemetrygen-server")), true},
		{"string, value first", kv(false, "peer.service", str("telemetrygen-server")), true},
		{"int, value first", kv(false, "http.response.status_code", num(3, 503)), true},
		{"bool, key first", kv(true, "error", num(2, 1)), true},
		{"bool, value first", kv(false, "error", num(2, 1)), true},
		{"empty key, value first", kv(false, "", str("x")), true},
		{"long value", kv(false, "k", str(long)), false},
		{"long key", kv(true, long, str("v")), false},
		{"empty value", kv(false, "k", nil), false},
		{"double", kv(false, "k", protowire.AppendFixed64(protowire.AppendTag(nil, 4, protowire.Fixed64Type), 1)), false},
		{"key twice", append(kv(false, "a", str("v")), str("b")...), false},
		{"value, value", append(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), str("v")),
			protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), str("w"))...), false},
		{"ten-byte int", kv(false, "k", append(protowire.AppendTag(nil, 3, protowire.VarintType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, v, ok := shortKeyValue(tc.b)
			if ok != tc.short {
				t.Fatalf("read in one step: %v, want %v", ok, tc.short)
			}
			var want Value
			wantKey, err := keyValue(tc.b, 0, &want)
			if err != nil {
				if ok {
					t.Fatalf("keyValue refuses what shortKeyValue read: %v", err)
				}
				return
			}
			if ok && (key != wantKey || v != want) {
				t.Errorf("shortKeyValue = %q %+v, keyValue %q %+v", key, v, wantKey, want)
			}
		})
	}
}
