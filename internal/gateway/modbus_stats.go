package gateway

import "hazgate/drivers/modbus"

// ModbusStats are the Modbus diagnostics counters (requests, timeouts, CRC
// errors, exceptions, last error, round trip) of every Modbus device, by
// device name, and of every RTU line, by bus name ("serial /dev/ttyS1",
// "rtu-tcp 10.0.0.5:4001"). Safe to call from any goroutine.
func (g *Gateway) ModbusStats() (devices, buses map[string]modbus.Stats) {
	devices, buses = map[string]modbus.Stats{}, map[string]modbus.Stats{}
	cfg, _, drvs := g.current()
	for i, d := range drvs {
		if s, ok := d.(interface{ Stats() modbus.Stats }); ok {
			devices[cfg.Devices[i].Name] = s.Stats()
		}
	}
	for _, b := range g.buses.All() {
		buses[b.String()] = b.Stats()
	}
	return devices, buses
}
