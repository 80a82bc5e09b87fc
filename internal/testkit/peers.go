package testkit

import (
	"testing"

	"hazgate/internal/broker"
	"hazgate/internal/sim"
)

// StartBroker starts the embedded MQTT broker on a free loopback port and
// closes it when the test ends.
func StartBroker(t testing.TB) *broker.Broker {
	t.Helper()
	return StartBrokerOn(t, "127.0.0.1:0")
}

// StartBrokerOn starts the embedded broker on addr, as when the broker
// comes back on its old address after an outage, and closes it when the
// test ends. A test may also close it itself, to cut the gateway off.
func StartBrokerOn(t testing.TB, addr string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(addr, nil)
	if err != nil {
		t.Fatalf("start broker on %s: %v", addr, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// StartPlant starts the simulated tank farm (internal/sim/README.md), a
// Modbus TCP server, on a free loopback port and closes it when the test
// ends. With opts.Script the plant runs its scripted day.
func StartPlant(t testing.TB, opts sim.PlantOptions) *sim.Plant {
	t.Helper()
	plant := sim.NewPlant(opts)
	if err := plant.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start plant: %v", err)
	}
	t.Cleanup(func() { plant.Close() })
	return plant
}

// StartReactor starts the simulated OPC UA reactor on a free loopback
// port and closes it when the test ends.
func StartReactor(t testing.TB, opts sim.ReactorOptions) *sim.Reactor {
	t.Helper()
	r := sim.NewReactor(opts)
	if err := r.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start reactor: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
