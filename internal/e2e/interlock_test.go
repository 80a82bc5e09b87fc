package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"hazgate/internal/sim"
	"hazgate/internal/testkit"
	"hazgate/rules/interlock"
)

// TestInterlockOverfill runs the demo's overfill interlock IL-101 against
// the simulated plant over Modbus TCP: with the broker down, LT-101 rises
// past HH and the gateway closes XV-101 (coil 0) on time; the trip and
// the verified write reach the platform once the broker is back; a reset
// is refused while the level is high and accepted after; a bypass ends by
// itself and is reported.
func TestInterlockOverfill(t *testing.T) {
	plant := testkit.StartPlant(t, sim.PlantOptions{})
	b := testkit.StartBroker(t)
	addr := b.Addr()
	coll := newCollector()
	coll.attach(t, b)

	cfg := loadConfig(t, testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), t.TempDir()))
	g, _ := runGateway(t, cfg)
	waitFor(t, 10*time.Second, "first data", func() bool { return coll.max("data") > 20 })
	if plant.Now()[sim.XV101] != 1 {
		t.Fatalf("XV-101 = %v before the test, want 1 (open)", plant.Now()[sim.XV101])
	}

	// The broker goes down; the interlock must not care.
	b.Close()
	if err := plant.Set(sim.LT101, 19.0); err != nil {
		t.Fatal(err)
	}
	high := time.Now()
	waitFor(t, 10*time.Second, "XV-101 closed by IL-101", func() bool { return plant.Now()[sim.XV101] == 0 })
	took := time.Since(high)
	// One poll interval (100 ms) + IL-101's on_delay (500 ms) + the
	// write; generous for a loaded CI machine.
	t.Logf("level above HH -> XV-101 closed in %v (poll 100ms + on_delay 500ms)", took)
	if took > 3*time.Second {
		t.Fatalf("XV-101 closed %v after the level passed HH, want within poll + on_delay + slack", took)
	}

	b2 := testkit.StartBrokerOn(t, addr)
	coll.attach(t, b2)
	waitFor(t, 20*time.Second, "interlock_tripped and interlock_action at the platform", func() bool {
		return coll.kindCount("interlock_tripped") == 1 && coll.kindCount("interlock_action") == 1
	})
	if n := coll.kindCount("interlock_action_failed"); n != 0 {
		t.Fatalf("%d failed actions", n)
	}
	st := g.Interlocks()
	if len(st) != 1 || st[0].Name != "IL-101" || !st[0].Tripped {
		t.Fatalf("status %+v", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.ResetInterlock(ctx, "IL-101", "operator-1"); !errors.Is(err, interlock.ErrConditionHolds) {
		t.Fatalf("reset while high: %v, want ErrConditionHolds", err)
	}
	// LT-101's own alarms (on_delay 1 s) are up before the level drops.
	waitFor(t, 10*time.Second, "LT-101 alarms raised", func() bool { return coll.kindCount("alarm_raised") >= 2 })
	plant.Set(sim.LT101, 10)
	waitFor(t, 10*time.Second, "reset accepted", func() bool {
		return g.ResetInterlock(ctx, "IL-101", "operator-1") == nil
	})
	if err := g.Ack(ctx, "LT-101", "", "operator-1"); err != nil {
		t.Fatalf("ack LT-101: %v", err)
	}
	if err := g.Bypass(ctx, "IL-101", "operator-1", "calibrating LT-101", time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "reset, ack, bypass on and expired at the platform", func() bool {
		return coll.kindCount("interlock_reset") == 1 && coll.kindCount("alarm_acknowledged") >= 1 &&
			coll.kindCount("bypass_on") == 1 && coll.kindCount("bypass_expired") == 1
	})
}
