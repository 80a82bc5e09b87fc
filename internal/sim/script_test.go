package sim

import (
	"math"
	"testing"
	"time"

	"hazgate/configs"
	"hazgate/internal/config"
)

// demoDevice returns the tank-farm device of configs/demo.yaml, parsed
// and validated by the real loader.
func demoDevice(t *testing.T) config.Device {
	t.Helper()
	cfg, err := config.Parse("configs/demo.yaml", configs.DemoYAML())
	if err != nil {
		t.Fatalf("configs/demo.yaml does not load: %v", err)
	}
	for _, d := range cfg.Devices {
		if d.Protocol == config.ProtocolModbusTCP {
			return d
		}
	}
	t.Fatal("demo.yaml has no modbus-tcp device")
	return config.Device{}
}

// engineering turns a wire value of Values into the engineering value the
// gateway computes from the register with the tag's scale in demo.yaml,
// quantised exactly as the register encoding quantises it.
func engineering(t *testing.T, tag config.Tag, p Point, wire float64) float64 {
	t.Helper()
	var raw float64
	switch p.Encoding {
	case Float32ABCD, Float32CDAB:
		raw = float64(float32(wire))
	case Microamps:
		raw = float64(toUint16(wire * 1000))
	case Tenths:
		raw = float64(toUint16(wire * 10))
	case Bit:
		raw = 0
		if wire >= 0.5 {
			raw = 1
		}
	}
	if tag.Scale == nil {
		return raw
	}
	if tag.Range == nil {
		t.Fatalf("%s has a scale but no range", tag.Name)
	}
	f := (raw - tag.Scale.RawMin) / (tag.Scale.RawMax - tag.Scale.RawMin)
	return tag.Range.Min + f*(tag.Range.Max-tag.Range.Min)
}

// crossing is one change of a simple alarm state (no delays): raised at
// value >= limit, cleared at value < limit - deadband.
type crossing struct {
	level  string
	raised bool
	at     time.Duration
}

// alarmTimeline walks the script every 100 ms like the gateway's update
// rate and lists the high-side crossings of one tag.
func alarmTimeline(t *testing.T, tag config.Tag, p Point, script bool, until time.Duration) []crossing {
	t.Helper()
	type lim struct {
		name  string
		limit *float64
	}
	var out []crossing
	active := map[string]bool{}
	for at := time.Duration(0); at <= until; at += 100 * time.Millisecond {
		v := engineering(t, tag, p, valuesAt(at, script)[tag.Name])
		for _, l := range []lim{{"h", tag.Alarms.H}, {"hh", tag.Alarms.HH}} {
			if l.limit == nil {
				continue
			}
			switch {
			case !active[l.name] && v >= *l.limit:
				active[l.name] = true
				out = append(out, crossing{l.name, true, at})
			case active[l.name] && v < *l.limit-tag.Alarms.Deadband:
				active[l.name] = false
				out = append(out, crossing{l.name, false, at})
			}
		}
		for _, l := range []lim{{"l", tag.Alarms.L}, {"ll", tag.Alarms.LL}} {
			if l.limit != nil && v <= *l.limit {
				t.Fatalf("%s at %v: %.3f reaches the %s limit %.3f; the script never goes low", tag.Name, at, v, l.name, *l.limit)
			}
		}
	}
	return out
}

