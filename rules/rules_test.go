package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

func dur(d time.Duration) config.Duration { return config.Duration(d) }

// oneTag is a config with device D1 (CommLossAfter 10s) holding one tag.
func oneTag(tag config.Tag) *config.Config {
	return &config.Config{Devices: []config.Device{{
		Name: "D1", CommLossAfter: dur(10 * time.Second), Tags: []config.Tag{tag},
	}}}
}

func levelTag(a config.Alarms) config.Tag {
	return config.Tag{Name: "LT-101", Kind: config.KindLevel, Unit: "m", Type: config.TypeFloat32, Alarms: &a}
}

// step is one input to the engine and the events it must cause.
type step struct {
	at     time.Duration // offset from t0
	tick   bool          // Tick(now) instead of a sample
	tag    string        // default LT-101
	v      float64
	q      model.Quality
	reason string
	want   []ev
}

// ev is an expected event; its Time must be t0 + the step's at.
type ev struct {
	kind   model.EventKind
	level  string
	value  float64 // checked for alarms
	reason string  // checked for faults
}

func good(at time.Duration, v float64, want ...ev) step {
	return step{at: at, v: v, want: want}
}
func bad(at time.Duration, reason string, want ...ev) step {
	return step{at: at, q: model.Bad, reason: reason, want: want}
}
func tick(at time.Duration, want ...ev) step { return step{at: at, tick: true, want: want} }

func raised(level string, v float64) ev  { return ev{kind: model.AlarmRaised, level: level, value: v} }
func cleared(level string, v float64) ev { return ev{kind: model.AlarmCleared, level: level, value: v} }
func faultUp(reason string) ev           { return ev{kind: model.FaultRaised, reason: reason} }
func faultDown(reason string) ev         { return ev{kind: model.FaultCleared, reason: reason} }

const s = time.Second

