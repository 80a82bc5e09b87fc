package sim

import (
	"math"
)

// Tag names of the simulated tank farm (位号). configs/demo.yaml uses the
// same names.
const (
	LT101   = "LT-101"   // T-101 level, m
	LT102   = "LT-102"   // T-102 level, m
	TT101   = "TT-101"   // T-101 temperature transmitter loop current, mA
	TT102   = "TT-102"   // T-102 temperature transmitter loop current, mA
	PT101   = "PT-101"   // T-101 blanket pressure, kPa
	PT102   = "PT-102"   // T-102 blanket pressure, kPa
	GT201   = "GT-201"   // combustible gas detector at the T-101 pump, %LEL
	GT202   = "GT-202"   // combustible gas detector at the dike, %LEL
	GT203   = "GT-203"   // combustible gas detector at the T-102 pump, %LEL
	LSHH101 = "LSHH-101" // T-101 high-high level switch, 1 = tripped
	XV101   = "XV-101"   // T-101 inlet valve, 1 = open
)

// Area is a Modbus data area. The names match config.Area*.
type Area string

const (
	Coil     Area = "coil"
	Discrete Area = "discrete"
	Holding  Area = "holding"
	Input    Area = "input"
)

// Encoding says how a value is laid out in the register image.
type Encoding string

const (
	// Float32ABCD: IEEE 754 single, high word first (big-endian throughout).
	Float32ABCD Encoding = "float32 ABCD"
	// Float32CDAB: IEEE 754 single, low word first ("word swapped"), as
	// many PLCs store it. Bytes inside each register stay big-endian.
	Float32CDAB Encoding = "float32 CDAB"
	// Microamps: uint16 loop current in µA (4000 = 4 mA, 20000 = 20 mA).
	// The value is given in mA.
	Microamps Encoding = "uint16 µA"
	// Tenths: uint16 value x10 (485 = 48.5).
	Tenths Encoding = "uint16 x10"
	// Bit: a coil or discrete input; a value >= 0.5 is on.
	Bit Encoding = "bool"
)

// Point is one tag's place in the register image.
type Point struct {
	Tag      string
	Area     Area
	Address  uint16 // 0-based protocol address
	Encoding Encoding
}

// Words is how many registers (or bits) the point occupies.
func (p Point) Words() int {
	switch p.Encoding {
	case Float32ABCD, Float32CDAB:
		return 2
	}
	return 1
}

// registerMap is the plant's fixed register map; README.md shows it as a
// table and configs/demo.yaml must agree (a test checks both). Gaps
// between the blocks are deliberate: a poller that bridges short gaps
// reads them as zeros, one that does not must issue several requests.
var registerMap = [...]Point{
	{LT101, Holding, 0, Float32CDAB},
	{LT102, Holding, 2, Float32CDAB},
	{TT101, Holding, 10, Microamps},
	{TT102, Holding, 11, Microamps},
	{PT101, Holding, 20, Float32ABCD},
	{PT102, Holding, 22, Float32ABCD},
	{GT201, Input, 0, Tenths},
	{GT202, Input, 1, Tenths},
	{GT203, Input, 2, Tenths},
	{LSHH101, Discrete, 0, Bit},
	{XV101, Coil, 0, Bit},
}

// RegisterMap returns the plant's register map, in tag order.
func RegisterMap() []Point { return append([]Point(nil), registerMap[:]...) }

// pointOf finds a tag's point.
func pointOf(tag string) (Point, bool) {
	for _, p := range registerMap {
		if p.Tag == tag {
			return p, true
		}
	}
	return Point{}, false
}

// Sizes of the register image. Reads inside it succeed (unused addresses
// read as zero, like a PLC's memory); reads beyond it answer exception 2
// (illegal data address).
const (
	imageRegisters = 100
	imageBits      = 16
)

// image is the plant's register image as a Modbus master sees it.
type image struct {
	holding  [imageRegisters]uint16
	input    [imageRegisters]uint16
	coils    [imageBits]bool
	discrete [imageBits]bool
}

// put encodes v at p.
func (img *image) put(p Point, v float64) {
	var regs []uint16
	switch p.Area {
	case Holding:
		regs = img.holding[p.Address : p.Address+uint16(p.Words())]
	case Input:
		regs = img.input[p.Address : p.Address+uint16(p.Words())]
	case Coil:
		img.coils[p.Address] = v >= 0.5
		return
	case Discrete:
		img.discrete[p.Address] = v >= 0.5
		return
	}
	switch p.Encoding {
	case Float32ABCD:
		b := math.Float32bits(float32(v))
		regs[0], regs[1] = uint16(b>>16), uint16(b)
	case Float32CDAB:
		b := math.Float32bits(float32(v))
		regs[0], regs[1] = uint16(b), uint16(b>>16)
	case Microamps:
		regs[0] = toUint16(v * 1000)
	case Tenths:
		regs[0] = toUint16(v * 10)
	}
}

// toUint16 rounds and clamps, as a transmitter's DAC saturates.
func toUint16(x float64) uint16 {
	x = math.Round(x)
	switch {
	case math.IsNaN(x), x < 0:
		return 0
	case x > math.MaxUint16:
		return math.MaxUint16
	}
	return uint16(x)
}
