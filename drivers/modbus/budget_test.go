package modbus

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"hazgate/internal/config"
)

// lineConfig is a gateway with n gas detectors on one RS-485 line at 9600
// 8E1, each read as one request of 10 holding registers every interval,
// and one Modbus TCP device (not on any line).
func lineConfig(t *testing.T, n int, interval, timeout string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("gateway: {id: gw, enterprise_code: E1}\nuplink: {brokers: [tcp://127.0.0.1:1883]}\ndevices:\n")
	b.WriteString("  - {name: plc, protocol: modbus-tcp, address: 127.0.0.1:502, tags: [{name: T0, kind: count, area: holding, address: 0}]}\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: gas-%d
    protocol: modbus-rtu
    serial: {port: /dev/ttyS1, baud: 9600, parity: E}
    unit_id: %d
    interval: %s
    timeout: %s
    tags:
      - {name: G%d-A, kind: count, area: holding, address: 0}
      - {name: G%d-B, kind: count, area: holding, address: 9}
`, i, i+1, interval, timeout, i, i)
	}
	cfg, err := config.Parse("plant.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The load is worked out from the frames: a read of 10 registers is an
// 8-character request and a 25-character answer, at 11 bits a character
// (1145833 ns at 9600 baud), plus a silent interval of 3.5 characters
// after each frame.
func TestLineLoads(t *testing.T) {
	const poll = 33*1145833 + 2*4010415 // ns, one poll of one detector
	cfg := lineConfig(t, 3, "100ms", "50ms")
	loads := LineLoads(cfg)
	if len(loads) != 1 {
		t.Fatalf("%d lines, want 1: %+v", len(loads), loads)
	}
	l := loads[0]
	if l.Bus != "serial /dev/ttyS1" || l.Line != "9600 8E1" || l.Devices != 3 || l.Requests != 3 {
		t.Errorf("%+v", l)
	}
	if want := time.Duration(3 * 10 * poll); l.Busy != want {
		t.Errorf("busy %v per second, want %v", l.Busy, want)
	}
	w := l.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "need 137% of the line's time") {
		t.Errorf("warnings %q, want one saying 137%%", w)
	}

	// two detectors fit (92%), but a silent one costs its 50 ms timeout
	// every 100 ms on top of the other's 46%
	l = LineLoads(lineConfig(t, 2, "100ms", "50ms"))[0]
	w = l.Warnings()
	if l.Busy >= time.Second || len(w) != 1 || !strings.Contains(w[0], "stops answering") {
		t.Errorf("busy %v, warnings %q", l.Busy, w)
	}
	// at 1 s intervals the line is mostly idle: no warning
	if w := LineLoads(lineConfig(t, 3, "1s", "500ms"))[0].Warnings(); len(w) != 0 {
		t.Errorf("warnings %q, want none", w)
	}
}

// RS-485 mode's delays hold the line before and after each request: a
// 5 ms + 5 ms turnaround per request at 10 polls a second is 100 ms more
// line time a second per detector.
func TestLineLoadsCountRS485Delays(t *testing.T) {
	plain := LineLoads(lineConfig(t, 1, "100ms", "50ms"))[0]
	cfg := lineConfig(t, 1, "100ms", "50ms")
	cfg.Devices[1].Serial.RS485 = &config.RS485{RTSOnSend: config.RTSHigh,
		DelayBeforeSend: config.Duration(5 * time.Millisecond), DelayAfterSend: config.Duration(5 * time.Millisecond)}
	withDelays := LineLoads(cfg)[0]
	if d := withDelays.Busy - plain.Busy; d != 100*time.Millisecond {
		t.Errorf("RS-485 delays add %v of line time a second, want 100ms", d)
	}
}
