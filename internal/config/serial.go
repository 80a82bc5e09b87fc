package config

import "time"

// Serial is an RS-485 line carrying Modbus RTU.
//
// For protocol modbus-rtu it names the port and its settings; every device
// naming the same port shares one bus (one request on the wire at a time)
// and must give the same settings. For modbus-rtu-tcp (a serial-to-Ethernet
// converter in transparent mode, at the device's address) the port is not
// set; baud and framing, when given, describe the line behind the
// converter, so the gateway can keep the silent interval and `hazgate
// validate` can tell whether the line can carry the configured polls.
type Serial struct {
	Port     string `yaml:"port"`      // modbus-rtu: the device, e.g. /dev/ttyS1 or /dev/ttyUSB0
	Baud     int    `yaml:"baud"`      // default 9600
	DataBits int    `yaml:"data_bits"` // 8 (RTU frames are 8-bit); default 8
	Parity   string `yaml:"parity"`    // N, E or O; default E (the Modbus default)
	StopBits int    `yaml:"stop_bits"` // 1 or 2; default 1
	// RS485, when present, switches a local UART into the kernel's RS-485
	// mode (TIOCSRS485): the driver raises RTS, wired to the transceiver's
	// driver-enable pin, for exactly the time a frame is on the wire.
	// Needed on boards whose UART drives an RS-485 transceiver directly;
	// USB adapters and converters switch direction by themselves.
	RS485 *RS485 `yaml:"rs485"`
}

// RS485 is the kernel RS-485 mode of a serial port (modbus-rtu only).
type RS485 struct {
	RTSOnSend       string   `yaml:"rts_on_send"`       // RTS level while sending: high (default) or low; the other level otherwise
	DelayBeforeSend Duration `yaml:"delay_before_send"` // RTS set this long before the first bit; whole ms, 0..100ms, default 0
	DelayAfterSend  Duration `yaml:"delay_after_send"`  // RTS kept this long after the last bit; whole ms, 0..100ms, default 0
}

// RS485 defaults.
const (
	RTSHigh          = "high"
	RTSLow           = "low"
	DefaultRTSOnSend = RTSHigh
	MaxRS485Delay    = Duration(100 * time.Millisecond)
)

// sameLine reports whether two lines have the same settings, port aside.
func sameLine(a, b Serial) bool {
	ra, rb := a.RS485, b.RS485
	a.Port, b.Port, a.RS485, b.RS485 = "", "", nil, nil
	if a != b || (ra == nil) != (rb == nil) {
		return false
	}
	return ra == nil || *ra == *rb
}

// TurnAround is what RS-485 mode adds to each frame on the line: RTS set
// before the first bit and held after the last.
func (s Serial) TurnAround() time.Duration {
	if s.RS485 == nil {
		return 0
	}
	return time.Duration(s.RS485.DelayBeforeSend + s.RS485.DelayAfterSend)
}

// Serial defaults (Modbus over Serial Line v1.02, 2.5.1: even parity is the
// default; 9600 is the rate every device supports).
const (
	DefaultBaud     = 9600
	DefaultDataBits = 8
	DefaultParity   = "E"
	DefaultStopBits = 1
)

// CharBits is how many bits one character takes on the line: start bit,
// data bits, parity bit if any, stop bits (11 for 8E1, 10 for 8N1).
func (s Serial) CharBits() int {
	n := 1 + s.DataBits + s.StopBits
	if s.Parity != "N" {
		n++
	}
	return n
}

// CharTime is the time one character takes at the line's baud rate.
func (s Serial) CharTime() time.Duration {
	if s.Baud <= 0 {
		return 0
	}
	return time.Duration(s.CharBits()) * time.Second / time.Duration(s.Baud)
}

// Silence is the quiet time that must separate two frames on the line:
// 3.5 character times, or 1.75 ms above 19200 baud (Modbus over Serial
// Line v1.02, 2.5.1.1).
func (s Serial) Silence() time.Duration {
	if s.Baud <= 0 {
		return 0
	}
	if s.Baud > 19200 {
		return 1750 * time.Microsecond
	}
	return s.CharTime() * 7 / 2
}

// BusKey names the line a Modbus RTU device is on: devices with the same
// key share one bus. It is "" for other protocols.
func (d *Device) BusKey() string {
	switch d.Protocol {
	case ProtocolModbusRTU:
		if d.Serial != nil {
			return "serial " + d.Serial.Port
		}
	case ProtocolModbusRTUTCP:
		return "rtu-tcp " + d.Address
	}
	return ""
}