func TestEngine(t *testing.T) {
	cases := []struct {
		name  string
		cfg   *config.Config
		steps []step
	}{
		{
			name: "raise at limit, not below",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5)})),
			steps: []step{
				good(0, 18.49),
				good(1*s, 18.4999999),
				good(2*s, 18.5, raised("h", 18.5)),
				good(3*s, 18.9), // already active: nothing new
			},
		},
		{
			name: "deadband hysteresis",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), Deadband: 0.2})),
			steps: []step{
				good(0, 18.6, raised("h", 18.6)),
				good(1*s, 18.4), // limit - deadband/2: stays active
				good(2*s, 18.3), // exactly limit - deadband: not below, stays
				good(3*s, 18.29, cleared("h", 18.29)),
				good(4*s, 18.45), // inside the band: does not raise a normal alarm
				good(5*s, 18.5, raised("h", 18.5)),
			},
		},
		{
			name: "on-delay: a short spike raises nothing, held long enough raises once",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), OnDelay: dur(5 * s)})),
			steps: []step{
				good(0, 18.6),
				good(2*s, 18.0), // spike over after 2s
				good(3*s, 18.6), // held from here
				good(7*s, 18.7), // 4s
				tick(7900 * time.Millisecond),
				good(8*s, 18.8, raised("h", 18.8)), // 5s
				good(9*s, 18.9),
				tick(15 * s),
			},
		},
		{
			name: "on-delay completed by Tick without a new sample",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), OnDelay: dur(5 * s)})),
			steps: []step{
				good(0, 18.6),
				tick(4999 * time.Millisecond),
				tick(5*s, raised("h", 18.6)),
				tick(6 * s),
				good(6*s, 18.7),
			},
		},
		{
			name: "off-delay",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), OffDelay: dur(3 * s)})),
			steps: []step{
				good(0, 18.6, raised("h", 18.6)),
				good(1*s, 18.0),
				good(2*s, 18.6), // back over the limit: clear timer restarts
				good(3*s, 18.0),
				good(5900*time.Millisecond, 17.9),
				tick(5999 * time.Millisecond),
				tick(6*s, cleared("h", 17.9)),
				good(7*s, 17.0),
			},
		},
		{
			name: "off-delay completed by a sample",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), OffDelay: dur(3 * s)})),
			steps: []step{
				good(0, 18.6, raised("h", 18.6)),
				good(1*s, 18.0),
				good(4*s, 17.5, cleared("h", 17.5)),
			},
		},
		{
			name: "hh and h raise in order while climbing and clear in reverse",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18), HH: f(19)})),
			steps: []step{
				good(0, 17.5),
				good(1*s, 18.2, raised("h", 18.2)),
				good(2*s, 19.1, raised("hh", 19.1)),
				good(3*s, 18.5, cleared("hh", 18.5)),
				good(4*s, 17.0, cleared("h", 17.0)),
				good(5*s, 19.5, raised("h", 19.5), raised("hh", 19.5)), // jump: both, h first
				good(6*s, 10, cleared("hh", 10), cleared("h", 10)),     // drop: both, hh first
			},
		},
		{
			name: "low levels",
			cfg:  oneTag(levelTag(config.Alarms{L: f(2), LL: f(1), Deadband: 0.1})),
			steps: []step{
				good(0, 2.5),
				good(1*s, 2.0, raised("l", 2.0)),
				good(2*s, 0.9, raised("ll", 0.9)),
				good(3*s, 1.05), // inside ll's band
				good(4*s, 1.1),  // exactly limit + deadband: stays
				good(5*s, 1.2, cleared("ll", 1.2)),
				good(6*s, 2.05),
				good(7*s, 2.2, cleared("l", 2.2)),
				good(8*s, 0.5, raised("l", 0.5), raised("ll", 0.5)),
			},
		},
		{
			name: "high and low at once",
			cfg:  oneTag(levelTag(config.Alarms{HH: f(19), H: f(18), L: f(2), LL: f(1)})),
			steps: []step{
				good(0, 20, raised("h", 20), raised("hh", 20)),
				good(1*s, 0, cleared("hh", 0), cleared("h", 0), raised("l", 0), raised("ll", 0)),
			},
		},
		{
			name: "bad and uncertain samples reset the on-delay",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), OnDelay: dur(5 * s)})),
			steps: []step{
				good(0, 18.6),
				bad(2*s, "timeout"),
				tick(2500 * time.Millisecond), // the pending raise was reset: nothing
				good(3*s, 18.6),
				good(6*s, 18.6),
				{at: 7 * s, v: 18.6, q: model.Uncertain, reason: "out of range"},
				good(8*s, 18.6),
				good(12*s, 18.6),
				good(13*s, 18.6, raised("h", 18.6)),
			},
		},
		{
			name: "bad samples neither clear nor raise",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), L: f(2)})),
			steps: []step{
				good(0, 18.6, raised("h", 18.6)),
				{at: 1 * s, v: 0, q: model.Bad, reason: "timeout"}, // value 0 would be below l and h-deadband
				{at: 2 * s, v: 0, q: model.Uncertain, reason: "out of range"},
				good(3*s, 18.0, cleared("h", 18.0)),
			},
		},
		{
			name: "NaN is not evaluated",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5), L: f(2)})),
			steps: []step{
				good(0, math.NaN()),
				good(1*s, math.Inf(1), raised("h", math.Inf(1))),
				good(2*s, math.NaN()),
			},
		},
		{
			name: "fault after CommLossAfter of bad samples, exactly",
			cfg:  oneTag(levelTag(config.Alarms{H: f(18.5)})),
			steps: []step{
				good(0, 10),
				bad(1*s, "timeout"),
				bad(5*s, "timeout"),
				bad(10999*time.Millisecond, "timeout"),
				bad(11*s, "sensor fault: signal below range", faultUp("sensor fault: signal below range")),
				bad(12*s, "timeout"), // once
				tick(30 * s),         // still once: no stale fault on top
				good(31*s, 19, faultDown("sensor fault: signal below range"), raised("h", 19)),
			},
		},
		{
			name: "fault from a run of bad samples completed by Tick",
			cfg:  oneTag(levelTag(config.Alarms{})),
			steps: []step{
				bad(0, "timeout"),
				tick(9999 * time.Millisecond),
				tick(10*s, faultUp("timeout")),
				tick(11 * s),
			},
		},
		{
			name: "bad and uncertain samples make one run without a trustworthy value",
			cfg:  oneTag(levelTag(config.Alarms{})),
			steps: []step{
				bad(0, "timeout"),
				{at: 5 * s, q: model.Uncertain, reason: "out of range"},
				bad(6*s, "timeout"),
				bad(10*s, "timeout", faultUp("timeout")),
				{at: 17 * s, q: model.Uncertain, reason: "out of range"}, // does not clear it
				good(18*s, 1, faultDown("timeout")),
			},
		},
		{
			name: "uncertain for CommLossAfter is a fault (a saturated transmitter shows no alarm)",
			cfg:  oneTag(levelTag(config.Alarms{HH: f(18)})),
			steps: []step{
				good(0, 17),
				{at: 1 * s, v: 25, q: model.Uncertain, reason: "uncertain: EngineeringUnitsExceeded"},
				{at: 10 * s, v: 25, q: model.Uncertain, reason: "uncertain: EngineeringUnitsExceeded"},
				{at: 11 * s, v: 25, q: model.Uncertain, reason: "uncertain: EngineeringUnitsExceeded", want: []ev{faultUp("uncertain: EngineeringUnitsExceeded")}},
				good(12*s, 17, faultDown("uncertain: EngineeringUnitsExceeded")),
			},
		},
		{
			name: "a good NaN for CommLossAfter is a fault",
			cfg:  oneTag(levelTag(config.Alarms{HH: f(18)})),
			steps: []step{
				good(0, math.NaN()),
				good(9*s, math.NaN()),
				good(10*s, math.NaN(), faultUp("not a number")),
				tick(15 * s),
				good(16*s, 1, faultDown("not a number")),
			},
		},
		{
			name: "stale: no sample at all for CommLossAfter",
			cfg:  oneTag(levelTag(config.Alarms{})),
			steps: []step{
				good(0, 5),
				tick(9 * s),
				tick(10*s, faultUp("stale: no sample for 10s")),
				tick(15 * s),
				bad(21*s, "timeout"),
				good(22*s, 5, faultDown("stale: no sample for 10s")),
			},
		},
		{
			name: "a device gone silent during an off-delay does not clear the alarm",
			cfg:  oneTag(levelTag(config.Alarms{HH: f(18), OffDelay: dur(30 * s)})),
			steps: []step{
				good(0, 19, raised("hh", 19)),
				good(1*s, 10), // the clear condition starts to hold
				tick(11*s, faultUp("stale: no sample for 10s")),
				tick(31 * s), // 30 s after 10, but nobody saw it hold
				tick(60 * s),
				good(61*s, 10, faultDown("stale: no sample for 10s")), // seen again from here
				good(70*s, 10),
				good(80*s, 10),
				good(90*s, 10),
				good(91*s, 10, cleared("hh", 10)),
			},
		},
		{
			name: "a device gone silent during an on-delay does not raise",
			cfg:  oneTag(levelTag(config.Alarms{HH: f(18), OnDelay: dur(30 * s)})),
			steps: []step{
				good(0, 19),
				tick(10*s, faultUp("stale: no sample for 10s")),
				tick(30 * s),
				tick(60 * s),
			},
		},
		{
			name: "stale: a tag never sampled counts from the first Tick",
			cfg:  oneTag(levelTag(config.Alarms{})),
			steps: []step{
				tick(0),
				tick(9 * s),
				tick(10*s, faultUp("stale: no sample for 10s")),
			},
		},
		{
			name: "unknown tag is ignored",
			cfg:  oneTag(levelTag(config.Alarms{H: f(1)})),
			steps: []step{
				{at: 0, tag: "XX-999", v: 100},
				{at: 20 * s, tag: "XX-999", q: model.Bad, reason: "timeout"},
				{at: 40 * s, tag: "", v: 100},
			},
		},
		{
			name: "digital tag alarms at 1",
			cfg: oneTag(config.Tag{Name: "LT-101", Kind: config.KindDigital, Type: config.TypeBool,
				Alarms: &config.Alarms{H: f(1)}}),
			steps: []step{
				good(0, 0),
				good(1*s, 1, raised("h", 1)),
				good(2*s, 1),
				good(3*s, 0, cleared("h", 0)),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := New(tc.cfg)
			var out []model.Event
			for i, st := range tc.steps {
				at := t0.Add(st.at)
				out = out[:0]
				if st.tick {
					out = e.Tick(at, out)
				} else {
					tag := st.tag
					if tag == "" && !strings.HasPrefix(tc.name, "unknown") {
						tag = "LT-101"
					}
					out = e.Process([]model.Sample{{Tag: tag, Device: "D1", Value: st.v, Quality: st.q, Reason: st.reason, Time: at}}, out)
				}
				checkEvents(t, fmt.Sprintf("step %d (at %v)", i, st.at), out, st.want, at)
			}
		})
	}
}

