package rules

import (
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// TestCarry: an unchanged tag keeps its acknowledged alarm across a
// rebuild of the engine (no second raise, no clear); a changed tag starts
// afresh and raises again.
func TestCarry(t *testing.T) {
	cfg := func(hh2 float64) *config.Config {
		return &config.Config{Devices: []config.Device{{Name: "D1", CommLossAfter: dur(10 * s), Tags: []config.Tag{
			levelTag(config.Alarms{HH: f(18)}),
			{Name: "LT-102", Kind: config.KindLevel, Alarms: &config.Alarms{HH: f(hh2)}},
		}}}}
	}
	sample := func(tag string, v float64, at int) model.Sample {
		return model.Sample{Tag: tag, Value: v, Time: t0.Add(s * time.Duration(at))}
	}
	old := New(cfg(18))
	evs := old.Process([]model.Sample{sample("LT-101", 19, 0), sample("LT-102", 19, 0)}, nil)
	if len(evs) != 2 {
		t.Fatalf("raise: %v", evs)
	}
	if _, err := old.Ack("LT-101", "", "alice", t0.Add(s)); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Shelve("LT-101", "hh", "alice", "maintenance", t0.Add(MaxShelve/2), t0.Add(s)); err != nil {
		t.Fatal(err)
	}

	e := New(cfg(17)) // LT-102's limit changed
	e.Carry(old, func(tag string) bool { return tag == "LT-101" })
	evs = e.Process([]model.Sample{sample("LT-101", 19.5, 2), sample("LT-102", 19.5, 2)}, nil)
	if len(evs) != 1 || evs[0].Tag != "LT-102" || evs[0].Kind != model.AlarmRaised {
		t.Fatalf("after the rebuild: %+v, want only LT-102 raised again", evs)
	}
	var got *ActiveAlarm
	for _, a := range e.Active() {
		if a.Tag == "LT-101" {
			got = &a
		}
	}
	if got == nil || got.AckedBy != "alice" || got.ShelvedBy != "alice" {
		t.Fatalf("LT-101 after the rebuild: %+v, want active, acknowledged and shelved by alice", got)
	}
	if e.shelved != 1 {
		t.Errorf("shelved count %d, want 1", e.shelved)
	}
}

// TestCarryAfterDevicesMoved: a reload that removes or reorders devices
// moves the device index of a carried tag. With the old index a tag of
// the first device indexed past the end of the new device list (the rules
// goroutine panicked) or counted its samples for another device (a false
// comm_lost for one, a hidden one for the other).
func TestCarryAfterDevicesMoved(t *testing.T) {
	dev := func(name, tag string) config.Device {
		return config.Device{Name: name, CommLossAfter: dur(10 * s), Tags: []config.Tag{
			{Name: tag, Kind: config.KindLevel, Alarms: &config.Alarms{HH: f(18)}},
		}}
	}
	sample := func(tag string, v float64, at int) model.Sample {
		return model.Sample{Tag: tag, Value: v, Time: t0.Add(s * time.Duration(at))}
	}
	keepAll := func(string) bool { return true }

	old := New(&config.Config{Devices: []config.Device{dev("A", "LT-A"), dev("B", "LT-B")}})
	old.Process([]model.Sample{sample("LT-A", 1, 0), sample("LT-B", 1, 0)}, nil)
	removed := New(&config.Config{Devices: []config.Device{dev("B", "LT-B")}})
	removed.Carry(old, keepAll)
	removed.Process([]model.Sample{sample("LT-B", 1, 1)}, nil) // panicked

	old = New(&config.Config{Devices: []config.Device{dev("A", "LT-A"), dev("B", "LT-B")}})
	old.Process([]model.Sample{sample("LT-A", 1, 0), sample("LT-B", 1, 0)}, nil)
	swapped := New(&config.Config{Devices: []config.Device{dev("B", "LT-B"), dev("A", "LT-A")}})
	swapped.Carry(old, keepAll)
	var lost []string
	for at := 1; at <= 30; at++ { // A answers, B is silent
		for _, ev := range swapped.Process([]model.Sample{sample("LT-A", 1, at)}, nil) {
			if ev.Kind == model.CommLost {
				lost = append(lost, ev.Device)
			}
		}
		for _, ev := range swapped.Tick(t0.Add(s*time.Duration(at)), nil) {
			if ev.Kind == model.CommLost {
				lost = append(lost, ev.Device)
			}
		}
	}
	if len(lost) != 1 || lost[0] != "B" {
		t.Errorf("comm_lost for %v, want B only", lost)
	}
}
