package modbus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/drivers/modbus/rtuframe"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

func rtuDevice(name, addr string, unit int, timeout time.Duration, tags ...config.Tag) config.Device {
	d := device(addr, timeout, tags...)
	d.Name, d.Protocol, d.UnitID = name, config.ProtocolModbusRTUTCP, unit
	return d
}

func newRTU(t testing.TB, buses *Buses, dev config.Device) *RTUDriver {
	t.Helper()
	bus, err := buses.For(dev)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewRTU(dev, bus, nil)
	if err != nil {
		t.Fatalf("NewRTU: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func pollRTU(t testing.TB, d *RTUDriver) ([]model.Sample, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Poll(ctx)
}

// typedTags are a tag of every register type and order, with the value
// each holds, set in a slave.
func typedTags(t *testing.T, slave *modbustest.Server, prefix string, base int) ([]config.Tag, map[string]float64) {
	t.Helper()
	values := map[string]float64{}
	var tags []config.Tag
	addr := base
	for _, c := range []struct {
		typ, order string
		v          float64
	}{
		{"int16", "ABCD", -1234}, {"uint16", "BADC", 4321}, {"int32", "CDAB", -70000},
		{"uint32", "DCBA", 3000000000}, {"float32", "CDAB", 18.625}, {"float32", "ABCD", -0.5},
		{"float64", "BADC", 101.325}, {"float64", "DCBA", 1e-3},
	} {
		tg := tag(prefix+"-"+c.typ+"-"+c.order, config.AreaHolding, addr, c.typ, c.order)
		typ, _ := ParseType(c.typ)
		ord, _ := ParseOrder(c.order)
		b, err := Format{Type: typ, Order: ord}.Encode(c.v)
		if err != nil {
			t.Fatal(err)
		}
		slave.SetHolding(uint16(addr), Words(b)...)
		values[tg.Name] = c.v
		tags = append(tags, tg)
		addr += typ.Registers()
	}
	slave.SetCoils(0, true, false, true)
	c := tag(prefix+"-coil", config.AreaCoil, 2, "bool", "")
	c.Order = ""
	values[c.Name] = 1
	return append(tags, c), values
}

// Two slaves on one line behind a converter share one bus; each reads its
// own registers with every type and order.
func TestRTUOverTCPTwoSlaves(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1, 2)
	tags1, want1 := typedTags(t, srv.Slave(1), "S1", 0)
	tags2, want2 := typedTags(t, srv.Slave(2), "S2", 100)
	buses := NewBuses(nil)
	d1 := newRTU(t, buses, rtuDevice("gas-1", srv.Addr, 1, time.Second, tags1...))
	d2 := newRTU(t, buses, rtuDevice("gas-2", srv.Addr, 2, time.Second, tags2...))
	if d1.Bus() != d2.Bus() || len(buses.All()) != 1 {
		t.Fatalf("two devices on %s got two buses", srv.Addr)
	}
	for round := range 3 {
		var wg sync.WaitGroup
		for _, c := range []struct {
			d    *RTUDriver
			want map[string]float64
		}{{d1, want1}, {d2, want2}} {
			wg.Go(func() {
				s, err := pollRTU(t, c.d)
				if err != nil {
					t.Errorf("round %d %s: %v", round, c.d.Name(), err)
					return
				}
				for _, smp := range s {
					if smp.Quality != model.Good || smp.Value != c.want[smp.Tag] {
						t.Errorf("round %d %s: %+v, want %v", round, smp.Tag, smp, c.want[smp.Tag])
					}
				}
			})
		}
		wg.Wait()
	}
	if st := d1.Bus().Stats(); st.Requests != 12 || st.Errors != 0 {
		t.Errorf("bus stats %+v, want 12 requests (2 devices x 2 reads x 3 rounds), no errors", st)
	}
}

// A slave that stops answering costs the others nothing but its own
// timeout per cycle: the live slave keeps reading every cycle, the dead
// one is tried once per poll (not once per planned request), and the line
// is not reset for it.
func TestRTUDeadSlaveDoesNotStopTheOther(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1, 2)
	srv.Slave(1).SetHolding(0, 11, 12)
	srv.Slave(2).SetHolding(0, 21)
	srv.Slave(2).SetHolding(50, 22)
	srv.Slave(2).SetInput(0, 23)
	buses := NewBuses(nil)
	live := newRTU(t, buses, rtuDevice("live", srv.Addr, 1, 2*time.Second,
		tag("L1", config.AreaHolding, 0, "uint16", ""), tag("L2", config.AreaHolding, 1, "uint16", "")))
	dead := rtuDevice("dead", srv.Addr, 2, 500*time.Millisecond,
		tag("D1", config.AreaHolding, 0, "uint16", ""), tag("D2", config.AreaHolding, 50+MaxRegisters, "uint16", ""),
		tag("D3", config.AreaInput, 0, "uint16", ""))
	dead.MaxGap = 0
	deadDrv := newRTU(t, buses, dead)
	if n := len(deadDrv.Requests()); n != 3 {
		t.Fatalf("dead device plans %d reads, want 3", n)
	}
	srv.SetMute(2, true)

	const cycles = 4
	for c := range cycles {
		var wg sync.WaitGroup
		wg.Go(func() {
			s, err := pollRTU(t, deadDrv)
			if err == nil {
				t.Errorf("cycle %d: the muted slave's poll succeeded", c)
			}
			for _, smp := range s {
				if smp.Quality != model.Bad || smp.Reason != model.ReasonTimeout {
					t.Errorf("cycle %d: %s %v %q, want bad timeout", c, smp.Tag, smp.Quality, smp.Reason)
				}
			}
		})
		wg.Go(func() {
			s, err := pollRTU(t, live)
			if err != nil || s[0].Value != 11 || s[1].Value != 12 {
				t.Errorf("cycle %d: live slave: %+v %v", c, s, err)
			}
		})
		wg.Wait()
	}
	if n := srv.Requests(2); n != cycles {
		t.Errorf("the dead slave was asked %d times in %d cycles, want once a cycle", n, cycles)
	}
	if st := deadDrv.Stats(); st.Timeouts != cycles {
		t.Errorf("dead device stats %+v, want %d timeouts", st, cycles)
	}
	// it comes back by itself, on the same line
	srv.SetMute(2, false)
	s, err := pollRTU(t, deadDrv)
	if err != nil || s[0].Value != 21 || s[2].Value != 23 || s[1].Reason != "exception: 2 (illegal data address)" {
		t.Fatalf("after unmute: %+v %v", s, err)
	}
	if st := deadDrv.Bus().Stats(); st.Reconnects != 0 {
		t.Errorf("bus reconnected %d times for a dead slave; the line must not be reset", st.Reconnects)
	}
}