func checkEvents(t *testing.T, where string, got []model.Event, want []ev, at time.Time) {
	t.Helper()
	// Device-level comm_lost/comm_restored ride along with the tag events;
	// TestDeviceComm checks them.
	got = slices.DeleteFunc(slices.Clone(got), func(e model.Event) bool {
		return e.Kind == model.CommLost || e.Kind == model.CommRestored
	})
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %s, want %d %v", where, len(got), describe(got), len(want), want)
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.kind || !g.Time.Equal(at) || g.Tag != "LT-101" || g.Device != "D1" || g.Message == "" {
			t.Fatalf("%s: event %d = %s, want %v at %v", where, i, describe(got[i:i+1]), w, at)
		}
		switch w.kind {
		case model.AlarmRaised, model.AlarmCleared:
			if g.Level != w.level || g.Value == nil || *g.Value != w.value || g.Limit == nil {
				t.Fatalf("%s: event %d = %s, want %v", where, i, describe(got[i:i+1]), w)
			}
		case model.FaultRaised, model.FaultCleared:
			if g.Reason != w.reason {
				t.Fatalf("%s: event %d reason %q, want %q", where, i, g.Reason, w.reason)
			}
		}
	}
}

func describe(evs []model.Event) string {
	var b strings.Builder
	for _, e := range evs {
		v := "-"
		if e.Value != nil {
			v = fmt.Sprint(*e.Value)
		}
		fmt.Fprintf(&b, "[%s %s v=%s t=%s %q] ", e.Kind, e.Level, v, e.Time.Format("15:04:05.000"), e.Message)
	}
	return b.String()
}

