package modbus

import (
	"fmt"
	"testing"
)

// spans builds holding-register spans "address:size" in tag order.
func holding(addrSize ...int) []Span { return spansIn("holding", addrSize...) }

func spansIn(area string, addrSize ...int) []Span {
	var s []Span
	for i := 0; i+1 < len(addrSize); i += 2 {
		s = append(s, Span{Tag: i / 2, Area: area, Address: addrSize[i], Size: addrSize[i+1]})
	}
	return s
}

// want is a request written as "area address+count [tag indices]".
func describe(rs []Request) []string {
	var out []string
	for _, r := range rs {
		var tags []int
		for _, s := range r.Tags {
			tags = append(tags, s.Tag)
		}
		out = append(out, fmt.Sprintf("%s %d+%d %v", r.Area, r.Address, r.Count, tags))
	}
	return out
}

func TestPlan(t *testing.T) {
	join := func(a ...[]Span) []Span {
		var out []Span
		for _, s := range a {
			for _, x := range s {
				x.Tag = len(out)
				out = append(out, x)
			}
		}
		return out
	}
	cases := []struct {
		name   string
		spans  []Span
		maxGap int
		want   []string
	}{
		{"one register", holding(7, 1), 8, []string{"holding 7+1 [0]"}},
		{"contiguous mixed widths", holding(0, 1, 1, 1, 2, 2, 4, 4), 0,
			[]string{"holding 0+8 [0 1 2 3]"}},
		{"unsorted input comes out sorted", holding(4, 4, 0, 1, 2, 2, 1, 1), 0,
			[]string{"holding 0+8 [1 3 2 0]"}},
		{"hole equal to max_gap is bridged", holding(0, 1, 9, 1), 8,
			[]string{"holding 0+10 [0 1]"}},
		{"hole below max_gap is bridged", holding(0, 2, 5, 2), 8,
			[]string{"holding 0+7 [0 1]"}},
		{"hole above max_gap splits", holding(0, 1, 10, 1), 8,
			[]string{"holding 0+1 [0]", "holding 10+1 [1]"}},
		{"max_gap 0 bridges nothing", holding(0, 1, 2, 1, 3, 1), 0,
			[]string{"holding 0+1 [0]", "holding 2+2 [1 2]"}},
		{"exactly 125 registers in one request", holding(0, 1, 124, 1), 200,
			[]string{"holding 0+125 [0 1]"}},
		{"126 registers split", holding(0, 1, 125, 1), 200,
			[]string{"holding 0+1 [0]", "holding 125+1 [1]"}},
		{"float64 ending at register 125 fits", holding(0, 1, 121, 4), 200,
			[]string{"holding 0+125 [0 1]"}},
		{"float64 one past the boundary is not split", holding(0, 1, 122, 4), 200,
			[]string{"holding 0+1 [0]", "holding 122+4 [1]"}},
		{"float32 across the boundary of a contiguous run", holding(0, 124, 124, 2), 0,
			[]string{"holding 0+124 [0]", "holding 124+2 [1]"}},
		{"300 contiguous registers", holding(0, 125, 125, 125, 250, 50), 8,
			[]string{"holding 0+125 [0]", "holding 125+125 [1]", "holding 250+50 [2]"}},
		{"bit tag inside a float32", holding(10, 2, 10, 1, 11, 1), 0,
			[]string{"holding 10+2 [0 1 2]"}},
		{"bit tag listed before its word", holding(11, 1, 10, 2), 0,
			[]string{"holding 10+2 [1 0]"}},
		{"span inside a longer one keeps the end", holding(0, 4, 1, 1, 6, 1), 2,
			[]string{"holding 0+7 [0 1 2]"}},
		{"duplicate address", holding(5, 2, 5, 2), 0, []string{"holding 5+2 [0 1]"}},
		{"mixed areas never share a request, bits first",
			join(spansIn("input", 0, 1), spansIn("holding", 0, 1), spansIn("discrete", 0, 1), spansIn("coil", 0, 1), spansIn("holding", 1, 1)), 8,
			[]string{"coil 0+1 [3]", "discrete 0+1 [2]", "holding 0+2 [1 4]", "input 0+1 [0]"}},
		{"coil hole of max_gap*16 bits bridged", spansIn("coil", 0, 1, 129, 1), 8,
			[]string{"coil 0+130 [0 1]"}},
		{"coil hole above max_gap*16 bits splits", spansIn("coil", 0, 1, 130, 1), 8,
			[]string{"coil 0+1 [0]", "coil 130+1 [1]"}},
		{"exactly 2000 coils in one request", spansIn("coil", 0, 1, 1999, 1), 125,
			[]string{"coil 0+2000 [0 1]"}},
		{"2001 coils split", spansIn("discrete", 0, 1, 2000, 1), 125,
			[]string{"discrete 0+1 [0]", "discrete 2000+1 [1]"}},
		{"last register 65535", holding(65530, 2, 65535, 1), 8,
			[]string{"holding 65530+6 [0 1]"}},
		{"no tags", nil, 8, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := describe(Plan(tc.spans, tc.maxGap))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Plan = %q\nwant   %q", got, tc.want)
			}
		})
	}
}

// Every tag is covered whole by exactly one request, requests respect the
// limits, and no request is wasted, for many generated layouts.
func TestPlanInvariants(t *testing.T) {
	areas := []string{"coil", "discrete", "holding", "input"}
	sizes := []int{1, 1, 2, 4}
	for seed := range 200 {
		var spans []Span
		x := uint32(seed)*2654435761 + 1
		next := func(n int) int { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return int(x % uint32(n)) }
		for i := range 1 + next(300) {
			area := areas[next(4)]
			size := 1
			if !isBitArea(area) {
				size = sizes[next(4)]
			}
			spans = append(spans, Span{Tag: i, Area: area, Address: next(3000), Size: size})
		}
		maxGap := next(20)
		reqs := Plan(spans, maxGap)
		seen := make(map[int]int)
		for _, r := range reqs {
			limit := MaxRegisters
			if isBitArea(r.Area) {
				limit = MaxBits
			}
			if r.Count < 1 || r.Count > limit {
				t.Fatalf("seed %d: request %+v outside 1..%d", seed, r, limit)
			}
			for _, s := range r.Tags {
				seen[s.Tag]++
				if s.Area != r.Area || s.Address < r.Address || s.end() > r.Address+r.Count {
					t.Fatalf("seed %d: span %+v not inside request %s %d+%d", seed, s, r.Area, r.Address, r.Count)
				}
			}
		}
		for _, s := range spans {
			if seen[s.Tag] != 1 {
				t.Fatalf("seed %d: tag %d in %d requests", seed, s.Tag, seen[s.Tag])
			}
		}
	}
}
