package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"hazgate/drivers/modbus"
	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
)

// RTU devices naming the same converter share one bus owner; their
// counters and the bus's are visible to the rest of the gateway.
func TestRTUDevicesShareOneBus(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1, 2)
	srv.Slave(1).SetHolding(0, 10)
	srv.Slave(2).SetHolding(0, 20)
	src := fmt.Sprintf(`gateway: {id: gw, enterprise_code: E1, data_dir: %q}
uplink: {brokers: [tcp://127.0.0.1:1]}
devices:
  - {name: gas-1, protocol: modbus-rtu-tcp, address: %q, unit_id: 1, tags: [{name: G1, kind: count, area: holding, address: 0}]}
  - {name: gas-2, protocol: modbus-rtu-tcp, address: %q, unit_id: 2, tags: [{name: G2, kind: count, area: holding, address: 0}]}
`, t.TempDir(), srv.Addr, srv.Addr)
	cfg, err := config.Parse("plant.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.closeBuffer()
	defer g.closeDrivers()
	d1, ok1 := g.drivers[0].(*modbus.RTUDriver)
	d2, ok2 := g.drivers[1].(*modbus.RTUDriver)
	if !ok1 || !ok2 || d1.Bus() != d2.Bus() {
		t.Fatalf("drivers %T %T do not share one bus", g.drivers[0], g.drivers[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, d := range g.drivers {
		if _, err := d.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	devices, buses := g.ModbusStats()
	if devices["gas-1"].Requests != 1 || devices["gas-2"].Requests != 1 {
		t.Errorf("device stats %+v", devices)
	}
	if b := buses["rtu-tcp "+srv.Addr]; b.Requests != 2 || len(buses) != 1 {
		t.Errorf("bus stats %+v", buses)
	}
}