func TestMessages(t *testing.T) {
	cfg := &config.Config{Devices: []config.Device{{Name: "D1", Tags: []config.Tag{
		{Name: "LT-101", Kind: config.KindLevel, Unit: "m", Alarms: &config.Alarms{HH: f(18.5), H: f(18), Deadband: 0.1}},
		{Name: "GT-201", Kind: config.KindGas, Unit: "%LEL", Description: "tank farm east", Alarms: &config.Alarms{HH: f(50), H: f(25)}},
		{Name: "PT-301", Kind: config.KindPressure, Unit: "MPa", Alarms: &config.Alarms{LL: f(0.1)}},
		{Name: "XS-401", Kind: config.KindDigital, Type: config.TypeBit, Alarms: &config.Alarms{H: f(1)}},
	}}}}
	e := New(cfg)
	out := e.Process([]model.Sample{
		{Tag: "LT-101", Value: 18.72, Time: t0},
		{Tag: "GT-201", Value: 51, Time: t0},
		{Tag: "PT-301", Value: 0.05, Time: t0},
		{Tag: "XS-401", Value: 1, Time: t0},
		{Tag: "LT-101", Value: 18.3, Time: t0.Add(s)},
	}, nil)
	want := []string{
		"LT-101 level H alarm: 18.72 m >= 18.00 m",
		"LT-101 level HH alarm: 18.72 m >= 18.50 m",
		"GT-201 tank farm east first alarm: 51.00 %LEL >= 25.00 %LEL",
		"GT-201 tank farm east second alarm: 51.00 %LEL >= 50.00 %LEL",
		"PT-301 pressure LL alarm: 0.05 MPa <= 0.10 MPa",
		"XS-401 digital H alarm: 1 >= 1",
		"LT-101 level HH alarm cleared: 18.30 m < 18.40 m (limit 18.50 m with deadband)",
	}
	if len(out) != len(want) {
		t.Fatalf("got %d events %s, want %d", len(out), describe(out), len(want))
	}
	for i, w := range want {
		if out[i].Message != w {
			t.Errorf("message %d = %q, want %q", i, out[i].Message, w)
		}
	}
}

