package modbus

import (
	"context"
	"os"
	"testing"
	"time"

	"hazgate/drivers/modbus/rtuframe"
)

// memLine is a line whose answers are fixed bytes: what a garbled or
// hostile line can put in front of the bus owner.
type memLine struct {
	in      []byte
	written []byte
}

func (l *memLine) String() string                     { return "mem" }
func (l *memLine) open(context.Context) (bool, error) { return false, nil }
func (l *memLine) drain(time.Duration, time.Time)     { l.in = nil }
func (l *memLine) close() error                       { return nil }
func (l *memLine) write(_ context.Context, b []byte, _ time.Time) error {
	l.written = append(l.written, b...)
	return nil
}

func (l *memLine) readFull(_ context.Context, b []byte, _ time.Time) error {
	if len(l.in) < len(b) {
		l.in = nil
		return &transportError{kind: failTimeout, op: "receive", err: os.ErrDeadlineExceeded}
	}
	copy(b, l.in)
	l.in = l.in[len(b):]
	return nil
}

// FuzzBusAnswer: whatever comes back on the line, the bus owner never
// panics, and it hands a frame to the device only if it is whole, intact
// and from the slave and function asked.
func FuzzBusAnswer(f *testing.F) {
	f.Add([]byte{0x01, 0x03, 0x04, 0x12, 0x34, 0x56, 0x78, 0x81, 0x07})
	f.Add([]byte{0x01, 0x83, 0x02, 0xC0, 0xF1})
	f.Add([]byte{0x02, 0x03, 0x02, 0x00, 0x01})
	f.Add([]byte{0x01, 0x03, 0xFF})
	f.Fuzz(func(t *testing.T, answer []byte) {
		l := &memLine{in: answer}
		b := newBus(l, 0, 0, nil)
		req := rtuframe.Seal([]byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x02})
		var last time.Time
		r := b.exchange(&busCall{ctx: context.Background(), frame: req, timeout: time.Millisecond}, &last)
		if r.err != nil {
			return
		}
		if rtuframe.Check(r.frame) != nil || r.frame[0] != 1 || r.frame[1]&0x7F != 3 {
			t.Fatalf("bus accepted % x", r.frame)
		}
	})
}
