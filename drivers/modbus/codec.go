package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"hazgate/internal/config"
)

// ValueType is how the bits of one tag are read.
type ValueType uint8

const (
	Int16 ValueType = iota + 1
	Uint16
	Int32
	Uint32
	Float32
	Float64
	Bit  // one bit of a register
	Bool // one coil or discrete input
)

var typeNames = [...]string{
	Int16: config.TypeInt16, Uint16: config.TypeUint16, Int32: config.TypeInt32,
	Uint32: config.TypeUint32, Float32: config.TypeFloat32, Float64: config.TypeFloat64,
	Bit: config.TypeBit, Bool: config.TypeBool,
}

func (t ValueType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType maps a config type name onto a ValueType.
func ParseType(s string) (ValueType, error) {
	for t, name := range typeNames {
		if name != "" && name == s {
			return ValueType(t), nil
		}
	}
	return 0, fmt.Errorf("unknown value type %q", s)
}

// Registers is how many 16-bit registers a value of this type occupies;
// 0 for Bool, which lives in the bit areas (coils, discrete inputs).
func (t ValueType) Registers() int {
	switch t {
	case Int16, Uint16, Bit:
		return 1
	case Int32, Uint32, Float32:
		return 2
	case Float64:
		return 4
	}
	return 0
}

// Order is the order in which a device puts the bytes of a value on the
// wire. Name the bytes of the value, most significant first, A B C D (and
// E F G H for 64-bit values):
//
//	ABCD  big-endian, high word first (the Modbus norm)   A B C D
//	BADC  bytes swapped within each word                  B A D C
//	CDAB  words in reverse order (Schneider/Modicon)      C D A B
//	DCBA  little-endian                                   D C B A
//
// For 64-bit values (float64 in 4 registers) the same two operations apply
// to all four words: ABCD is A..H big-endian; CDAB reverses the word order
// (GH EF CD AB, each word big-endian); BADC swaps the bytes within each word
// (BA DC FE HG); DCBA is fully little-endian (H..A).
//
// 16-bit values have one word only: ABCD and CDAB read it big-endian, BADC
// and DCBA byte-swapped (as Telegraf maps them onto AB and BA).
type Order uint8

const (
	ABCD Order = iota
	BADC
	CDAB
	DCBA
)

var orderNames = [...]string{ABCD: "ABCD", BADC: "BADC", CDAB: "CDAB", DCBA: "DCBA"}

func (o Order) String() string {
	if int(o) < len(orderNames) {
		return orderNames[o]
	}
	return fmt.Sprintf("order(%d)", uint8(o))
}

// ParseOrder maps a config order name onto an Order; "" is ABCD.
func ParseOrder(s string) (Order, error) {
	if s == "" {
		return ABCD, nil
	}
	for o, name := range orderNames {
		if name == s {
			return Order(o), nil
		}
	}
	return 0, fmt.Errorf("unknown byte order %q (want ABCD, BADC, CDAB or DCBA)", s)
}

func (o Order) swapsBytes() bool { return o == BADC || o == DCBA }
func (o Order) swapsWords() bool { return o == CDAB || o == DCBA }

// Decode errors. The driver reports them as model.ReasonDecode plus detail.
var (
	ErrNotFinite = errors.New("not a finite number")
	ErrShort     = errors.New("short response")
)

// Format says how one tag's value is laid out in the device.
type Format struct {
	Type  ValueType
	Order Order
	Bit   int // 0..15 for Type Bit (0 = least significant); bit index for Bool
}

// Size is the room a value takes: registers, or bits for Bool.
func (f Format) Size() int {
	if f.Type == Bool {
		return 1
	}
	return f.Type.Registers()
}

// Decode reads one value. For register types raw holds the tag's registers
// as they came off the wire (2 bytes each, big-endian per register, at least
// Size registers). For Bool raw is the packed bit field of a coil or
// discrete-input response (LSB of the first byte is the first bit) and
// f.Bit is the bit's index in it. It never panics on short input.
func (f Format) Decode(raw []byte) (float64, error) {
	if f.Type == Bool {
		if f.Bit < 0 || f.Bit/8 >= len(raw) {
			return 0, ErrShort
		}
		return float64(raw[f.Bit/8] >> (f.Bit % 8) & 1), nil
	}
	n := 2 * f.Type.Registers()
	if n == 0 {
		return 0, fmt.Errorf("unknown value type %v", f.Type)
	}
	if len(raw) < n {
		return 0, ErrShort
	}
	var buf [8]byte
	b := buf[:n]
	copy(b, raw[:n])
	f.Order.canonical(b)
	switch f.Type {
	case Int16:
		return float64(int16(binary.BigEndian.Uint16(b))), nil
	case Uint16:
		return float64(binary.BigEndian.Uint16(b)), nil
	case Bit:
		if f.Bit < 0 || f.Bit > 15 {
			return 0, fmt.Errorf("bit %d outside 0..15", f.Bit)
		}
		return float64(binary.BigEndian.Uint16(b) >> f.Bit & 1), nil
	case Int32:
		return float64(int32(binary.BigEndian.Uint32(b))), nil
	case Uint32:
		return float64(binary.BigEndian.Uint32(b)), nil
	case Float32:
		return finite(float64(math.Float32frombits(binary.BigEndian.Uint32(b))))
	case Float64:
		return finite(math.Float64frombits(binary.BigEndian.Uint64(b)))
	}
	return 0, fmt.Errorf("unknown value type %v", f.Type)
}

func finite(v float64) (float64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, ErrNotFinite
	}
	return v, nil
}

