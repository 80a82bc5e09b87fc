package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// op is one input to the state-machine tests: a sample value, or an ack.
type op struct {
	at    time.Duration
	v     float64 // sample value
	ack   bool    // acknowledge level "h" instead
	kinds []model.EventKind
	state State // state of level h afterwards
}

func TestStateMachine(t *testing.T) {
	ack := func(at time.Duration, st State, kinds ...model.EventKind) op {
		return op{at: at, ack: true, state: st, kinds: kinds}
	}
	val := func(at time.Duration, v float64, st State, kinds ...model.EventKind) op {
		return op{at: at, v: v, state: st, kinds: kinds}
	}
	R, C, A := model.AlarmRaised, model.AlarmCleared, model.AlarmAcknowledged
	cases := []struct {
		name  string
		latch bool
		ops   []op
	}{
		{"raise, ack, return", false, []op{
			val(0, 10, Normal),
			val(1*s, 20, ActiveUnacked, R),
			ack(2*s, ActiveAcked, A),
			val(3*s, 10, Normal, C),
		}},
		{"raise, return, ack", false, []op{
			val(1*s, 20, ActiveUnacked, R),
			val(2*s, 10, ReturnedUnacked, C),
			ack(3*s, Normal, A),
		}},
		{"returned-unacked comes back", false, []op{
			val(1*s, 20, ActiveUnacked, R),
			val(2*s, 10, ReturnedUnacked, C),
			val(3*s, 20, ActiveUnacked, R),
			ack(4*s, ActiveAcked, A),
		}},
		{"ack of a normal alarm is refused", false, []op{
			val(0, 10, Normal),
			ack(1*s, Normal),
		}},
		{"ack twice: the second is refused", false, []op{
			val(1*s, 20, ActiveUnacked, R),
			ack(2*s, ActiveAcked, A),
			ack(3*s, ActiveAcked),
		}},
		{"latch: stays active after return, ack clears", true, []op{
			val(1*s, 20, ActiveUnacked, R),
			val(2*s, 10, ActiveUnacked),
			val(3*s, 20, ActiveUnacked), // never stopped being announced
			val(4*s, 10, ActiveUnacked),
			ack(5*s, Normal, A, C),
		}},
		{"latch: ack while still in alarm, then return", true, []op{
			val(1*s, 20, ActiveUnacked, R),
			ack(2*s, ActiveAcked, A),
			val(3*s, 10, Normal, C),
			val(4*s, 20, ActiveUnacked, R),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := New(oneTag(levelTag(config.Alarms{H: f(15), Latch: tc.latch})))
			for i, o := range tc.ops {
				at := t0.Add(o.at)
				var out []model.Event
				if o.ack {
					var err error
					out, err = e.Ack("LT-101", "h", "alice", at)
					if len(o.kinds) == 0 && !errors.Is(err, ErrNothingToAck) {
						t.Fatalf("op %d: ack error %v, want ErrNothingToAck", i, err)
					}
					if len(o.kinds) > 0 && err != nil {
						t.Fatalf("op %d: ack: %v", i, err)
					}
				} else {
					out = e.Process([]model.Sample{{Tag: "LT-101", Device: "D1", Value: o.v, Time: at}}, nil)
				}
				var kinds []model.EventKind
				for _, ev := range out {
					kinds = append(kinds, ev.Kind)
					if !ev.Time.Equal(at) || ev.Level != "h" || ev.Colour != "orange" || ev.Priority != 2 {
						t.Fatalf("op %d: event %+v: want time %v, level h, orange, priority 2", i, ev, at)
					}
					if ev.Kind == A && (ev.Who != "alice" || ev.Message != "LT-101 level H alarm acknowledged by alice") {
						t.Fatalf("op %d: ack event %+v", i, ev)
					}
					if ev.Kind == C && (ev.Value == nil || ev.Limit == nil) {
						t.Fatalf("op %d: a clear without value or limit: %+v", i, ev)
					}
				}
				if fmt.Sprint(kinds) != fmt.Sprint(o.kinds) {
					t.Fatalf("op %d: events %v, want %v", i, kinds, o.kinds)
				}
				if len(out) > 0 && out[len(out)-1].State != o.state.String() {
					t.Fatalf("op %d: event state %q, want %v", i, out[len(out)-1].State, o.state)
				}
				st := Normal
				for _, a := range e.Active() {
					if a.Level == "h" {
						st = a.State
					}
				}
				if st != o.state {
					t.Fatalf("op %d: state %v, want %v", i, st, o.state)
				}
			}
		})
	}
}

func TestAckErrors(t *testing.T) {
	e := New(oneTag(levelTag(config.Alarms{H: f(15), HH: f(18)})))
	if _, err := e.Ack("XX-1", "", "bob", t0); !errors.Is(err, ErrUnknownTag) {
		t.Fatalf("unknown tag: %v", err)
	}
	e.Process([]model.Sample{{Tag: "LT-101", Value: 20, Time: t0}}, nil)
	out, err := e.Ack("LT-101", "", "", t0.Add(s))
	if err != nil || len(out) != 2 || out[0].Level != "h" || out[1].Level != "hh" || out[1].Who != "unknown" {
		t.Fatalf("ack all levels: %v %s", err, describe(out))
	}
}