func TestScriptCrossesDemoThresholdsOnTime(t *testing.T) {
	dev := demoDevice(t)
	const tol = 300 * time.Millisecond
	// Expected times are worked out from the script's straight lines and
	// exponential decay against the limits in demo.yaml (see README.md).
	want := map[string][]crossing{
		LT101: {
			{"h", true, 10 * time.Second},           // 15 + 0.4 m/s * 5 s = 17
			{"hh", true, 13750 * time.Millisecond},  // 18.5
			{"hh", false, 24625 * time.Millisecond}, // falls below 18.3
			{"h", false, 30250 * time.Millisecond},  // falls below 16.8
		},
		LSHH101: {
			{"h", true, 14500 * time.Millisecond},  // the level passes 18.8 m
			{"h", false, 22750 * time.Millisecond}, // and falls below it
		},
		GT201: {
			{"h", true, 15290 * time.Millisecond},   // 20 %LEL on the rise
			{"hh", true, 18655 * time.Millisecond},  // 40 %LEL
			{"hh", false, 21415 * time.Millisecond}, // decays below 38
			{"h", false, 25970 * time.Millisecond},  // decays below 18
		},
	}
	for _, tag := range dev.Tags {
		if tag.Alarms == nil {
			continue
		}
		p, ok := pointOf(tag.Name)
		if !ok {
			t.Fatalf("demo.yaml tag %s is not in the plant", tag.Name)
		}
		// Two periods: the script must repeat exactly.
		got := alarmTimeline(t, tag, p, true, 2*Period)
		var exp []crossing
		for _, rep := range []time.Duration{0, Period} {
			for _, c := range want[tag.Name] {
				exp = append(exp, crossing{c.level, c.raised, c.at + rep})
			}
		}
		if len(got) != len(exp) {
			t.Errorf("%s: %d alarm changes %v, want %d %v", tag.Name, len(got), got, len(exp), exp)
			continue
		}
		for i := range exp {
			g, e := got[i], exp[i]
			if g.level != e.level || g.raised != e.raised || g.at < e.at-tol || g.at > e.at+tol {
				t.Errorf("%s change %d: got %+v, want %+v ± %v", tag.Name, i, g, e, tol)
			}
		}
	}
}

func TestScriptFirstMinuteShowsEveryIncident(t *testing.T) {
	// A newcomer must see the overfill, the gas alarms and the sensor
	// fault within the first minute.
	var sawHH, sawGas2, sawFault, sawTrip, sawClosed bool
	for at := time.Duration(0); at < time.Minute; at += 100 * time.Millisecond {
		v := valuesAt(at, true)
		sawHH = sawHH || v[LT101] >= 18.5
		sawGas2 = sawGas2 || v[GT201] >= 40
		sawFault = sawFault || v[TT102] < 3.8
		sawTrip = sawTrip || v[LSHH101] == 1
		sawClosed = sawClosed || v[XV101] == 0
	}
	if !sawHH || !sawGas2 || !sawFault || !sawTrip || !sawClosed {
		t.Fatalf("first minute: LT-101 HH %v, GT-201 second alarm %v, TT-102 fault %v, LSHH-101 trip %v, XV-101 closed %v",
			sawHH, sawGas2, sawFault, sawTrip, sawClosed)
	}
}

func TestScriptSensorFaultWindow(t *testing.T) {
	cases := []struct {
		at    time.Duration
		fault bool
	}{
		{39900 * time.Millisecond, false},
		{40 * time.Second, true},
		{47 * time.Second, true},
		{54900 * time.Millisecond, true},
		{55 * time.Second, false},
		{Period + 45*time.Second, true}, // repeats
	}
	for _, c := range cases {
		mA := valuesAt(c.at, true)[TT102]
		if got := mA < 3.8; got != c.fault {
			t.Errorf("TT-102 at %v: %.3f mA, fault %v, want %v", c.at, mA, got, c.fault)
		}
		if c.fault && math.Abs(mA-2.5) > 0.02 {
			t.Errorf("TT-102 at %v: %.3f mA, want the broken-wire 2.5 mA", c.at, mA)
		}
	}
}

func TestScriptSwitchAndValveFollowTheLevel(t *testing.T) {
	cases := []struct {
		at          time.Duration
		lshh, valve float64
	}{
		{0, 0, 1},
		{14 * time.Second, 0, 1},
		{14600 * time.Millisecond, 1, 0}, // level passed 18.8 m at 14.5 s
		{22 * time.Second, 1, 0},
		{23 * time.Second, 0, 0}, // level back below the switch, valve still shut
		{36900 * time.Millisecond, 0, 0},
		{37 * time.Second, 0, 1}, // level normal again, inlet reopened
	}
	for _, c := range cases {
		v := valuesAt(c.at, true)
		if v[LSHH101] != c.lshh || v[XV101] != c.valve {
			t.Errorf("at %v: LSHH-101 %v XV-101 %v, want %v %v (LT-101 %.2f)", c.at, v[LSHH101], v[XV101], c.lshh, c.valve, v[LT101])
		}
	}
}

