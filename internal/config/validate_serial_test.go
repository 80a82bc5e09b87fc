package config

import (
	"strings"
	"testing"
	"time"
)

const serialHead = `gateway: {id: gw, enterprise_code: E1}
uplink: {brokers: [tcp://127.0.0.1:1883]}
devices:
`

// A valid RTU line gets the Modbus defaults (9600 8E1) and its timing.
func TestSerialDefaults(t *testing.T) {
	src := serialHead + `  - name: gas-1
    protocol: modbus-rtu
    serial: {port: /dev/ttyS1}
    unit_id: 3
    tags: [{name: G1, kind: count, area: holding, address: 0, writable: true}]
  - name: gas-2
    protocol: modbus-rtu-tcp
    address: 10.0.0.5:4001
    tags: [{name: G2, kind: count, area: coil, address: 0, writable: true}]
`
	cfg, err := Parse("plant.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Devices[0].Serial
	if *s != (Serial{Port: "/dev/ttyS1", Baud: 9600, DataBits: 8, Parity: "E", StopBits: 1}) {
		t.Errorf("defaults: %+v", *s)
	}
	if s.CharBits() != 11 || s.CharTime() != 1145833*time.Nanosecond || s.Silence() != 4010415*time.Nanosecond {
		t.Errorf("timing: %d bits, char %v, silence %v", s.CharBits(), s.CharTime(), s.Silence())
	}
	if k := cfg.Devices[0].BusKey(); k != "serial /dev/ttyS1" {
		t.Errorf("bus key %q", k)
	}
	if k := cfg.Devices[1].BusKey(); k != "rtu-tcp 10.0.0.5:4001" || cfg.Devices[1].Serial != nil {
		t.Errorf("rtu-tcp: bus key %q, serial %+v", k, cfg.Devices[1].Serial)
	}
}

func TestSerialProblems(t *testing.T) {
	cases := []struct {
		name, devices string
		want          []string
	}{{
		name: "no serial, bad unit",
		devices: `  - {name: a, protocol: modbus-rtu, unit_id: 0, tags: [{name: A, kind: count, area: holding, address: 0}]}
`,
		want: []string{`plant.yaml:4:5: devices[0].serial: missing (the serial line: {port: /dev/ttyS1, baud: 9600, parity: E})`},
	}, {
		name: "bad line settings",
		devices: `  - name: a
    protocol: modbus-rtu
    unit_id: 248
    serial: {port: ttyS1, baud: 9601, data_bits: 7, parity: X, stop_bits: 3}
    tags: [{name: A, kind: count, area: holding, address: 0}]
`,
		want: []string{
			`plant.yaml:6:14: devices[0].unit_id: 248 is not a Modbus RTU slave address (1..247; 0 is broadcast, which no slave answers)`,
			`plant.yaml:7:20: devices[0].serial.port: "ttyS1" is not an absolute device path (like /dev/ttyS1)`,
			`plant.yaml:7:33: devices[0].serial.baud: 9601 is not a baud rate (one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)`,
			`plant.yaml:7:50: devices[0].serial.data_bits: 7: Modbus RTU frames are 8 data bits (7 is Modbus ASCII, which is not supported)`,
			`plant.yaml:7:61: devices[0].serial.parity: "X" is not a parity (N, E or O)`,
			`plant.yaml:7:75: devices[0].serial.stop_bits: 3 is not 1 or 2`,
		},
	}, {
		name: "one line, two settings, one unit id twice",
		devices: `  - {name: a, protocol: modbus-rtu, serial: {port: /dev/ttyS1}, tags: [{name: A, kind: count, area: holding, address: 0}]}
  - {name: b, protocol: modbus-rtu, serial: {port: /dev/ttyS1, parity: N}, unit_id: 2, tags: [{name: B, kind: count, area: holding, address: 0}]}
  - {name: c, protocol: modbus-rtu, serial: {port: /dev/ttyS1}, tags: [{name: C, kind: count, area: holding, address: 0}]}
  - {name: d, protocol: modbus-rtu-tcp, address: 10.0.0.5:4001, unit_id: 4, tags: [{name: D, kind: count, area: holding, address: 0}]}
  - {name: e, protocol: modbus-rtu-tcp, address: 10.0.0.5:4001, unit_id: 4, tags: [{name: E, kind: count, area: holding, address: 0}]}
`,
		want: []string{
			`plant.yaml:5:45: devices[1].serial: /dev/ttyS1 is also used by devices[0] at line 4 with other settings (9600 8E1 there, 9600 8N1 here): devices on one line share its settings`,
			`plant.yaml:6:5: devices[2].unit_id: 1 is already the unit id of devices[0] at line 4 on the same line (slave addresses must be unique on a line)`,
			`plant.yaml:8:74: devices[4].unit_id: 4 is already the unit id of devices[3] at line 7 behind the same converter (slave addresses must be unique on a line)`,
		},
	}, {
		name: "writable inputs, bits; serial where it does not belong",
		devices: `  - name: a
    protocol: modbus-tcp
    address: 10.0.0.1:502
    serial: {baud: 9600}
    tags:
      - {name: A, kind: count, area: input, address: 0, writable: true}
      - {name: B, kind: digital, area: holding, address: 1, type: bit, bit: 3, writable: true}
      - {name: C, kind: digital, area: discrete, address: 0, writable: true}
  - {name: b, protocol: modbus-rtu-tcp, address: 10.0.0.5:4001, serial: {port: /dev/ttyS1}, tags: [{name: D, kind: count, area: holding, address: 0}]}
`,
		want: []string{
			`plant.yaml:7:13: devices[0].serial: is only for protocol modbus-rtu and modbus-rtu-tcp (remove it)`,
			`plant.yaml:9:67: devices[0].tags[0].writable: input registers are read-only in Modbus (only coil and holding tags can be writable)`,
			`plant.yaml:10:90: devices[0].tags[1].writable: one bit of a register cannot be written without rewriting the other 15 bits (use a coil or a whole holding register)`,
			`plant.yaml:11:72: devices[0].tags[2].writable: discrete inputs are read-only in Modbus (only coil and holding tags can be writable)`,
			`plant.yaml:12:80: devices[1].serial.port: is not used with modbus-rtu-tcp: the converter is at address (remove port)`,
		},
	}, {
		name: "rs485",
		devices: `  - name: a
    protocol: modbus-rtu
    serial: {port: /dev/ttyS1, rs485: {rts_on_send: up, delay_before_send: 150ms, delay_after_send: 1500us}}
    tags: [{name: A, kind: count, area: holding, address: 0}]
  - {name: b, protocol: modbus-rtu, unit_id: 2, serial: {port: /dev/ttyS2, rs485: {}}, tags: [{name: B, kind: count, area: holding, address: 0}]}
  - {name: c, protocol: modbus-rtu, unit_id: 3, serial: {port: /dev/ttyS2}, tags: [{name: C, kind: count, area: holding, address: 0}]}
  - {name: d, protocol: modbus-rtu-tcp, address: 10.0.0.5:4001, serial: {rs485: {}}, tags: [{name: D, kind: count, area: holding, address: 0}]}
`,
		want: []string{
			`plant.yaml:6:53: devices[0].serial.rs485.rts_on_send: "up" is not high or low (the RTS level that enables the transceiver's driver)`,
			`plant.yaml:6:76: devices[0].serial.rs485.delay_before_send: 150ms is out of range (0 to 100ms)`,
			`plant.yaml:6:101: devices[0].serial.rs485.delay_after_send: 1.5ms is not a whole number of milliseconds (the kernel counts in ms)`,
			`plant.yaml:9:57: devices[2].serial: /dev/ttyS2 is also used by devices[1] at line 8 with other settings (9600 8E1 + RS-485 mode (RTS high, 0s before, 0s after) there, 9600 8E1 here): devices on one line share its settings`,
			`plant.yaml:10:81: devices[3].serial.rs485: is only for a local serial port (protocol modbus-rtu): a converter switches the line's direction by itself (remove it)`,
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := problems(t, serialHead+c.devices)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}
