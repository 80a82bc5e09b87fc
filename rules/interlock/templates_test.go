package interlock

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules"
)

// TestTemplates loads every template of configs/templates and plays the
// incident it is for through both engines.
func TestTemplates(t *testing.T) {
	type in struct {
		at   time.Duration
		tag  string
		v    float64
		bad  bool
		tick bool
	}
	cases := []struct {
		file  string
		steps []in
		want  string // events (kind level/interlock colour) and commands, in order
	}{
		{"overfill.yaml", []in{{0, "LT-101", 10, false, false}, {0, "LSHH-101", 0, false, false},
			{1 * s, "LT-101", 18.6, false, false}, {2 * s, "", 0, false, true}},
			"alarm_raised LT-101/h orange; alarm_raised LT-101/hh red; interlock_tripped IL-101 red; write XV-101=0"},
		{"gas.yaml", []in{{0, "GT-201", 0, false, false}, {0, "GT-202", 0, false, false}, {0, "GT-203", 0, false, false}, {0, "AT-204", 0, false, false},
			{1 * s, "GT-202", 0, true, false}, {1 * s, "GT-201", 55, false, false}},
			"alarm_raised GT-201/h orange; alarm_raised GT-201/hh red; interlock_tripped IL-201 red; write XL-201=1; write XA-201=1; write XV-201=0"},
		{"gas.yaml", []in{{0, "GT-201", 0, false, false}, {0, "GT-202", 0, false, false}, {0, "GT-203", 0, false, false},
			{1 * s, "AT-204", 12, false, false}},
			"alarm_raised AT-204/h orange"},
		{"redundant-level.yaml", []in{{0, "LT-301A", 10, false, false}, {0, "LT-301B", 10.5, false, false},
			{5 * s, "LT-301A", 10, false, false}, {5 * s, "LT-301B", 10.5, false, false},
			{10 * s, "LT-301A", 10, false, false}, {10 * s, "LT-301B", 10.5, false, false}},
			"alarm_raised LT-301B/dev yellow"},
		{"gathering.yaml", []in{{0, "NP-401", 6, false, false}, {10 * s, "NP-401", 7, false, false},
			{69 * s, "NP-401", 7, false, false}, {70 * s, "", 0, false, true}},
			"alarm_raised NP-401/h red"},
		{"antifreeze.yaml", []in{{0, "TT-501", 8, false, false}, {1 * s, "TT-501", 2.5, false, false},
			{20 * s, "TT-501", 2.5, false, false}, {31 * s, "TT-501", 2.6, false, false}},
			"alarm_raised TT-501/l orange; interlock_tripped IL-501 red; write HT-501=1"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			cfg, err := config.Load("../../configs/templates/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			alarms := rules.New(cfg)
			locks, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			note := func(evs []model.Event, cmds []Command) {
				for _, e := range evs {
					who := e.Tag + "/" + e.Level
					if e.Interlock != "" {
						who = e.Interlock
					}
					got = append(got, fmt.Sprintf("%s %s %s", e.Kind, who, e.Colour))
				}
				for _, c := range cmds {
					got = append(got, fmt.Sprintf("write %s=%g", c.Tag, c.Value))
				}
			}
			for _, st := range c.steps {
				at := t0.Add(st.at)
				if st.tick {
					evs := alarms.Tick(at, nil)
					evs, cmds := locks.Tick(at, evs, nil)
					note(evs, cmds)
					continue
				}
				smp := []model.Sample{{Tag: st.tag, Value: st.v, Time: at}}
				if st.bad {
					smp[0].Quality, smp[0].Reason = model.Bad, "timeout"
				}
				evs := alarms.Process(smp, nil)
				evs, cmds := locks.Process(smp, evs, nil)
				note(evs, cmds)
			}
			if g := strings.Join(got, "; "); g != c.want {
				t.Fatalf("got  %s\nwant %s", g, c.want)
			}
		})
	}
}
