package modbus

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// The protocol truth: wire bytes of known values in every byte order.
var codecCases = []struct {
	name  string
	f     Format
	wire  []byte
	value float64
}{
	// float32 123.456 = 0x42F6E979
	{"float32 ABCD", Format{Type: Float32, Order: ABCD}, []byte{0x42, 0xF6, 0xE9, 0x79}, float64(float32(123.456))},
	{"float32 CDAB", Format{Type: Float32, Order: CDAB}, []byte{0xE9, 0x79, 0x42, 0xF6}, float64(float32(123.456))},
	{"float32 BADC", Format{Type: Float32, Order: BADC}, []byte{0xF6, 0x42, 0x79, 0xE9}, float64(float32(123.456))},
	{"float32 DCBA", Format{Type: Float32, Order: DCBA}, []byte{0x79, 0xE9, 0xF6, 0x42}, float64(float32(123.456))},
	// float32 -1.5 = 0xBFC00000
	{"float32 -1.5", Format{Type: Float32}, []byte{0xBF, 0xC0, 0x00, 0x00}, -1.5},
	// int32 -2 = 0xFFFFFFFE
	{"int32 -2 ABCD", Format{Type: Int32, Order: ABCD}, []byte{0xFF, 0xFF, 0xFF, 0xFE}, -2},
	{"int32 -2 CDAB", Format{Type: Int32, Order: CDAB}, []byte{0xFF, 0xFE, 0xFF, 0xFF}, -2},
	{"int32 -2 BADC", Format{Type: Int32, Order: BADC}, []byte{0xFF, 0xFF, 0xFE, 0xFF}, -2},
	{"int32 -2 DCBA", Format{Type: Int32, Order: DCBA}, []byte{0xFE, 0xFF, 0xFF, 0xFF}, -2},
	// uint32 0x12345678 = 305419896
	{"uint32 ABCD", Format{Type: Uint32, Order: ABCD}, []byte{0x12, 0x34, 0x56, 0x78}, 0x12345678},
	{"uint32 CDAB", Format{Type: Uint32, Order: CDAB}, []byte{0x56, 0x78, 0x12, 0x34}, 0x12345678},
	{"uint32 BADC", Format{Type: Uint32, Order: BADC}, []byte{0x34, 0x12, 0x78, 0x56}, 0x12345678},
	{"uint32 DCBA", Format{Type: Uint32, Order: DCBA}, []byte{0x78, 0x56, 0x34, 0x12}, 0x12345678},
	{"uint32 max", Format{Type: Uint32}, []byte{0xFF, 0xFF, 0xFF, 0xFF}, 4294967295},
	// 16-bit
	{"int16 -32768", Format{Type: Int16}, []byte{0x80, 0x00}, -32768},
	{"int16 -1", Format{Type: Int16}, []byte{0xFF, 0xFF}, -1},
	{"int16 32767", Format{Type: Int16}, []byte{0x7F, 0xFF}, 32767},
	{"int16 BADC byte-swapped", Format{Type: Int16, Order: BADC}, []byte{0x00, 0x80}, -32768},
	{"int16 CDAB one word", Format{Type: Int16, Order: CDAB}, []byte{0x80, 0x00}, -32768},
	{"int16 DCBA byte-swapped", Format{Type: Int16, Order: DCBA}, []byte{0x01, 0x00}, 1},
	{"uint16 65535", Format{Type: Uint16}, []byte{0xFF, 0xFF}, 65535},
	{"uint16 0x1234", Format{Type: Uint16}, []byte{0x12, 0x34}, 0x1234},
	// float64 123.456 = 0x405EDD2F1A9FBE77
	{"float64 ABCD", Format{Type: Float64, Order: ABCD}, []byte{0x40, 0x5E, 0xDD, 0x2F, 0x1A, 0x9F, 0xBE, 0x77}, 123.456},
	{"float64 CDAB", Format{Type: Float64, Order: CDAB}, []byte{0xBE, 0x77, 0x1A, 0x9F, 0xDD, 0x2F, 0x40, 0x5E}, 123.456},
	{"float64 BADC", Format{Type: Float64, Order: BADC}, []byte{0x5E, 0x40, 0x2F, 0xDD, 0x9F, 0x1A, 0x77, 0xBE}, 123.456},
	{"float64 DCBA", Format{Type: Float64, Order: DCBA}, []byte{0x77, 0xBE, 0x9F, 0x1A, 0x2F, 0xDD, 0x5E, 0x40}, 123.456},
	// float64 1.0 = 0x3FF0000000000000, -2.5 = 0xC004000000000000
	{"float64 1.0", Format{Type: Float64}, []byte{0x3F, 0xF0, 0, 0, 0, 0, 0, 0}, 1},
	{"float64 -2.5 CDAB", Format{Type: Float64, Order: CDAB}, []byte{0, 0, 0, 0, 0, 0, 0xC0, 0x04}, -2.5},
	// bits of a register: 0x8001 has bits 0 and 15 set
	{"bit 0 of 0x8001", Format{Type: Bit, Bit: 0}, []byte{0x80, 0x01}, 1},
	{"bit 15 of 0x8001", Format{Type: Bit, Bit: 15}, []byte{0x80, 0x01}, 1},
	{"bit 1 of 0x8001", Format{Type: Bit, Bit: 1}, []byte{0x80, 0x01}, 0},
	{"bit 8 of 0x0100", Format{Type: Bit, Bit: 8}, []byte{0x01, 0x00}, 1},
}