// A garbled answer (bad CRC) marks that read bad with the reason, counts
// as a CRC error on the device and the bus, and the next poll is good.
func TestRTUCRCError(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 7)
	srv.Slave(7).SetHolding(0, 77)
	d := newRTU(t, NewBuses(nil), rtuDevice("d", srv.Addr, 7, time.Second, tag("A", config.AreaHolding, 0, "uint16", "")))
	srv.CorruptNext(7, 1)
	s, err := pollRTU(t, d)
	if err == nil || s[0].Quality != model.Bad || !strings.Contains(s[0].Reason, "crc mismatch") {
		t.Fatalf("garbled answer: %+v %v", s, err)
	}
	if !errors.Is(err, rtuframe.ErrCRC) {
		t.Errorf("poll error %v does not wrap ErrCRC", err)
	}
	s, err = pollRTU(t, d)
	if err != nil || s[0].Value != 77 {
		t.Fatalf("next poll: %+v %v", s, err)
	}
	if st := d.Stats(); st.CRCErrors != 1 || st.Requests != 2 {
		t.Errorf("device stats %+v", st)
	}
	if st := d.Bus().Stats(); st.CRCErrors != 1 || st.LastRoundTrip <= 0 {
		t.Errorf("bus stats %+v", st)
	}
}

// Writes go over the bus to the right slave with read-back.
func TestRTUWrite(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1, 2)
	srv.Slave(2).SetHolding(0, 0, 0)
	srv.Slave(2).SetCoils(5, false)
	srv.Slave(1).SetHolding(0, 0, 0)
	sp := writable(tag("SP", config.AreaHolding, 0, "float32", "CDAB"))
	xv := writable(tag("XV", config.AreaCoil, 5, "bool", ""))
	d := newRTU(t, NewBuses(nil), rtuDevice("d", srv.Addr, 2, time.Second, sp, xv))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Write(ctx, "SP", 18.625); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx, "XV", 1); err != nil {
		t.Fatal(err)
	}
	lo, _ := srv.Slave(2).Holding(0)
	hi, _ := srv.Slave(2).Holding(1)
	on, _ := srv.Slave(2).Coil(5)
	other, _ := srv.Slave(1).Holding(1)
	if lo != 0x0000 || hi != 0x4195 || !on || other != 0 {
		t.Errorf("slave 2 holds %#04x %#04x coil %v; slave 1 %#04x", lo, hi, on, other)
	}
}