func TestColours(t *testing.T) {
	tag := config.Tag{Name: "GT-201", Kind: config.KindGas, Unit: "%LEL", Alarms: &config.Alarms{
		H: f(20), HH: f(40), Priority: &config.AlarmPriority{Fault: "blue"},
		RateOfChange: &config.RateOfChange{Limit: 10, Window: dur(time.Minute)},
	}}
	e := New(oneTag(tag))
	out := e.Process([]model.Sample{{Tag: "GT-201", Value: 45, Time: t0}}, nil)
	if len(out) != 2 || out[0].Colour != "orange" || out[1].Colour != "red" || out[1].Priority != 1 {
		t.Fatalf("gas first orange, second red: %s", describe(out))
	}
	out = e.Process([]model.Sample{{Tag: "GT-201", Quality: model.Bad, Reason: "sensor fault: signal below range (raw 3.000)", Time: t0.Add(s)}}, nil)
	if len(out) != 1 || out[0].Kind != model.FaultRaised || out[0].Colour != "blue" || out[0].Priority != 4 {
		t.Fatalf("sensor fault at once, configured blue: %s", describe(out))
	}
}

func TestFrozen(t *testing.T) {
	tag := levelTag(config.Alarms{Frozen: &config.Frozen{After: dur(60 * s), Tolerance: 0.01}})
	e := New(oneTag(tag))
	var got []string
	step := func(at time.Duration, v float64) model.Sample {
		smp := []model.Sample{{Tag: "LT-101", Device: "D1", Value: v, Time: t0.Add(at)}}
		for _, ev := range e.Process(smp, nil) {
			got = append(got, fmt.Sprintf("%v %s %s", at, ev.Kind, ev.Reason))
		}
		return smp[0]
	}
	step(0, 5)
	step(30*s, 5.005)      // within tolerance
	step(59*s, 4.995)      // still
	smp := step(60*s, 5.0) // 60s unchanged: fault
	if smp.Quality != model.Bad || smp.Reason == "" {
		t.Fatalf("frozen sample not marked bad: %+v", smp)
	}
	smp = step(70*s, 5.0)
	if smp.Quality != model.Bad {
		t.Fatalf("still frozen, sample not bad: %+v", smp)
	}
	smp = step(80*s, 5.2) // moved: cleared
	if smp.Quality != model.Good {
		t.Fatalf("moving sample marked: %+v", smp)
	}
	want := fmt.Sprint([]string{
		"1m0s fault_raised sensor fault: frozen, unchanged for 1m0s",
		"1m20s fault_cleared sensor fault: frozen, unchanged for 1m0s",
	})
	if fmt.Sprint(got) != want {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}
}

func TestRateOfChange(t *testing.T) {
	tag := levelTag(config.Alarms{RateOfChange: &config.RateOfChange{Limit: 0.5, Window: dur(time.Minute)}})
	e := New(oneTag(tag))
	var got []string
	var ats []time.Duration
	// Rising 0.3 m/min for 3 minutes, then 0.6 m/min, then level.
	v := 10.0
	for i := 0; i <= 12*60; i += 10 {
		at := time.Duration(i) * s
		switch {
		case i <= 180:
			v = 10 + 0.3*float64(i)/60
		case i <= 360:
			v = 10.9 + 0.6*float64(i-180)/60
		}
		for _, ev := range e.Process([]model.Sample{{Tag: "LT-101", Device: "D1", Value: v, Time: t0.Add(at)}}, nil) {
			got = append(got, fmt.Sprintf("%s %s", ev.Kind, ev.Level))
			ats = append(ats, at)
			if ev.Kind == model.AlarmRaised && !strings.HasSuffix(ev.Message, " m/min >= 0.50 m/min") {
				t.Fatalf("raise message %q", ev.Message)
			}
		}
	}
	if fmt.Sprint(got) != "[alarm_raised roc alarm_cleared roc]" {
		t.Fatalf("events %v, want one raise and one clear of roc", got)
	}
	// The raise comes after the ramp steepened at 3m, within two windows;
	// the clear after it levelled off at 6m, within two windows.
	if ats[0] <= 3*time.Minute || ats[0] > 5*time.Minute || ats[1] <= 6*time.Minute || ats[1] > 8*time.Minute {
		t.Fatalf("raised at %v (want 3m..5m), cleared at %v (want 6m..8m)", ats[0], ats[1])
	}
}

func TestDeviation(t *testing.T) {
	cfg := &config.Config{Devices: []config.Device{{Name: "D1", CommLossAfter: dur(10 * s), Tags: []config.Tag{
		{Name: "LT-101A", Kind: config.KindLevel, Unit: "m", Alarms: &config.Alarms{Deviation: &config.Deviation{Tag: "LT-101B", Limit: 0.3, Delay: dur(5 * s)}}},
		{Name: "LT-101B", Kind: config.KindLevel, Unit: "m"},
	}}}}
	e := New(cfg)
	var got []string
	both := func(at time.Duration, a, b float64, qb model.Quality) {
		for _, ev := range e.Process([]model.Sample{
			{Tag: "LT-101B", Value: b, Quality: qb, Reason: "x", Time: t0.Add(at)},
			{Tag: "LT-101A", Value: a, Time: t0.Add(at)},
		}, nil) {
			got = append(got, fmt.Sprintf("%v %s %s %s", at, ev.Kind, ev.Level, ev.Colour))
		}
	}
	both(0, 10, 10.1, model.Good)
	both(1*s, 10, 10.5, model.Good) // 0.5 apart: pending 5s
	both(4*s, 10, 10.5, model.Good)
	both(5*s, 10, 10.5, model.Bad) // partner bad: no judgement, delay restarts
	both(6*s, 10, 10.5, model.Good)
	both(11*s, 10, 10.5, model.Good) // 5s of disagreement
	both(12*s, 10, 10.2, model.Good)
	both(17*s, 10, 10.2, model.Good)
	want := fmt.Sprint([]string{"11s alarm_raised dev yellow", "17s alarm_cleared dev yellow"})
	if fmt.Sprint(got) != want {
		t.Fatalf("events %v, want %v", got, want)
	}
}
