package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

var (
	bauds    = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400}
	parities = []string{"N", "E", "O"}
)

// serial fills in the line defaults of every Modbus RTU device and checks
// what is particular to RTU: the port and its settings, unit ids (1..247,
// unique on a line), and that devices sharing a line agree on it. It also
// checks the writable tags of every Modbus device: only coils and whole
// holding registers can be written.
func (v *validator) serial(c *Config) {
	type line struct {
		path  string // of the first device on it
		s     Serial
		units map[int]string
	}
	lines := map[string]*line{}
	for i := range c.Devices {
		d := &c.Devices[i]
		path := fmt.Sprintf("devices[%d]", i)
		v.writableTags(d, path)
		rtu := d.Protocol == ProtocolModbusRTU || d.Protocol == ProtocolModbusRTUTCP
		if !rtu {
			if d.Serial != nil {
				v.report(path+".serial", "is only for protocol %s and %s (remove it)", ProtocolModbusRTU, ProtocolModbusRTUTCP)
			}
			continue
		}
		if d.Protocol == ProtocolModbusRTU && d.Serial == nil {
			v.missing(path+".serial", "the serial line: {port: /dev/ttyS1, baud: 9600, parity: E}")
			continue
		}
		if d.UnitID < 1 || d.UnitID > 247 {
			v.report(path+".unit_id", "%d is not a Modbus RTU slave address (1..247; 0 is broadcast, which no slave answers)", d.UnitID)
		}
		if d.Serial == nil {
			continue // modbus-rtu-tcp without line details
		}
		if !v.serialLine(d, path+".serial") {
			continue
		}
		key := d.BusKey()
		l := lines[key]
		if l == nil {
			lines[key] = &line{path: path, s: *d.Serial, units: map[int]string{d.UnitID: path}}
			continue
		}
		if !sameLine(*d.Serial, l.s) {
			v.report(path+".serial", "%s is also used by %s at line %d with other settings (%s there, %s here): devices on one line share its settings",
				strings.TrimPrefix(key, "serial "), l.path, v.line(l.path+".name"), describeLine(l.s), describeLine(*d.Serial))
		}
		if other, dup := l.units[d.UnitID]; dup {
			v.report(path+".unit_id", "%d is already the unit id of %s at line %d on the same line (slave addresses must be unique on a line)", d.UnitID, other, v.line(other+".name"))
		} else {
			l.units[d.UnitID] = path
		}
	}
	// Devices of modbus-rtu-tcp without serial details still share a
	// converter: their unit ids must differ too.
	seen := map[string]string{}
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Protocol != ProtocolModbusRTUTCP || d.Serial != nil {
			continue
		}
		path := fmt.Sprintf("devices[%d]", i)
		k := fmt.Sprintf("%s %d", d.Address, d.UnitID)
		if other, dup := seen[k]; dup {
			v.report(path+".unit_id", "%d is already the unit id of %s at line %d behind the same converter (slave addresses must be unique on a line)", d.UnitID, other, v.line(other+".name"))
		}
		seen[k] = path
	}
}