func TestDecode(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.Decode(tc.wire)
			if err != nil {
				t.Fatalf("Decode(% X): %v", tc.wire, err)
			}
			if got != tc.value {
				t.Fatalf("Decode(% X) = %v, want %v", tc.wire, got, tc.value)
			}
		})
	}
}

func TestEncodeIsInverse(t *testing.T) {
	for _, tc := range codecCases {
		if tc.f.Type == Bit && tc.value == 0 {
			continue // a register with other bits set has no unique encoding
		}
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.Encode(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.wire
			if tc.f.Type == Bit { // only the one bit comes back
				want, _ = Format{Type: Uint16}.Encode(float64(uint16(1) << tc.f.Bit))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode(%v) = % X, want % X", tc.value, got, want)
			}
		})
	}
}

func TestDecodeBool(t *testing.T) {
	// Coils 0..10 = 1 0 1 1 0 0 0 0 | 0 0 1: bytes 0x0D 0x04 (LSB first).
	packed := []byte{0x0D, 0x04}
	want := []float64{1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1}
	for i, w := range want {
		got, err := Format{Type: Bool, Bit: i}.Decode(packed)
		if err != nil || got != w {
			t.Errorf("bit %d: got %v, %v; want %v", i, got, err, w)
		}
	}
	if _, err := (Format{Type: Bool, Bit: 16}).Decode(packed); !errors.Is(err, ErrShort) {
		t.Errorf("bit 16 of 2 bytes: err %v, want ErrShort", err)
	}
	bits := []bool{true, false, true, true, false, false, false, false, false, false, true}
	if got := PackBits(bits); !bytes.Equal(got, packed) {
		t.Errorf("PackBits = % X, want % X", got, packed)
	}
}

func TestDecodeNotFinite(t *testing.T) {
	cases := []struct {
		name string
		f    Format
		wire []byte
	}{
		{"float32 NaN", Format{Type: Float32}, []byte{0x7F, 0xC0, 0x00, 0x00}},
		{"float32 +Inf", Format{Type: Float32}, []byte{0x7F, 0x80, 0x00, 0x00}},
		{"float32 -Inf CDAB", Format{Type: Float32, Order: CDAB}, []byte{0x00, 0x00, 0xFF, 0x80}},
		{"float32 NaN all ones", Format{Type: Float32}, []byte{0xFF, 0xFF, 0xFF, 0xFF}},
		{"float64 NaN", Format{Type: Float64}, []byte{0x7F, 0xF8, 0, 0, 0, 0, 0, 0}},
		{"float64 +Inf DCBA", Format{Type: Float64, Order: DCBA}, []byte{0, 0, 0, 0, 0, 0, 0xF0, 0x7F}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.f.Decode(tc.wire)
			if !errors.Is(err, ErrNotFinite) {
				t.Fatalf("Decode(% X) = %v, %v; want ErrNotFinite", tc.wire, v, err)
			}
		})
	}
}

