package interlock

import (
	"errors"
	"testing"
	"time"

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