// serialLine fills in defaults and checks one device's line settings. It
// reports whether they are usable.
func (v *validator) serialLine(d *Device, path string) bool {
	s := d.Serial
	if !v.present(path + ".baud") {
		s.Baud = DefaultBaud
	}
	if !v.present(path + ".data_bits") {
		s.DataBits = DefaultDataBits
	}
	if s.Parity == "" {
		s.Parity = DefaultParity
	}
	if !v.present(path + ".stop_bits") {
		s.StopBits = DefaultStopBits
	}
	ok := true
	switch {
	case d.Protocol == ProtocolModbusRTU && s.Port == "":
		v.missing(path+".port", "the serial device, e.g. /dev/ttyS1 or /dev/ttyUSB0")
		ok = false
	case d.Protocol == ProtocolModbusRTU && !filepath.IsAbs(s.Port):
		v.report(path+".port", "%q is not an absolute device path (like /dev/ttyS1)", s.Port)
		ok = false
	case d.Protocol == ProtocolModbusRTUTCP && s.Port != "":
		v.report(path+".port", "is not used with %s: the converter is at address (remove port)", ProtocolModbusRTUTCP)
		ok = false
	}
	if !containsInt(bauds, s.Baud) {
		v.report(path+".baud", "%d is not a baud rate (one of %s)", s.Baud, joinInts(bauds))
		ok = false
	}
	if s.DataBits != 8 {
		v.report(path+".data_bits", "%d: Modbus RTU frames are 8 data bits (7 is Modbus ASCII, which is not supported)", s.DataBits)
		ok = false
	}
	if !oneOf(s.Parity, parities) {
		v.report(path+".parity", "%q is not a parity (N, E or O)", s.Parity)
		ok = false
	}
	if s.StopBits != 1 && s.StopBits != 2 {
		v.report(path+".stop_bits", "%d is not 1 or 2", s.StopBits)
		ok = false
	}
	if s.RS485 != nil && !v.rs485(d, path+".rs485") {
		ok = false
	}
	return ok
}

// rs485 fills in the defaults of a line's RS-485 mode and checks it.
func (v *validator) rs485(d *Device, path string) bool {
	r := d.Serial.RS485
	if d.Protocol != ProtocolModbusRTU {
		v.report(path, "is only for a local serial port (protocol %s): a converter switches the line's direction by itself (remove it)", ProtocolModbusRTU)
		return false
	}
	if r.RTSOnSend == "" {
		r.RTSOnSend = DefaultRTSOnSend
	}
	ok := true
	if r.RTSOnSend != RTSHigh && r.RTSOnSend != RTSLow {
		v.report(path+".rts_on_send", "%q is not high or low (the RTS level that enables the transceiver's driver)", r.RTSOnSend)
		ok = false
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{{"delay_before_send", r.DelayBeforeSend}, {"delay_after_send", r.DelayAfterSend}} {
		switch {
		case f.d < 0 || f.d > MaxRS485Delay:
			v.report(path+"."+f.name, "%s is out of range (0 to %s)", f.d, MaxRS485Delay)
			ok = false
		case time.Duration(f.d)%time.Millisecond != 0:
			v.report(path+"."+f.name, "%s is not a whole number of milliseconds (the kernel counts in ms)", f.d)
			ok = false
		}
	}
	return ok
}

// writableTags checks that the writable tags of a Modbus device are outputs.
func (v *validator) writableTags(d *Device, path string) {
	switch d.Protocol {
	case ProtocolModbusTCP, ProtocolModbusRTU, ProtocolModbusRTUTCP:
	default:
		return
	}
	for j, t := range d.Tags {
		if !t.Writable {
			continue
		}
		p := fmt.Sprintf("%s.tags[%d].writable", path, j)
		switch {
		case t.Area == AreaInput:
			v.report(p, "input registers are read-only in Modbus (only coil and holding tags can be writable)")
		case t.Area == AreaDiscrete:
			v.report(p, "discrete inputs are read-only in Modbus (only coil and holding tags can be writable)")
		case t.Type == TypeBit:
			v.report(p, "one bit of a register cannot be written without rewriting the other 15 bits (use a coil or a whole holding register)")
		}
	}
}

func describeLine(s Serial) string {
	line := fmt.Sprintf("%d %d%s%d", s.Baud, s.DataBits, s.Parity, s.StopBits)
	if r := s.RS485; r != nil {
		line += fmt.Sprintf(" + RS-485 mode (RTS %s, %s before, %s after)", r.RTSOnSend, r.DelayBeforeSend, r.DelayAfterSend)
	}
	return line
}

func containsInt(list []int, x int) bool {
	for _, y := range list {
		if x == y {
			return true
		}
	}
	return false
}

func joinInts(list []int) string {
	s := make([]string, len(list))
	for i, x := range list {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