// canonical turns wire bytes into big-endian bytes in place (and back: both
// steps are their own inverse and commute, so the same call encodes).
func (o Order) canonical(b []byte) {
	if len(b) == 2 {
		if o.swapsBytes() {
			b[0], b[1] = b[1], b[0]
		}
		return
	}
	if o.swapsBytes() {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
	if o.swapsWords() {
		for i, j := 0, len(b)-2; i < j; i, j = i+2, j-2 {
			b[i], b[i+1], b[j], b[j+1] = b[j], b[j+1], b[i], b[i+1]
		}
	}
}

// Encode is the inverse of Decode for register types: it returns the wire
// bytes of v (2 per register). For Bit it returns a register with only that
// bit set (or none). Bool values are packed with PackBits. Integers must be
// whole and in range.
func (f Format) Encode(v float64) ([]byte, error) {
	n := 2 * f.Type.Registers()
	if n == 0 {
		return nil, fmt.Errorf("encode: %v is not a register type", f.Type)
	}
	b := make([]byte, n)
	whole := func(lo, hi float64) error {
		if v != math.Trunc(v) || v < lo || v > hi {
			return fmt.Errorf("encode: %v does not fit %v", v, f.Type)
		}
		return nil
	}
	switch f.Type {
	case Int16:
		if err := whole(math.MinInt16, math.MaxInt16); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint16(b, uint16(int16(v)))
	case Uint16:
		if err := whole(0, math.MaxUint16); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint16(b, uint16(v))
	case Bit:
		if f.Bit < 0 || f.Bit > 15 {
			return nil, fmt.Errorf("encode: bit %d outside 0..15", f.Bit)
		}
		if v != 0 {
			binary.BigEndian.PutUint16(b, 1<<f.Bit)
		}
	case Int32:
		if err := whole(math.MinInt32, math.MaxInt32); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(b, uint32(int32(v)))
	case Uint32:
		if err := whole(0, math.MaxUint32); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(b, uint32(v))
	case Float32:
		binary.BigEndian.PutUint32(b, math.Float32bits(float32(v)))
	case Float64:
		binary.BigEndian.PutUint64(b, math.Float64bits(v))
	}
	f.Order.canonical(b)
	return b, nil
}

// Words splits wire bytes into register values (big-endian per register),
// the form a Modbus server's register table takes.
func Words(b []byte) []uint16 {
	w := make([]uint16, len(b)/2)
	for i := range w {
		w[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return w
}

// PackBits packs coil or discrete-input states as a Modbus response
// carries them: bit i is bit i%8 of byte i/8 (LSB first).
func PackBits(bits []bool) []byte {
	b := make([]byte, (len(bits)+7)/8)
	for i, on := range bits {
		if on {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}