// The bus keeps the silent interval between frames: at 1200 baud 8E1,
// 3.5 characters are 32 ms, so 10 requests take at least 9 silences.
func TestRTUSilenceBetweenFrames(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1)
	srv.Slave(1).SetHolding(0, 1)
	line := &config.Serial{Baud: 1200, DataBits: 8, Parity: "E", StopBits: 1}
	if got := line.Silence(); got < 32*time.Millisecond || got > 33*time.Millisecond {
		t.Fatalf("silence at 1200 baud 8E1 = %v, want 32.08ms", got)
	}
	if got := (config.Serial{Baud: 38400, DataBits: 8, Parity: "N", StopBits: 1}).Silence(); got != 1750*time.Microsecond {
		t.Fatalf("silence above 19200 baud = %v, want 1.75ms", got)
	}
	dev := rtuDevice("d", srv.Addr, 1, time.Second, tag("A", config.AreaHolding, 0, "uint16", ""))
	dev.Serial = line
	d := newRTU(t, NewBuses(nil), dev)
	start := time.Now()
	for range 10 {
		if _, err := pollRTU(t, d); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 9*line.Silence() {
		t.Errorf("10 requests in %v: less than 9 silent intervals of %v", el, line.Silence())
	}
}

// Closing one device keeps the bus working for the others; closing the
// last stops the owner, and a later poll starts it again.
func TestRTUBusLifecycle(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1, 2)
	srv.Slave(1).SetHolding(0, 1)
	srv.Slave(2).SetHolding(0, 2)
	buses := NewBuses(nil)
	d1 := newRTU(t, buses, rtuDevice("a", srv.Addr, 1, time.Second, tag("A", config.AreaHolding, 0, "uint16", "")))
	d2 := newRTU(t, buses, rtuDevice("b", srv.Addr, 2, time.Second, tag("B", config.AreaHolding, 0, "uint16", "")))
	for i := range 3 {
		if _, err := pollRTU(t, d1); err != nil {
			t.Fatal(i, err)
		}
		if _, err := pollRTU(t, d2); err != nil {
			t.Fatal(i, err)
		}
		if err := d1.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err := pollRTU(t, d2); err != nil || s[0].Value != 2 {
			t.Fatalf("after closing the other device: %+v %v", s, err)
		}
		d2.Close()
	}
	// a cancelled context ends a poll waiting for the bus at once
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := d1.Poll(ctx); err == nil || s[0].Reason != model.ReasonNotPolled {
		t.Errorf("cancelled poll: %+v %v", s, err)
	}
}

// A converter that closes its TCP connection after every answer (an idle
// timeout) costs no read: the bus retries a read once on a new connection.
// A write is not retried.
func TestRTUOverTCPConverterHangsUp(t *testing.T) {
	srv := modbustest.NewRTUServer(t, 1)
	srv.Slave(1).SetHolding(0, 9, 0)
	srv.SetHangUp(true)
	d := newRTU(t, NewBuses(nil), rtuDevice("d", srv.Addr, 1, time.Second,
		tag("A", config.AreaHolding, 0, "uint16", ""), writable(tag("W", config.AreaHolding, 1, "uint16", ""))))
	for i := range 4 {
		time.Sleep(20 * time.Millisecond) // let the close arrive
		s, err := pollRTU(t, d)
		if err != nil || s[0].Value != 9 {
			t.Fatalf("poll %d: %+v %v", i, s, err)
		}
	}
	if n := srv.Connections(); n != 4 {
		t.Errorf("%d connections, want 4 (one per poll)", n)
	}
	time.Sleep(20 * time.Millisecond)
	before := srv.Requests(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Write(ctx, "W", 5); err == nil {
		t.Fatal("a write on a connection the converter closed succeeded")
	}
	if n := srv.Requests(1) - before; n != 0 {
		t.Errorf("the slave got %d requests for a write that found the connection closed, want 0 (never resent)", n)
	}
}
