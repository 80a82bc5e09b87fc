package interlock

import (
	"errors"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// TestCarry: a tripped interlock stays tripped across a rebuild of the
// engine, a bypass keeps its expiry, and the inputs' last samples are
// kept (no new start-up grace); an interlock not kept starts afresh.
func TestCarry(t *testing.T) {
	il2 := overfill(0)
	il2.Name, il2.Condition = "IL-102", "LT-101 >= 19"
	old := mustNew(t, plant(overfill(0), il2))
	old.Process([]model.Sample{sample("LT-101", 19.5, 0), sample("LSHH-101", 0, 0)}, nil, nil)
	if _, err := old.Bypass("IL-102", "bob", "calibration", t0.Add(time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	if st := old.Status(); !st[0].Tripped {
		t.Fatalf("before: %+v", st)
	}

	e := mustNew(t, plant(overfill(0), il2))
	e.Carry(old, func(name string) bool { return true })
	st := e.Status()
	if !st[0].Tripped || !st[1].Bypassed || st[1].BypassWho != "bob" || !st[1].BypassUntil.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after the rebuild: %+v", st)
	}
	if ev, cmds := e.Tick(t0.Add(s), nil, nil); len(ev)+len(cmds) != 0 {
		t.Fatalf("the rebuild tripped again: %s", kinds(ev))
	}
	if _, err := e.Reset("IL-101", "alice", t0.Add(2*s)); !errors.Is(err, ErrConditionHolds) {
		t.Fatalf("reset with LT-101 still high (carried input): %v", err)
	}

	fresh := mustNew(t, plant(overfill(0), il2))
	fresh.Carry(old, func(name string) bool { return name != "IL-101" })
	if st := fresh.Status(); st[0].Tripped || !st[1].Bypassed {
		t.Fatalf("not kept: %+v", st)
	}
}

// TestCarryNewInputGetsGrace: a reload long after the start adds an
// interlock on a tag that no interlock read before. Until its first sample
// arrives the tag is "not yet read", not bad: the new interlock must not
// trip (and close a valve) within the start-up grace counted from the
// reload, though the engine's own start is long past.
func TestCarryNewInputGetsGrace(t *testing.T) {
	old := mustNew(t, plant(overfill(0)))
	for at := time.Duration(0); at <= 100*s; at += s {
		old.Process([]model.Sample{sample("LT-101", 1, at), sample("LSHH-101", 0, at)}, nil, nil)
	}
	gas := config.Interlock{Name: "IL-201", Condition: "GT-1 >= 50", OnDelay: config.Duration(500 * time.Millisecond),
		BadQuality: config.BadTrip, Actions: []config.Action{{Tag: "XV-201", Value: f(0)}}}
	e := mustNew(t, plant(overfill(0), gas))
	e.Carry(old, func(name string) bool { return name == "IL-101" })
	for at := 101 * s; at <= 104*s; at += 100 * time.Millisecond { // GT-1's first poll is still on its way
		ev, cmds := e.Tick(t0.Add(at), nil, nil)
		if len(ev)+len(cmds) != 0 {
			t.Fatalf("at %v after a reload: %s %v, want nothing before GT-1 was read", at, kinds(ev), cmds)
		}
	}
	ev, cmds := e.Process([]model.Sample{sample("GT-1", 1, 104*s+500*time.Millisecond)}, nil, nil)
	if len(ev)+len(cmds) != 0 {
		t.Fatalf("GT-1 healthy at 1: %s %v", kinds(ev), cmds)
	}
	// Never read within the grace (comm_loss_after, 10 s): bad, trips.
	e2 := mustNew(t, plant(overfill(0), gas))
	e2.Carry(old, func(name string) bool { return name == "IL-101" })
	var tripped bool
	for at := 101 * s; at <= 112*s && !tripped; at += 100 * time.Millisecond {
		ev, _ := e2.Tick(t0.Add(at), nil, nil)
		for _, x := range ev {
			if x.Kind == model.InterlockTripped && x.Interlock == "IL-201" {
				tripped = true
			}
		}
	}
	if !tripped {
		t.Error("GT-1 never read for the whole grace: IL-201 (bad_quality: trip) did not trip")
	}
}
