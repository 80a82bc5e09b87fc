package modbus

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gmb "github.com/goburrow/modbus"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

func nan() float64 { return math.NaN() }

func writable(tg config.Tag) config.Tag { tg.Writable = true; return tg }

func write(d *TCPDriver, tag string, v float64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Write(ctx, tag, v)
}

// Writes reach the device in the tag's type, order and raw units, with the
// function code that fits their width, and are read back.
func TestWriteEncodesTypeOrderAndScale(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.SetHolding(0, make([]uint16, 20)...)
	srv.SetCoils(0, false, false)

	sp := writable(tag("SP", config.AreaHolding, 0, "float32", "CDAB"))
	sp.Range = &config.Range{Min: 0, Max: 20}
	pct := writable(tag("PCT", config.AreaHolding, 4, "uint16", ""))
	pct.Range = &config.Range{Min: 0, Max: 100}
	pct.Scale = &config.Scale{RawMin: 0, RawMax: 10000}
	big := writable(tag("BIG", config.AreaHolding, 6, "float64", "DCBA"))
	neg := writable(tag("NEG", config.AreaHolding, 10, "int32", "BADC"))
	xv := writable(tag("XV", config.AreaCoil, 1, "bool", ""))
	d := newDriver(t, device(srv.Addr, time.Second, sp, pct, big, neg, xv))

	for _, w := range []struct {
		tag  string
		v    float64
		addr uint16
		want []uint16
	}{
		{"SP", 12.5, 0, []uint16{0x0000, 0x4148}},                  // 12.5 = 41 48 00 00, words swapped
		{"PCT", 42.5, 4, []uint16{4250}},                           // 42.5 % of 0..10000 raw
		{"PCT", 33.33333, 4, []uint16{3333}},                       // rounded to the nearest raw step
		{"BIG", -1.5, 6, []uint16{0x0000, 0x0000, 0x0000, 0xF8BF}}, // bf f8 00.. little-endian
		{"NEG", -2, 10, []uint16{0xFFFF, 0xFEFF}},                  // ff ff ff fe, bytes swapped per word
	} {
		if err := write(d, w.tag, w.v); err != nil {
			t.Fatalf("write %s = %v: %v", w.tag, w.v, err)
		}
		for i, want := range w.want {
			if got, _ := srv.Holding(w.addr + uint16(i)); got != want {
				t.Errorf("%s = %v: register %d is %#04x, want %#04x", w.tag, w.v, w.addr+uint16(i), got, want)
			}
		}
	}
	for _, v := range []float64{1, 0, 1} {
		if err := write(d, "XV", v); err != nil {
			t.Fatalf("write XV = %v: %v", v, err)
		}
		if on, _ := srv.Coil(1); on != (v == 1) {
			t.Errorf("coil 1 is %v after writing %v", on, v)
		}
	}
	// what was written reads back through Poll in engineering units
	s := byTag(mustPoll(t, d))
	if s["SP"].Value != 12.5 || s["PCT"].Value != 33.33 || s["BIG"].Value != -1.5 || s["NEG"].Value != -2 || s["XV"].Value != 1 {
		t.Errorf("poll after writes: %+v", s)
	}
	if st := d.Stats(); st.Writes != 8 || st.Errors != 0 {
		t.Errorf("stats %+v, want 8 writes, no errors", st)
	}
}

