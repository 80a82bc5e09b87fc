package modbus

import (
	"cmp"
	"slices"

	"hazgate/internal/config"
)

// Limits of one read request (Modbus application protocol v1.1b3, 6.1-6.4).
const (
	MaxRegisters = 125  // function codes 3 and 4
	MaxBits      = 2000 // function codes 1 and 2
)

// Span is the room one tag takes in one data area: Size registers (coils
// and discrete inputs: bits) starting at Address.
type Span struct {
	Tag     int // index of the tag in the device's tag list
	Area    string
	Address int
	Size    int
}

func (s Span) end() int { return s.Address + s.Size }

// Request is one planned read: Count registers (or bits) from Address in
// Area, covering the spans listed in Tags.
type Request struct {
	Area    string
	Address int
	Count   int
	Tags    []Span
}

// Offset is where span s starts within the request's answer, in registers
// (or bits).
func (r Request) Offset(s Span) int { return s.Address - r.Address }

// areaOrder fixes the order requests go out in: it keeps polls
// reproducible and puts the cheap bit reads first.
var areaOrder = map[string]int{config.AreaCoil: 0, config.AreaDiscrete: 1, config.AreaHolding: 2, config.AreaInput: 3}

func isBitArea(area string) bool { return area == config.AreaCoil || area == config.AreaDiscrete }

// Plan coalesces the spans into the fewest read requests it can: per area,
// in address order, a span joins the current request when the hole before
// it is at most maxGap registers (maxGap*16 bits in the bit areas) and the
// request stays within MaxRegisters (MaxBits). A span is never split across
// requests; spans may overlap (a bit tag inside a word tag's register).
// Spans larger than the limit, or reaching past address 65535, are the
// caller's mistake: NewTCP rejects them before planning.
func Plan(spans []Span, maxGap int) []Request {
	sorted := slices.Clone(spans)
	slices.SortStableFunc(sorted, func(a, b Span) int {
		if c := cmp.Compare(areaOrder[a.Area], areaOrder[b.Area]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Area, b.Area); c != 0 { // unknown areas, for determinism
			return c
		}
		return cmp.Compare(a.Address, b.Address)
	})
	if maxGap < 0 {
		maxGap = 0
	}
	var out []Request
	for i, s := range sorted {
		limit, gap := MaxRegisters, maxGap
		if isBitArea(s.Area) {
			limit, gap = MaxBits, maxGap*16
		}
		if i > 0 {
			r := &out[len(out)-1]
			end := r.Address + r.Count
			if r.Area == s.Area && s.Address-end <= gap && max(end, s.end())-r.Address <= limit {
				r.Count = max(end, s.end()) - r.Address
				r.Tags = append(r.Tags, s)
				continue
			}
		}
		out = append(out, Request{Area: s.Area, Address: s.Address, Count: s.Size, Tags: []Span{s}})
	}
	return out
}
