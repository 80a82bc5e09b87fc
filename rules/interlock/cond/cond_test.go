package cond

import (
	"strings"
	"testing"
)

// vals are the inputs of a test: tag -> value; a tag in bad is not Good.
type vals struct {
	e   *Expr
	m   map[string]float64
	bad map[string]bool
}

func (v vals) Input(i int) (float64, bool) {
	t := v.e.Tags[i]
	return v.m[t], !v.bad[t]
}

func eval(t *testing.T, src string, m map[string]float64, bad ...string) bool {
	t.Helper()
	e, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	b := map[string]bool{}
	for _, x := range bad {
		b[x] = true
	}
	return e.Eval(vals{e, m, b})
}

func TestEval(t *testing.T) {
	m := map[string]float64{"LT-101": 18.6, "LSHH-101": 0, "GT-1": 55, "GT-2": 10, "GT-3": 60, "T.x_1": -5}
	cases := []struct {
		src  string
		want bool
		bad  []string
	}{
		{"LT-101 >= 18.5", true, nil},
		{"LT-101 > 18.6", false, nil},
		{"LT-101 <= 18.6 && LT-101 >= 18.6", true, nil},
		{"LT-101 == 18.6", true, nil},
		{"LT-101 != 18.6", false, nil},
		{"18.5 <= LT-101", true, nil},
		{"LSHH-101", false, nil},
		{"not LSHH-101", true, nil},
		{"!LSHH-101 and LT-101 < 1", false, nil},
		{"LSHH-101 or LT-101 >= 18.5", true, nil},
		{"LSHH-101 || (LT-101 >= 18.5 and false)", false, nil},
		{"T.x_1 < -4.5", true, nil},
		{"T.x_1 < -5e0", false, nil},
		{"vote(2, GT-1 >= 50, GT-2 >= 50, GT-3 >= 50)", true, nil},
		{"vote(3, GT-1 >= 50, GT-2 >= 50, GT-3 >= 50)", false, nil},
		{"vote(1, GT-2 >= 50, GT-2 >= 40)", false, nil},
		// Trip policy: a bad input counts towards tripping.
		{"LT-101 >= 99", true, []string{"LT-101"}},
		{"not (LT-101 < 99)", true, []string{"LT-101"}},
		{"vote(2, GT-1 >= 50, GT-2 >= 50, GT-3 >= 99)", true, []string{"GT-2"}}, // 2oo3 degrades to 1oo2
		{"LT-101 >= 99 and LT-101 < 0", true, []string{"LT-101"}},
		{"true", true, nil},
	}
	for _, c := range cases {
		if got := eval(t, c.src, m, c.bad...); got != c.want {
			t.Errorf("%q (bad %v) = %v, want %v", c.src, c.bad, got, c.want)
		}
	}
}

func TestHold(t *testing.T) {
	e, err := Parse("LT-101 >= 18.5 or not LSHH-101")
	if err != nil {
		t.Fatal(err)
	}
	e.SetHoldOnBad(true)
	m := map[string]float64{"LT-101": 10, "LSHH-101": 1}
	bad := map[string]bool{}
	if e.Eval(vals{e, m, bad}) {
		t.Fatal("false at first")
	}
	bad["LT-101"], m["LT-101"] = true, 20 // bad: keeps false
	if e.Eval(vals{e, m, bad}) {
		t.Fatal("hold: a bad input changed the result")
	}
	bad["LT-101"] = false
	if !e.Eval(vals{e, m, bad}) {
		t.Fatal("good again: true")
	}
	bad["LT-101"], m["LT-101"] = true, 0 // bad: keeps true
	if !e.Eval(vals{e, m, bad}) {
		t.Fatal("hold: did not keep true")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"", "empty condition"},
		{"LT-101 >= ", "at column 11: expected a tag or a number, found end of condition"},
		{"LT-101 = 5", `at column 8: "=" is not a comparison (use == to compare)`},
		{"LT-101 >= 5 and", "expected a tag or a number"},
		{"(LT-101 >= 5", `expected ")"`},
		{"LT-101 >= 5)", `at column 12: unexpected ")"`},
		{"5 > 3", "compares two numbers"},
		{"5", "a number alone is not a condition"},
		{"vote(4, a, b, c)", "vote(4, ...) over 3 inputs"},
		{"vote(1.5, a, b)", "vote needs k"},
		{"vote(1, a)", "n at least 2"},
		{"LT-101 >= 5 $", `unexpected character '$'`},
		{"LT-101 >= 1.2.3", `"1.2.3" is not a number`},
		{"LT-101 LT-102", `unexpected "LT-102"`},
	}
	for _, c := range cases {
		_, err := Parse(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.src, err, c.want)
		}
	}
}

func TestLeaves(t *testing.T) {
	e, err := Parse("LT-101 >= 18.5 or vote(2, GT-1 > 50, GT-2 > 50, LSHH-101)")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(e.Tags, ",") != "LT-101,GT-1,GT-2,LSHH-101" {
		t.Fatalf("Tags = %v", e.Tags)
	}
	if len(e.Leaves) != 4 || e.Leaves[0].Text != "LT-101 >= 18.5" || e.Leaves[0].Const[0] != 18.5 || !e.Leaves[3].Bare || e.Leaves[3].Pos != 48 {
		t.Fatalf("Leaves[0] = %+v, Leaves[3] = %+v", e.Leaves[0], e.Leaves[3])
	}
}

func TestEvalDoesNotAllocate(t *testing.T) {
	e, _ := Parse("vote(2, GT-1 >= 50, GT-2 >= 50, GT-3 >= 50) or not LSHH-101")
	in := &vals{e, map[string]float64{"GT-1": 1}, map[string]bool{}}
	if n := testing.AllocsPerRun(100, func() { e.Eval(in) }); n != 0 {
		t.Fatalf("Eval allocates %v times", n)
	}
}