func TestActive(t *testing.T) {
	cfg := &config.Config{Devices: []config.Device{
		{Name: "D1", CommLossAfter: dur(10 * s), Tags: []config.Tag{
			{Name: "LT-101", Kind: config.KindLevel, Alarms: &config.Alarms{HH: f(19), H: f(18)}},
			{Name: "LT-102", Kind: config.KindLevel, Alarms: &config.Alarms{H: f(18)}},
		}},
		{Name: "D2", CommLossAfter: dur(2 * s), Tags: []config.Tag{
			{Name: "PT-201", Kind: config.KindPressure},
		}},
	}}
	e := New(cfg)
	if a := e.Active(); len(a) != 0 {
		t.Fatalf("fresh engine has active alarms: %+v", a)
	}
	e.Process([]model.Sample{
		{Tag: "LT-101", Value: 19.5, Time: t0},
		{Tag: "LT-102", Value: 1, Time: t0},
		{Tag: "PT-201", Quality: model.Bad, Reason: "timeout", Time: t0},
		{Tag: "PT-201", Quality: model.Bad, Reason: "timeout", Time: t0.Add(2 * s)},
	}, nil)
	got := e.Active()
	want := []ActiveAlarm{
		{Tag: "LT-101", Device: "D1", Level: "h", State: ActiveUnacked, Condition: true, Colour: "orange", Priority: 2, Since: t0, Value: 19.5, Limit: 18},
		{Tag: "LT-101", Device: "D1", Level: "hh", State: ActiveUnacked, Condition: true, Colour: "red", Priority: 1, Since: t0, Value: 19.5, Limit: 19},
		{Tag: "PT-201", Device: "D2", Level: LevelFault, State: ActiveUnacked, Condition: true, Colour: "yellow", Priority: 3, Since: t0.Add(2 * s), Reason: "timeout"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Active() =\n%+v\nwant\n%+v", got, want)
	}
	e.Process([]model.Sample{{Tag: "LT-101", Value: 18.5, Time: t0.Add(3 * s)}, {Tag: "PT-201", Value: 1, Time: t0.Add(3 * s)}}, nil)
	// Unacknowledged alarms that returned stay listed until acknowledged.
	got = e.Active()
	if len(got) != 3 || got[0].Level != "h" || !got[0].Condition || got[1].State != ReturnedUnacked || got[2].State != ReturnedUnacked {
		t.Fatalf("after clearing: Active() = %+v, want LT-101 h active, hh and PT-201 fault returned", got)
	}
	if _, err := e.Ack("LT-101", "", "op", t0.Add(4*s)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ack("PT-201", "", "op", t0.Add(4*s)); err != nil {
		t.Fatal(err)
	}
	if got := e.Active(); len(got) != 1 || got[0].Level != "h" || got[0].State != ActiveAcked || got[0].AckedBy != "op" {
		t.Fatalf("after ack: Active() = %+v, want only LT-101 h, acknowledged by op", got)
	}
}

// farm is a config of n analog tags on 10 devices, each with all four levels.
func farm(n int) (*config.Config, []model.Sample) {
	cfg := &config.Config{}
	samples := make([]model.Sample, 0, n)
	for d := 0; d < 10; d++ {
		dev := config.Device{Name: fmt.Sprintf("D%d", d), CommLossAfter: dur(10 * s)}
		for i := 0; i < n/10; i++ {
			name := fmt.Sprintf("LT-%d%03d", d, i)
			dev.Tags = append(dev.Tags, config.Tag{Name: name, Kind: config.KindLevel, Unit: "m",
				Alarms: &config.Alarms{HH: f(19), H: f(18), L: f(2), LL: f(1), Deadband: 0.1, OnDelay: dur(2 * s)}})
			samples = append(samples, model.Sample{Tag: name, Device: dev.Name, Value: 10, Time: t0})
		}
		cfg.Devices = append(cfg.Devices, dev)
	}
	return cfg, samples
}

// TestProcessDoesNotAllocate: the steady state (nothing changes) must not
// allocate, so the engine keeps up with every sample on a small gateway.
func TestProcessDoesNotAllocate(t *testing.T) {
	cfg, samples := farm(1000)
	e := New(cfg)
	out := make([]model.Event, 0, 16)
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		i++
		for j := range samples {
			samples[j].Value = 10 + float64(i%5)
			samples[j].Time = t0.Add(time.Duration(i) * time.Second)
		}
		out = e.Process(samples, out[:0])
		out = e.Tick(t0.Add(time.Duration(i)*time.Second), out)
	})
	if allocs != 0 || len(out) != 0 {
		t.Fatalf("Process+Tick allocated %.1f times per run (events %d), want 0", allocs, len(out))
	}
}

func BenchmarkProcess1000Tags(b *testing.B) {
	cfg, samples := farm(1000)
	e := New(cfg)
	out := make([]model.Event, 0, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Values wander inside the normal band: the steady state.
		v := 10 + float64(i%7)
		for j := range samples {
			samples[j].Value = v
		}
		out = e.Process(samples, out[:0])
	}
	b.ReportMetric(float64(b.N)*float64(len(samples))/b.Elapsed().Seconds(), "samples/s")
}