func TestDecodeShort(t *testing.T) {
	for _, typ := range []ValueType{Int16, Uint16, Bit, Int32, Uint32, Float32, Float64} {
		f := Format{Type: typ}
		short := make([]byte, 2*typ.Registers()-1)
		if _, err := f.Decode(short); !errors.Is(err, ErrShort) {
			t.Errorf("%v from %d bytes: err %v, want ErrShort", typ, len(short), err)
		}
	}
	if _, err := (Format{Type: Bit, Bit: 16}).Decode([]byte{0, 0}); err == nil {
		t.Error("bit 16 decoded without error")
	}
}

func TestEncodeRange(t *testing.T) {
	bad := []struct {
		f Format
		v float64
	}{
		{Format{Type: Int16}, 32768},
		{Format{Type: Int16}, 1.5},
		{Format{Type: Uint16}, -1},
		{Format{Type: Uint32}, math.MaxUint32 + 1},
		{Format{Type: Int32}, math.MinInt32 - 1},
		{Format{Type: Bool}, 1},
	}
	for _, tc := range bad {
		if b, err := tc.f.Encode(tc.v); err == nil {
			t.Errorf("Encode %v as %v = % X, want error", tc.v, tc.f.Type, b)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"int16", "uint16", "int32", "uint32", "float32", "float64", "bit", "bool"} {
		typ, err := ParseType(s)
		if err != nil || typ.String() != s {
			t.Errorf("ParseType(%q) = %v, %v", s, typ, err)
		}
	}
	if _, err := ParseType("float16"); err == nil {
		t.Error("ParseType(float16) succeeded")
	}
	for _, s := range []string{"ABCD", "BADC", "CDAB", "DCBA"} {
		o, err := ParseOrder(s)
		if err != nil || o.String() != s {
			t.Errorf("ParseOrder(%q) = %v, %v", s, o, err)
		}
	}
	if o, err := ParseOrder(""); err != nil || o != ABCD {
		t.Errorf("ParseOrder(\"\") = %v, %v; want ABCD", o, err)
	}
	if _, err := ParseOrder("abcd"); err == nil {
		t.Error("ParseOrder(abcd) succeeded")
	}
}

// FuzzDecode feeds random bytes to every type and order: Decode must never
// panic and must never return a non-finite value without an error.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x42, 0xF6, 0xE9, 0x79}, uint8(4), uint8(2), uint8(0))
	f.Add([]byte{0x7F, 0xF8, 0, 0, 0, 0, 0, 0}, uint8(5), uint8(3), uint8(3))
	f.Add([]byte{}, uint8(7), uint8(0), uint8(200))
	f.Add([]byte{0x01}, uint8(6), uint8(1), uint8(15))
	f.Fuzz(func(t *testing.T, raw []byte, typ, order, bit uint8) {
		for ty := ValueType(0); ty <= Bool+1; ty++ {
			for o := Order(0); o <= DCBA+1; o++ {
				fm := Format{Type: ty, Order: o, Bit: int(bit) - 8}
				v, err := fm.Decode(raw)
				if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
					t.Fatalf("%+v decoded % X to %v without error", fm, raw, v)
				}
			}
		}
		// the fuzzed choice, with the round trip where it applies
		fm := Format{Type: ValueType(typ%8 + 1), Order: Order(order % 4), Bit: int(bit % 16)}
		v, err := fm.Decode(raw)
		if err != nil || fm.Type == Bool || fm.Type == Bit {
			return
		}
		enc, err := fm.Encode(v)
		if err != nil {
			t.Fatalf("%+v: Encode(%v) after Decode(% X): %v", fm, v, raw, err)
		}
		back, err := fm.Decode(enc)
		if err != nil || back != v {
			t.Fatalf("%+v: round trip %v -> % X -> %v, %v", fm, v, enc, back, err)
		}
	})
}