func mustPoll(t *testing.T, d *TCPDriver) []model.Sample {
	t.Helper()
	s, err := poll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Nothing is sent for a write the config does not allow or that cannot be
// encoded.
func TestWriteRefusedBeforeSending(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.SetHolding(0, make([]uint16, 10)...)
	srv.SetInput(0, 0)
	ro := tag("RO", config.AreaHolding, 0, "uint16", "")
	in := writable(tag("IN", config.AreaInput, 0, "uint16", ""))
	bit := writable(tag("BIT", config.AreaHolding, 1, "bit", ""))
	rng := writable(tag("RNG", config.AreaHolding, 2, "float32", ""))
	rng.Range = &config.Range{Min: 0, Max: 10}
	i16 := writable(tag("I16", config.AreaHolding, 4, "int16", ""))
	coil := writable(tag("C", config.AreaCoil, 0, "bool", ""))
	d := newDriver(t, device(srv.Addr, time.Second, ro, in, bit, rng, i16, coil))
	cases := []struct {
		tag     string
		v       float64
		notW    bool
		message string
	}{
		{"RO", 1, true, "not writable"},
		{"IN", 1, true, "input"},
		{"BIT", 1, true, "other 15"},
		{"RNG", 10.5, false, "outside the range"},
		{"I16", 40000, false, "does not fit"},
		{"C", 2, false, "0 or 1"},
		{"RNG", nan(), false, "not a finite"},
		{"NOPE", 1, false, "no such tag"},
	}
	for _, c := range cases {
		err := write(d, c.tag, c.v)
		if err == nil || !strings.Contains(err.Error(), c.message) || errors.Is(err, ErrNotWritable) != c.notW {
			t.Errorf("write %s = %v: %v, want an error with %q (not writable: %v)", c.tag, c.v, err, c.message, c.notW)
		}
	}
	if n := srv.Requests(); n != 0 {
		t.Errorf("the device got %d requests, want none", n)
	}
}

// A device that acknowledges a write but then holds something else (a
// PLC program overriding the output) fails the read-back check.
func TestWriteReadBackMismatch(t *testing.T) {
	srv := modbustest.NewRawServer(t, func(c net.Conn, req modbustest.Request) error {
		switch req.Function {
		case gmb.FuncCodeWriteSingleRegister:
			_, err := c.Write(req.Frame(append([]byte{req.Function}, req.Data...))) // echo: accepted
			return err
		case gmb.FuncCodeReadHoldingRegisters:
			_, err := c.Write(req.Registers(7))
			return err
		}
		_, err := c.Write(req.Exception(1))
		return err
	})
	d := newDriver(t, device(srv.Addr, time.Second, writable(tag("SP", config.AreaHolding, 3, "uint16", ""))))
	err := write(d, "SP", 5)
	if !errors.Is(err, ErrReadBack) || !strings.Contains(err.Error(), "raw 7") {
		t.Fatalf("write: %v, want a read-back mismatch naming raw 7", err)
	}
}

// A write is sent once, never again, even when the connection breaks
// before the answer on a connection that was reused (where a read would be
// retried), and an exception answer is reported as such.
func TestWriteIsNeverRetried(t *testing.T) {
	var writes atomic.Int64
	srv := modbustest.NewRawServer(t, func(c net.Conn, req modbustest.Request) error {
		switch req.Function {
		case gmb.FuncCodeReadHoldingRegisters:
			_, err := c.Write(req.Registers(1))
			return err
		case gmb.FuncCodeWriteSingleRegister:
			if writes.Add(1) == 1 {
				return modbustest.ErrClose // acted on (maybe), answer lost
			}
			_, err := c.Write(req.Exception(4))
			return err
		}
		return modbustest.ErrClose
	})
	d := newDriver(t, device(srv.Addr, time.Second, writable(tag("SP", config.AreaHolding, 0, "uint16", ""))))
	mustPoll(t, d) // the connection is open and will be reused
	if err := write(d, "SP", 9); err == nil {
		t.Fatal("write on a connection closed by the device succeeded")
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("the device got %d write requests, want exactly 1", n)
	}
	err := write(d, "SP", 9)
	if err == nil || !strings.Contains(err.Error(), "exception 4") && !strings.Contains(err.Error(), "exception") {
		t.Fatalf("second write: %v, want the exception", err)
	}
	if n := writes.Load(); n != 2 {
		t.Fatalf("the device got %d write requests, want 2", n)
	}
	if st := d.Stats(); st.Writes != 2 || st.Exceptions != 1 {
		t.Errorf("stats %+v", st)
	}
}
