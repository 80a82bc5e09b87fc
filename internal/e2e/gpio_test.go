package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	gpiodrv "hazgate/drivers/gpio"
	"hazgate/internal/gateway"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// gpioConfig is a tank level and inlet valve on the simulated plant over
// Modbus TCP, and the box's own lines on the fake GPIO backend: a beacon
// and a gas controller's alarm contact. IL-101 lights the beacon on a
// high-high level; IL-201 closes the inlet when the gas contact closes; the
// horn sounds while a red alarm is unacknowledged.
const gpioConfig = `
gateway: {id: gw-gpio, enterprise_code: E1, data_dir: %q}
uplink: {brokers: [%s], heartbeat: 10s}
devices:
  - name: tank-farm-plc
    protocol: modbus-tcp
    address: %s
    interval: 100ms
    timeout: 80ms
    tags:
      - {name: LT-101, kind: level, unit: m, area: holding, address: 0, type: float32, order: CDAB, range: {min: 0, max: 20}, alarms: {hh: 18.5}}
      - {name: XV-101, kind: digital, area: coil, address: 0, writable: true}
  - name: box-io
    protocol: gpio
    interval: 100ms
    gpio: {backend: fake}
    tags:
      - {name: XA-101, description: beacon, kind: digital, writable: true, gpio: {pin: GPIO17, direction: out}}
      - {name: XA-102, description: horn, kind: digital, writable: true, gpio: {pin: GPIO18, direction: out}}
      - name: GSA-201
        kind: digital
        gpio: {pin: GPIO22, direction: in, pull: up, active_low: true, debounce: 100ms}
        alarms: {h: 1}
interlocks:
  - {name: IL-101, condition: LT-101 >= 18.5, actions: [{tag: XA-101, value: 1}]}
  - {name: IL-201, condition: GSA-201, actions: [{tag: XV-101, value: 0}]}
alarm_outputs:
  - {tag: XA-102, colours: [red], unacknowledged: true}
`

// TestGPIOInterlocks runs the gateway in-process: a Modbus level from the
// simulator crossing HH trips an interlock whose action drives the fake
// GPIO beacon high (write verified by read-back), and a dry contact read
// on a GPIO input raises its alarm and trips an interlock that closes a
// Modbus coil. Nothing in the gateway treats GPIO specially.
func TestGPIOInterlocks(t *testing.T) {
	plant := testkit.StartPlant(t, sim.PlantOptions{})
	b := testkit.StartBroker(t)
	coll := newCollector()
	coll.attach(t, b)

	cfg := loadConfig(t, fmt.Appendf(nil, gpioConfig, t.TempDir(), b.URL(), plant.Addr()))
	fake := gpiodrv.NewFake()
	beacon, horn, gas := fake.Pin("GPIO17"), fake.Pin("GPIO18"), fake.Pin("GPIO22")
	g, err := gateway.New(cfg, gateway.Options{GPIOFake: fake})
	if err != nil {
		t.Fatal(err)
	}
	testkit.RunInBackground(t, "gateway", g, 15*time.Second)

	waitFor(t, 10*time.Second, "first data and the beacon line opened", func() bool { return coll.max("data") > 10 && beacon.Output() })
	if beacon.High() {
		t.Fatal("beacon on before any trip (initial state is 0)")
	}

	if err := plant.Set(sim.LT101, 19.0); err != nil {
		t.Fatal(err)
	}
	high := time.Now()
	waitFor(t, 10*time.Second, "beacon driven high by IL-101", beacon.High)
	took := time.Since(high)
	t.Logf("level above HH -> beacon on in %v (poll 100ms, no on_delay)", took)
	if took > 3*time.Second {
		t.Errorf("beacon on %v after the level passed HH, want within a poll and a write", took)
	}
	waitFor(t, 10*time.Second, "IL-101 tripped and its action verified at the platform", func() bool {
		return coll.kindCount("interlock_tripped") == 1 && coll.kindCount("interlock_action") == 1
	})
	// The LT-101 HH alarm (red) sounds the horn until it is acknowledged;
	// the beacon, latched by IL-101, stays on.
	waitFor(t, 10*time.Second, "horn on for the red LT-101 HH alarm", horn.High)
	ackCtx, ackCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ackCancel()
	if err := g.Ack(ackCtx, "LT-101", "", "operator-1"); err != nil {
		t.Fatalf("ack LT-101: %v", err)
	}
	waitFor(t, 10*time.Second, "horn silenced by the acknowledgement", func() bool { return !horn.High() })

	// The gas controller's relay closes its contact to ground.
	if plant.Now()[sim.XV101] != 1 {
		t.Fatalf("XV-101 = %v before the gas contact, want 1 (open)", plant.Now()[sim.XV101])
	}
	gas.Set(false)
	waitFor(t, 10*time.Second, "XV-101 closed by IL-201 on the GPIO contact", func() bool { return plant.Now()[sim.XV101] == 0 })
	waitFor(t, 10*time.Second, "GSA-201 alarm raised", func() bool {
		for _, a := range g.Status().Active {
			if a.Tag == "GSA-201" && a.Level == "h" {
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "both trips and actions at the platform", func() bool {
		return coll.kindCount("interlock_tripped") == 2 && coll.kindCount("interlock_action") == 2
	})
	if n := coll.kindCount("interlock_action_failed"); n != 0 {
		t.Errorf("%d failed actions", n)
	}
	if !beacon.High() {
		t.Error("beacon went off while IL-101 is tripped")
	}
}