func TestSteadyPlantNeverAlarms(t *testing.T) {
	dev := demoDevice(t)
	for _, tag := range dev.Tags {
		if tag.Alarms == nil {
			continue
		}
		p, _ := pointOf(tag.Name)
		if got := alarmTimeline(t, tag, p, false, 2*Period); len(got) != 0 {
			t.Errorf("%s alarms without the script: %v", tag.Name, got)
		}
	}
	for at := time.Duration(0); at < 2*Period; at += 100 * time.Millisecond {
		v := valuesAt(at, false)
		if v[TT102] < 3.8 || v[LSHH101] != 0 || v[XV101] != 1 {
			t.Fatalf("steady plant at %v: %v", at, v)
		}
	}
}

func TestValuesAtIsPureAndNoisy(t *testing.T) {
	a, b := valuesAt(3*time.Second, true), valuesAt(3*time.Second, true)
	for tag := range a {
		if a[tag] != b[tag] {
			t.Fatalf("%s differs between two calls at the same time: %v %v", tag, a[tag], b[tag])
		}
	}
	// Noise: the level is not a flat line, but stays within 0.02 m.
	distinct := map[float64]bool{}
	for at := time.Duration(0); at < 5*time.Second; at += 100 * time.Millisecond {
		v := valuesAt(at, true)[LT101]
		if math.Abs(v-normalLevel101) > 0.02 {
			t.Fatalf("LT-101 noise at %v: %.4f", at, v)
		}
		distinct[v] = true
	}
	if len(distinct) < 10 {
		t.Fatalf("LT-101 took %d distinct values in 5 s; want visible noise", len(distinct))
	}
}

func TestRegisterMapMatchesDemoConfig(t *testing.T) {
	dev := demoDevice(t)
	tags := map[string]config.Tag{}
	for _, tag := range dev.Tags {
		tags[tag.Name] = tag
	}
	if len(tags) != len(registerMap) {
		t.Errorf("demo.yaml has %d tags, the plant %d", len(tags), len(registerMap))
	}
	for _, p := range registerMap {
		tag, ok := tags[p.Tag]
		if !ok {
			t.Errorf("%s is not in demo.yaml", p.Tag)
			continue
		}
		if tag.Area != string(p.Area) || tag.Address == nil || *tag.Address != int(p.Address) {
			t.Errorf("%s: demo.yaml %s %v, plant %s %d", p.Tag, tag.Area, tag.Address, p.Area, p.Address)
		}
		order := tag.Order
		if order == "" {
			order = "ABCD"
		}
		switch p.Encoding {
		case Float32ABCD, Float32CDAB:
			if tag.Type != config.TypeFloat32 || "float32 "+order != string(p.Encoding) {
				t.Errorf("%s: demo.yaml %s %s, plant %s", p.Tag, tag.Type, order, p.Encoding)
			}
		case Microamps, Tenths:
			if tag.Type != config.TypeUint16 || tag.Scale == nil {
				t.Errorf("%s: demo.yaml type %s scale %v, plant %s", p.Tag, tag.Type, tag.Scale, p.Encoding)
			}
		case Bit:
			if tag.Type != "" && tag.Type != config.TypeBool {
				t.Errorf("%s: demo.yaml type %s, plant %s", p.Tag, tag.Type, p.Encoding)
			}
		}
	}
	// Scales: a known wire value must come out as the known engineering value.
	checks := []struct {
		tag  string
		wire float64
		eng  float64
	}{
		{TT101, 4, 0}, {TT101, 20, 100}, {TT102, 12, 50},
		{GT201, 48.5, 48.5}, {GT202, 0, 0}, {GT203, 100, 100},
	}
	for _, c := range checks {
		p, _ := pointOf(c.tag)
		if got := engineering(t, tags[c.tag], p, c.wire); math.Abs(got-c.eng) > 1e-9 {
			t.Errorf("%s: wire %v reads as %v, want %v", c.tag, c.wire, got, c.eng)
		}
	}
}
