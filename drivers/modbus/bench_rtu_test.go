package modbus

import (
	"context"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
)

// BenchmarkRTULine9600 reads 125 holding registers a poll over a pty (a
// socat pair) from slaves paced as on a 9600 8E1 line, and reports the
// registers per second against the line's theoretical rate: per request an
// 8-character request and a 255-character answer at 11 bits a character,
// and a silent interval (3.5 characters) after each frame.
func BenchmarkRTULine9600(b *testing.B) {
	a, tty := ptyPair(b)
	line := config.Serial{Port: a, Baud: 9600, DataBits: 8, Parity: "E", StopBits: 1}
	srv := modbustest.NewRTUServer(b, 1)
	srv.Slave(1).SetHolding(0, make([]uint16, MaxRegisters)...)
	srv.SetCharTime(line.CharTime())
	go func() { _ = srv.ServeFile(tty) }()

	tags := make([]config.Tag, MaxRegisters)
	for i := range tags {
		tags[i] = tag(string(rune('A'+i/26))+string(rune('a'+i%26)), config.AreaHolding, i, "uint16", "")
	}
	dev := device("", 2*time.Second, tags...)
	dev.Protocol, dev.Serial = config.ProtocolModbusRTU, &line
	d, err := NewRTU(dev, NewSerialBus(line, nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Poll(ctx); err != nil { // open the port outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := d.Poll(ctx); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	perRequest := time.Duration(8+5+2*MaxRegisters)*line.CharTime() + 2*line.Silence()
	theory := float64(MaxRegisters) / perRequest.Seconds()
	got := float64(MaxRegisters*b.N) / el.Seconds()
	b.ReportMetric(got, "registers/s")
	b.ReportMetric(theory, "theoretical-registers/s")
	b.ReportMetric(got/theory, "ratio")
}
