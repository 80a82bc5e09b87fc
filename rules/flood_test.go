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

// twenty is one device with 20 level tags (h orange, hh red).
func twenty() *config.Config {
	dev := config.Device{Name: "D1", CommLossAfter: dur(time.Hour)}
	for i := range 20 {
		dev.Tags = append(dev.Tags, config.Tag{Name: fmt.Sprint("LT-", i), Kind: config.KindLevel,
			Alarms: &config.Alarms{H: f(15), HH: f(18)}})
	}
	return &config.Config{Devices: []config.Device{dev}}
}

func TestFloodIsSummarisedNotDropped(t *testing.T) {
	e := New(twenty())
	e.SetFloodLimit(5)
	var all []model.Event
	// 20 tags go over h one second apart: 5 pass, then a flood starts.
	for i := range 20 {
		all = e.Process([]model.Sample{{Tag: fmt.Sprint("LT-", i), Device: "D1", Value: 16, Time: t0.Add(time.Duration(i) * s)}}, all)
	}
	// A red alarm during the flood passes at once.
	all = e.Process([]model.Sample{{Tag: "LT-0", Device: "D1", Value: 19, Time: t0.Add(20 * s)}}, all)
	var passed, floods int
	for _, ev := range all {
		switch ev.Kind {
		case model.AlarmRaised:
			passed++
		case model.AlarmFlood:
			floods++
		}
	}
	if passed != 5+1 || floods != 1 || all[len(all)-1].Level != "hh" {
		t.Fatalf("before the summary: %d raises passed, %d flood events: %s", passed, floods, describe(all))
	}
	// The summary comes a minute after the flood began, with all 15 held.
	out := e.Tick(t0.Add(64*s), nil)
	if len(out) != 0 {
		t.Fatalf("summary early: %s", describe(out))
	}
	out = e.Tick(t0.Add(65*s), nil)
	if len(out) != 1 || out[0].Kind != model.AlarmFlood || len(out[0].Values) != 15 || out[0].State != "flood" {
		t.Fatalf("summary: %s %v", describe(out), out)
	}
	if _, ok := out[0].Values["LT-19/h"]; !ok || !strings.Contains(out[0].Message, "15 alarm events summarised") {
		t.Fatalf("summary values %v message %q", out[0].Values, out[0].Message)
	}
	// Quiet for a minute: the flood ends with a final summary (empty).
	out = e.Tick(t0.Add(80*s), nil)
	if len(out) != 1 || out[0].State != "flood_over" || !strings.Contains(out[0].Message, "15 events summarised in all") {
		t.Fatalf("flood end: %s", describe(out))
	}
	// Alarms pass one by one again; Active lists all of them throughout.
	out = e.Process([]model.Sample{{Tag: "LT-1", Device: "D1", Value: 10, Time: t0.Add(81 * s)}}, nil)
	if len(out) != 1 || out[0].Kind != model.AlarmCleared {
		t.Fatalf("after the flood: %s", describe(out))
	}
	if n := len(e.Active()); n != 21 {
		t.Fatalf("Active lists %d alarms, want 21 (20 h incl. 1 returned, 1 hh)", n)
	}
}

