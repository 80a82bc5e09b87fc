package rules

import (
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// TestDeviceComm: a device none of whose tags has had a good sample for
// comm_loss_after raises one comm_lost (not one per tag), with the reason
// of its last bad sample; the first good sample restores it once; a bad
// spell shorter than comm_loss_after raises nothing; a second device is
// judged on its own.
func TestDeviceComm(t *testing.T) {
	cfg := &config.Config{Devices: []config.Device{
		{Name: "PLC-1", CommLossAfter: config.Duration(10 * time.Second), Tags: []config.Tag{
			{Name: "LT-101", Kind: config.KindLevel}, {Name: "TT-101", Kind: config.KindTemperature}}},
		{Name: "PLC-2", CommLossAfter: config.Duration(10 * time.Second), Tags: []config.Tag{
			{Name: "PT-201", Kind: config.KindPressure}}},
	}}
	e := New(cfg)
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	comm := func(evs []model.Event) []model.Event {
		var out []model.Event
		for _, ev := range evs {
			if ev.Kind == model.CommLost || ev.Kind == model.CommRestored {
				out = append(out, ev)
			}
		}
		return out
	}
	poll := func(d time.Duration, q1 model.Quality, q2 model.Quality) []model.Event {
		ss := []model.Sample{
			{Tag: "LT-101", Device: "PLC-1", Value: 5, Quality: q1, Reason: reasonOf(q1), Time: at(d)},
			{Tag: "TT-101", Device: "PLC-1", Value: 20, Quality: q1, Reason: reasonOf(q1), Time: at(d)},
			{Tag: "PT-201", Device: "PLC-2", Value: 1, Quality: q2, Reason: reasonOf(q2), Time: at(d)},
		}
		return comm(e.Process(ss, nil))
	}
	tickAt := func(d time.Duration) []model.Event { return comm(e.Tick(at(d), nil)) }

	if got := poll(0, model.Good, model.Good); len(got) != 0 {
		t.Fatalf("good start: %v", got)
	}
	// A short bad spell: nothing.
	poll(2*time.Second, model.Bad, model.Good)
	if got := tickAt(9 * time.Second); len(got) != 0 {
		t.Fatalf("9 s of silence: %v", got)
	}
	poll(9500*time.Millisecond, model.Good, model.Good)
	// PLC-1 stops answering at 11 s; PLC-2 keeps going.
	for d := 11 * time.Second; d < 25*time.Second; d += time.Second {
		poll(d, model.Bad, model.Good)
		got := tickAt(d)
		switch {
		case d < 19500*time.Millisecond && len(got) != 0:
			t.Fatalf("at %v, before comm_loss_after: %v", d, got)
		case d == 20*time.Second:
			if len(got) != 1 || got[0].Kind != model.CommLost || got[0].Device != "PLC-1" || got[0].Reason != "timeout" {
				t.Fatalf("at 20 s: %v, want one comm_lost of PLC-1 (timeout)", got)
			}
		case d > 20*time.Second && len(got) != 0:
			t.Fatalf("at %v, a second comm event: %v", d, got)
		}
	}
	got := poll(25*time.Second, model.Good, model.Good)
	if len(got) != 1 || got[0].Kind != model.CommRestored || got[0].Device != "PLC-1" || !got[0].Time.Equal(at(25*time.Second)) {
		t.Fatalf("first good sample: %v, want one comm_restored of PLC-1", got)
	}
	if got := poll(26*time.Second, model.Good, model.Good); len(got) != 0 {
		t.Fatalf("restored twice: %v", got)
	}
	// A reload that keeps the devices keeps their state: no repeat.
	poll(27*time.Second, model.Bad, model.Good)
	poll(39*time.Second, model.Bad, model.Good)
	if got := tickAt(40 * time.Second); len(got) != 1 || got[0].Device != "PLC-1" {
		t.Fatalf("at 40 s: %v, want PLC-1 lost again", got)
	}
	e2 := New(cfg)
	e2.Carry(e, func(string) bool { return true })
	e = e2
	if got := tickAt(41 * time.Second); len(got) != 0 {
		t.Fatalf("after a reload: %v, want no second comm_lost", got)
	}
	if got := poll(42*time.Second, model.Good, model.Good); len(got) != 1 || got[0].Kind != model.CommRestored {
		t.Fatalf("after a reload, first good sample: %v, want comm_restored", got)
	}
}

func reasonOf(q model.Quality) string {
	if q == model.Good {
		return ""
	}
	return "timeout"
}
