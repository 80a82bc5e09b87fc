package drivers

import (
	"math"
	"testing"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

func TestScale(t *testing.T) {
	mA := &config.Tag{Name: "LT-101", Range: &config.Range{Min: 0, Max: 20}, Scale: &config.Scale{RawMin: 4, RawMax: 20}}
	pct := &config.Tag{Name: "PT-1", Range: &config.Range{Min: 0, Max: 100}, Scale: &config.Scale{RawMin: 4, RawMax: 20}}
	s7 := &config.Tag{Name: "TT-7", Range: &config.Range{Min: -50, Max: 150}, Scale: &config.Scale{RawMin: 0, RawMax: 27648}}
	eng := &config.Tag{Name: "FT-3", Range: &config.Range{Min: 0, Max: 160}} // already engineering units
	plain := &config.Tag{Name: "XS-1"}
	scaleOnly := &config.Tag{Name: "C-1", Scale: &config.Scale{RawMin: 0, RawMax: 10}} // no range: passed through

	cases := []struct {
		name   string
		tag    *config.Tag
		raw    float64
		value  float64
		q      model.Quality
		reason string
	}{
		{"4 mA is range min", mA, 4, 0, model.Good, ""},
		{"20 mA is range max", mA, 20, 20, model.Good, ""},
		{"12 mA is mid range", pct, 12, 50, model.Good, ""},
		{"8 mA", pct, 8, 25, model.Good, ""},
		{"3.9 mA below range kept, not clamped", pct, 3.9, -0.625, model.Good, ""},
		{"3.8 mA exactly is still good", pct, 3.8, (3.8 - 4) * 100 / 16, model.Good, ""},
		{"3.79 mA is a sensor fault", pct, 3.79, (3.79 - 4) * 100 / 16, model.Bad, "sensor fault: signal below range (raw 3.790)"},
		{"2.5 mA is a sensor fault", mA, 2.5, -1.875, model.Bad, "sensor fault: signal below range (raw 2.500)"},
		{"0 mA broken wire", mA, 0, -5, model.Bad, "sensor fault: signal below range (raw 0.000)"},
		{"20.5 mA exactly is still good", pct, 20.5, 103.125, model.Good, ""},
		{"20.51 mA is a sensor fault", pct, 20.51, (20.51 - 4) * 100 / 16, model.Bad, "sensor fault: signal above range (raw 20.510)"},
		{"22 mA short circuit", mA, 22, 22.5, model.Bad, "sensor fault: signal above range (raw 22.000)"},
		{"S7 0 is range min", s7, 0, -50, model.Good, ""},
		{"S7 27648 is range max", s7, 27648, 150, model.Good, ""},
		{"S7 13824 is mid", s7, 13824, 50, model.Good, ""},
		{"S7 overrange 27648+864 is the limit", s7, 28512, 156.25, model.Good, ""},
		{"S7 32767 overflow is a fault", s7, 32767, -50 + 32767*200.0/27648, model.Bad, "sensor fault: signal above range (raw 32767.000)"},
		{"S7 -345.6 is the low limit", s7, -345.6, -52.5, model.Good, ""},
		{"S7 -346 is a fault", s7, -346, -50 - 346*200.0/27648, model.Bad, "sensor fault: signal below range (raw -346.000)"},
		{"engineering value inside", eng, 80, 80, model.Good, ""},
		{"engineering value -2 is within 1.25% of 160", eng, -2, -2, model.Good, ""},
		{"engineering value -2.1 is a fault", eng, -2.1, -2.1, model.Bad, "sensor fault: signal below range (raw -2.100)"},
		{"engineering value 165 is the high limit", eng, 165, 165, model.Good, ""},
		{"engineering value 165.1 is a fault", eng, 165.1, 165.1, model.Bad, "sensor fault: signal above range (raw 165.100)"},
		{"no range passes through", plain, -12345, -12345, model.Good, ""},
		{"scale without range passes through", scaleOnly, 7, 7, model.Good, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, q, reason := Scale(tc.raw, tc.tag)
			if math.Abs(v-tc.value) > 1e-9 || q != tc.q || reason != tc.reason {
				t.Fatalf("Scale(%v) = %v, %v, %q; want %v, %v, %q", tc.raw, v, q, reason, tc.value, tc.q, tc.reason)
			}
		})
	}
}

func TestScaleOddInputs(t *testing.T) {
	flat := &config.Tag{Range: &config.Range{Min: 0, Max: 10}, Scale: &config.Scale{RawMin: 5, RawMax: 5}}
	if _, q, reason := Scale(5, flat); q != model.Bad || reason == "" {
		t.Errorf("empty raw span: %v %q, want bad with reason", q, reason)
	}
	tag := &config.Tag{Range: &config.Range{Min: 0, Max: 10}}
	for _, raw := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, q, _ := Scale(raw, tag); q != model.Bad {
			t.Errorf("Scale(%v) quality %v, want bad", raw, q)
		}
	}
	if v, q, _ := Scale(3, nil); v != 3 || q != model.Good {
		t.Errorf("Scale(3, nil) = %v %v", v, q)
	}
	// an inverted scale (20 mA = empty) still maps linearly
	inv := &config.Tag{Range: &config.Range{Min: 0, Max: 100}, Scale: &config.Scale{RawMin: 20, RawMax: 4}}
	if v, q, _ := Scale(20, inv); v != 0 || q != model.Good {
		t.Errorf("inverted scale at 20 mA = %v %v, want 0 good", v, q)
	}
	if v, q, _ := Scale(4, inv); v != 100 || q != model.Good {
		t.Errorf("inverted scale at 4 mA = %v %v, want 100 good", v, q)
	}
}