func TestShelve(t *testing.T) {
	cfg := oneTag(levelTag(config.Alarms{H: f(15)}))
	cfg.Devices[0].CommLossAfter = dur(time.Hour)
	e := New(cfg)
	for _, c := range []struct {
		level, who, reason string
		d                  time.Duration
		want               error
	}{
		{"hh", "bob", "x", time.Hour, ErrUnknownLevel},
		{"h", "", "x", time.Hour, ErrShelve},
		{"h", "bob", "", time.Hour, ErrShelve},
		{"h", "bob", "x", 0, ErrShelve},
		{"h", "bob", "x", 13 * time.Hour, ErrShelve},
	} {
		if _, err := e.Shelve("LT-101", c.level, c.who, c.reason, t0.Add(c.d), t0); !errors.Is(err, c.want) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	out, err := e.Shelve("LT-101", "h", "bob", "transmitter being replaced", t0.Add(time.Minute), t0)
	if err != nil || len(out) != 1 || out[0].Kind != model.AlarmShelved || out[0].Until == nil || out[0].Who != "bob" {
		t.Fatalf("shelve: %v %s", err, describe(out))
	}
	out = e.Process([]model.Sample{{Tag: "LT-101", Device: "D1", Value: 16, Time: t0.Add(s)}}, nil)
	if len(out) != 1 || out[0].Kind != model.AlarmRaised || !strings.HasPrefix(out[0].Message, "(shelved) ") {
		t.Fatalf("raise while shelved must still be recorded: %s", describe(out))
	}
	if a := e.Active(); len(a) != 1 || a[0].ShelvedBy != "bob" {
		t.Fatalf("Active %+v", a)
	}
	if out := e.Tick(t0.Add(59*s), nil); len(out) != 0 {
		t.Fatal(describe(out))
	}
	out = e.Tick(t0.Add(60*s), nil)
	if len(out) != 1 || out[0].Kind != model.ShelveExpired {
		t.Fatalf("expiry: %s", describe(out))
	}
	if _, err := e.Unshelve("LT-101", "h", "bob", t0.Add(61*s)); !errors.Is(err, ErrShelve) {
		t.Fatalf("unshelve after expiry: %v", err)
	}
	e.Shelve("LT-101", "h", "bob", "again", t0.Add(70*s), t0.Add(62*s))
	if out, err := e.Unshelve("LT-101", "h", "carol", t0.Add(63*s)); err != nil || out[0].Kind != model.AlarmUnshelved || out[0].Who != "carol" {
		t.Fatalf("unshelve: %v %s", err, describe(out))
	}
	if a := e.Active(); a[0].ShelvedBy != "" {
		t.Fatalf("still shelved: %+v", a)
	}
}

// TestChatteringIsNotAFlood: one alarm raised and cleared 30 times in a
// minute is one alarm, not a flood; every event passes.
func TestChatteringIsNotAFlood(t *testing.T) {
	e := New(twenty())
	e.SetFloodLimit(5)
	var out []model.Event
	for i := range 30 {
		out = e.Process([]model.Sample{{Tag: "LT-0", Device: "D1", Value: 16, Time: t0.Add(time.Duration(2*i) * s)}}, out)
		out = e.Process([]model.Sample{{Tag: "LT-0", Device: "D1", Value: 10, Time: t0.Add(time.Duration(2*i+1) * s)}}, out)
	}
	if len(out) != 60 {
		t.Fatalf("%d events, want 60 raises and clears: %s", len(out), describe(out[:min(len(out), 5)]))
	}
	for _, ev := range out {
		if ev.Kind == model.AlarmFlood {
			t.Fatal("flood reported for a chattering alarm")
		}
	}
}

func TestSortByPriority(t *testing.T) {
	cfg := &config.Config{Devices: []config.Device{{Name: "D1", CommLossAfter: dur(time.Hour), Tags: []config.Tag{
		{Name: "LT-1", Kind: config.KindLevel, Alarms: &config.Alarms{H: f(15), HH: f(18)}},
		{Name: "GT-C", Kind: config.KindGas, Unit: "%LEL", Alarms: &config.Alarms{H: f(25), HH: f(50), Gas: &config.GasPreset{Type: config.GasCombustible}}},
		{Name: "GT-T", Kind: config.KindGas, Unit: "ppm", Alarms: &config.Alarms{H: f(10), HH: f(20), Gas: &config.GasPreset{Type: config.GasToxic}}},
	}}}}
	e := New(cfg)
	e.Process([]model.Sample{
		{Tag: "LT-1", Value: 19, Time: t0},
		{Tag: "GT-C", Value: 60, Time: t0.Add(s)},
		{Tag: "GT-T", Value: 15, Time: t0.Add(2 * s)}, // toxic first alarm only
	}, nil)
	a := e.Active()
	SortByPriority(a)
	var got []string
	for _, x := range a {
		got = append(got, x.Tag+"/"+x.Level)
	}
	want := "[GT-C/hh LT-1/hh GT-T/h GT-C/h LT-1/h]"
	if fmt.Sprint(got) != want {
		t.Fatalf("order %v, want %s", got, want)
	}
}

// TestFloodHeldEventsSurviveReload: alarms held in a flood were never
// dropped, and a reload must not drop them either: an unchanged device's
// flood goes on with its held events; a device removed by the reload
// publishes them in a final summary at the next Tick.
func TestFloodHeldEventsSurviveReload(t *testing.T) {
	flooded := func() *Engine {
		e := New(twenty())
		e.SetFloodLimit(5)
		for i := range 20 {
			e.Process([]model.Sample{{Tag: fmt.Sprint("LT-", i), Device: "D1", Value: 16, Time: t0.Add(time.Duration(i) * s)}}, nil)
		}
		return e
	}
	keepAll := func(string) bool { return true }

	e := New(twenty())
	e.SetFloodLimit(5)
	e.Carry(flooded(), keepAll)
	out := e.Tick(t0.Add(65*s), nil)
	if len(out) != 1 || out[0].Kind != model.AlarmFlood || len(out[0].Values) != 15 {
		t.Fatalf("the flood's summary after a reload: %s %v, want the 15 held alarms", describe(out), out)
	}

	gone := New(&config.Config{Devices: []config.Device{{Name: "D2", Tags: []config.Tag{{Name: "PT-1", Kind: config.KindPressure}}}}})
	gone.Carry(flooded(), keepAll)
	out = gone.Tick(t0.Add(21*s), nil)
	if len(out) != 1 || out[0].Kind != model.AlarmFlood || out[0].Device != "D1" || out[0].State != "flood_over" || len(out[0].Values) != 15 {
		t.Fatalf("after a reload without D1: %s %v, want D1's final summary of the 15 held alarms", describe(out), out)
	}
	if out = gone.Tick(t0.Add(22*s), nil); len(out) != 0 {
		t.Fatalf("the final summary came twice: %s", describe(out))
	}
}
