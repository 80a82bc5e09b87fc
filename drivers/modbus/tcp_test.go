package modbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

func device(addr string, timeout time.Duration, tags ...config.Tag) config.Device {
	return config.Device{
		Name: "plc-1", Protocol: config.ProtocolModbusTCP, Address: addr, UnitID: 1,
		Interval: config.Duration(time.Second), Timeout: config.Duration(timeout),
		MaxGap: 8, CommLossAfter: config.Duration(10 * time.Second), BackoffMax: config.Duration(30 * time.Second),
		Tags: tags,
	}
}

func tag(name, area string, addr int, typ, order string) config.Tag {
	if order == "" {
		order = "ABCD"
	}
	return config.Tag{Name: name, Kind: config.KindCount, Area: area, Address: &addr, Type: typ, Order: order}
}

func newDriver(t testing.TB, dev config.Device) *TCPDriver {
	t.Helper()
	d, err := NewTCP(dev, nil)
	if err != nil {
		t.Fatalf("NewTCP: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func poll(t testing.TB, d *TCPDriver) ([]model.Sample, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Poll(ctx)
}

func byTag(samples []model.Sample) map[string]model.Sample {
	m := make(map[string]model.Sample, len(samples))
	for _, s := range samples {
		m[s.Tag] = s
	}
	return m
}

// set stores v in the server's holding (or input) registers at addr in
// format f.
func set(t testing.TB, srv *modbustest.Server, area string, addr int, f Format, v float64) {
	t.Helper()
	b, err := f.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if area == config.AreaInput {
		srv.SetInput(uint16(addr), Words(b)...)
	} else {
		srv.SetHolding(uint16(addr), Words(b)...)
	}
}

// Every type and byte order decodes to the value the device holds, through
// the real driver and a real Modbus server.
func TestPollEveryTypeAndOrder(t *testing.T) {
	srv := modbustest.NewServer(t)
	values := map[string]float64{
		"int16": -32768, "uint16": 65535, "int32": -2, "uint32": 0x12345678,
		"float32": float64(float32(123.456)), "float64": 123.456,
	}
	var tags []config.Tag
	want := map[string]float64{}
	addr := 0
	for _, area := range []string{config.AreaHolding, config.AreaInput} {
		for _, typ := range []string{"int16", "uint16", "int32", "uint32", "float32", "float64"} {
			for _, order := range []string{"ABCD", "BADC", "CDAB", "DCBA"} {
				ty, _ := ParseType(typ)
				o, _ := ParseOrder(order)
				name := fmt.Sprintf("%s-%s-%s", area, typ, order)
				set(t, srv, area, addr, Format{Type: ty, Order: o}, values[typ])
				tags = append(tags, tag(name, area, addr, typ, order))
				want[name] = values[typ]
				addr += ty.Registers()
				// a one-register hole between tags, mapped: this device
				// answers exception 2 for unmapped registers
				set(t, srv, area, addr, Format{Type: Uint16}, 0xDEAD)
				addr++
			}
		}
	}
	// bits 0 and 15 of register 0x8001, and bit 1 (clear)
	srv.SetHolding(900, 0x8001)
	for _, b := range []int{0, 1, 15} {
		tg := tag(fmt.Sprintf("bit-%d", b), config.AreaHolding, 900, "bit", "")
		tg.Bit = b
		tags = append(tags, tg)
	}
	want["bit-0"], want["bit-1"], want["bit-15"] = 1, 0, 1
	// coils 0..10 and discrete inputs 100..102
	coils := []bool{true, false, true, true, false, false, false, false, false, false, true}
	srv.SetCoils(0, coils...)
	for i, c := range coils {
		name := fmt.Sprintf("coil-%d", i)
		tags = append(tags, tag(name, config.AreaCoil, i, "bool", ""))
		want[name] = map[bool]float64{false: 0, true: 1}[c]
	}
	srv.SetDiscrete(100, false, true, true)
	for i, v := range []float64{0, 1, 1} {
		name := fmt.Sprintf("di-%d", 100+i)
		tags = append(tags, tag(name, config.AreaDiscrete, 100+i, "", ""))
		want[name] = v
	}

	d := newDriver(t, device(srv.Addr, time.Second, tags...))
	before := time.Now().UTC()
	samples, err := poll(t, d)
	after := time.Now().UTC()
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if len(samples) != len(tags) {
		t.Fatalf("%d samples for %d tags", len(samples), len(tags))
	}
	for i, s := range samples {
		if s.Tag != tags[i].Name || s.Device != "plc-1" {
			t.Errorf("sample %d is %s/%s, want plc-1/%s", i, s.Device, s.Tag, tags[i].Name)
		}
		if s.Quality != model.Good || s.Reason != "" {
			t.Errorf("%s: quality %v reason %q", s.Tag, s.Quality, s.Reason)
		}
		if s.Value != want[s.Tag] {
			t.Errorf("%s = %v, want %v", s.Tag, s.Value, want[s.Tag])
		}
		if s.Time.Location() != time.UTC || s.Time.Before(before) || s.Time.After(after) {
			t.Errorf("%s: time %v not UTC within the poll %v..%v", s.Tag, s.Time, before, after)
		}
	}
	// 48 register tags with 1-register holes: holding and input need
	// ceil(~150/125) requests each; bits one each; coils and discrete one each.
	if n := len(d.Requests()); n != int(srv.Requests()) || n > 7 {
		t.Errorf("%d planned requests, server saw %d (want at most 7)", n, srv.Requests())
	}
	st := d.Stats()
	if st.Requests != uint64(srv.Requests()) || st.Errors != 0 || st.Reconnects != 0 {
		t.Errorf("stats %+v", st)
	}
}

// An exception answer marks only that request's tags bad; the others stay
// good and the connection is kept.
func TestPollExceptionMarksOnlyItsTags(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.SetHolding(0, 11, 12)
	srv.SetHolding(100, 13)
	srv.SetCoils(5, true)
	d := newDriver(t, device(srv.Addr, time.Second,
		tag("A", config.AreaHolding, 0, "uint16", ""),
		tag("B", config.AreaHolding, 1, "uint16", ""),
		tag("MISSING", config.AreaHolding, 50, "uint16", ""), // unmapped: exception 2
		tag("C", config.AreaHolding, 100, "uint16", ""),
		tag("COIL", config.AreaCoil, 5, "bool", ""),
		tag("NOCOIL", config.AreaCoil, 500, "bool", ""),
	))
	for round := range 3 {
		samples, err := poll(t, d)
		if err != nil {
			t.Fatalf("round %d: Poll returned %v; an exception is not a device failure", round, err)
		}
		got := byTag(samples)
		for name, v := range map[string]float64{"A": 11, "B": 12, "C": 13, "COIL": 1} {
			if s := got[name]; s.Quality != model.Good || s.Value != v {
				t.Errorf("round %d: %s = %v %v %q, want %v good", round, name, s.Value, s.Quality, s.Reason, v)
			}
		}
		for _, name := range []string{"MISSING", "NOCOIL"} {
			if s := got[name]; s.Quality != model.Bad || s.Reason != "exception: 2 (illegal data address)" {
				t.Errorf("round %d: %s = %v %q, want bad exception 2", round, name, s.Quality, s.Reason)
			}
		}
	}
	st := d.Stats()
	if st.Exceptions != 6 || st.Errors != 6 || st.Reconnects != 0 || st.Timeouts != 0 {
		t.Errorf("stats %+v: want 6 exceptions, no reconnects", st)
	}
	if !strings.Contains(st.LastError, "illegal data address") {
		t.Errorf("last error %q", st.LastError)
	}
}

// Scaling and the sensor-fault check are applied to decoded values, and a
// value that does not decode (NaN) marks only its own tag bad.
func TestPollScalesAndFlagsBadValues(t *testing.T) {
	srv := modbustest.NewServer(t)
	f32 := Format{Type: Float32}
	set(t, srv, config.AreaHolding, 0, f32, 12)                    // 12 mA
	set(t, srv, config.AreaHolding, 2, f32, 2.5)                   // broken loop
	set(t, srv, config.AreaHolding, 4, f32, math.NaN())            // not a number
	set(t, srv, config.AreaHolding, 6, Format{Type: Int16}, 13824) // S7 half scale
	level := tag("LT-101", config.AreaHolding, 0, "float32", "")
	level.Range, level.Scale = &config.Range{Min: 0, Max: 20}, &config.Scale{RawMin: 4, RawMax: 20}
	broken := tag("LT-102", config.AreaHolding, 2, "float32", "")
	broken.Range, broken.Scale = level.Range, level.Scale
	nan := tag("PT-201", config.AreaHolding, 4, "float32", "")
	s7 := tag("TT-301", config.AreaHolding, 6, "int16", "")
	s7.Range, s7.Scale = &config.Range{Min: 0, Max: 200}, &config.Scale{RawMin: 0, RawMax: 27648}

	d := newDriver(t, device(srv.Addr, time.Second, level, broken, nan, s7))
	samples, err := poll(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Requests()) != 1 {
		t.Fatalf("want one request, plan %+v", d.Requests())
	}
	want := []struct {
		value  float64
		q      model.Quality
		reason string
	}{
		{10, model.Good, ""},
		{-1.875, model.Bad, "sensor fault: signal below range (raw 2.500)"},
		{0, model.Bad, "decode error: not a finite number"},
		{100, model.Good, ""},
	}
	for i, w := range want {
		s := samples[i]
		if s.Value != w.value || s.Quality != w.q || s.Reason != w.reason {
			t.Errorf("%s = %v %v %q, want %v %v %q", s.Tag, s.Value, s.Quality, s.Reason, w.value, w.q, w.reason)
		}
	}
}

// A device that accepts and never answers: Poll gives up after one timeout
// (not one per request), marks everything bad "timeout" and fails.
func TestPollHungDevice(t *testing.T) {
	addr := modbustest.HangServer(t)
	const timeout = 200 * time.Millisecond
	d := newDriver(t, device(addr, timeout,
		tag("A", config.AreaHolding, 0, "uint16", ""),
		tag("B", config.AreaHolding, 1000, "uint16", ""),
		tag("C", config.AreaCoil, 0, "bool", ""),
	))
	start := time.Now()
	samples, err := poll(t, d)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Poll of a hung device returned no error")
	}
	if took < timeout || took > timeout+300*time.Millisecond {
		t.Errorf("Poll took %v, want about %v", took, timeout)
	}
	for _, s := range samples {
		if s.Quality != model.Bad || s.Reason != model.ReasonTimeout || s.Time.IsZero() {
			t.Errorf("%s: %v %q at %v, want bad timeout", s.Tag, s.Quality, s.Reason, s.Time)
		}
	}
	if st := d.Stats(); st.Timeouts != 1 || st.Requests != 1 {
		t.Errorf("stats %+v: want 1 request, 1 timeout", st)
	}
}

func TestPollConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens here now
	d := newDriver(t, device(addr, time.Second,
		tag("A", config.AreaHolding, 0, "uint16", ""),
		tag("B", config.AreaInput, 0, "uint16", ""),
	))
	samples, err := poll(t, d)
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range samples {
		if s.Quality != model.Bad || s.Reason != model.ReasonConnRefused {
			t.Errorf("%s: %v %q, want bad %q", s.Tag, s.Quality, s.Reason, model.ReasonConnRefused)
		}
	}
}

// The driver reconnects by itself when the device comes back.
func TestPollRecoversAfterServerRestart(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.SetHolding(0, 42)
	dev := device(srv.Addr, 300*time.Millisecond, tag("A", config.AreaHolding, 0, "uint16", ""))
	d := newDriver(t, dev)
	if s, err := poll(t, d); err != nil || s[0].Value != 42 {
		t.Fatalf("first poll: %v %v", s, err)
	}
	srv.Stop()
	s, err := poll(t, d)
	if err == nil || s[0].Quality != model.Bad {
		t.Fatalf("poll of a stopped server: %+v %v", s, err)
	}
	if !strings.HasPrefix(s[0].Reason, model.ReasonConnection) && s[0].Reason != model.ReasonConnRefused {
		t.Errorf("reason %q", s[0].Reason)
	}
	// a new server on the same address (the device rebooted)
	srv2 := restartOn(t, srv.Addr)
	srv2.SetHolding(0, 43)
	if s, err := poll(t, d); err != nil || s[0].Value != 43 || s[0].Quality != model.Good {
		t.Fatalf("after restart: %+v %v", s, err)
	}
	if st := d.Stats(); st.Reconnects != 1 {
		t.Errorf("reconnects %d, want 1", st.Reconnects)
	}
}

// restartOn serves registers on a fixed address through a raw server (the
// simonvetter server picks its own port).
func restartOn(t *testing.T, addr string) *regServer {
	t.Helper()
	var l net.Listener
	var err error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	l.Close()
	r := &regServer{regs: map[uint16]uint16{}}
	modbustest.NewRawServerOn(t, addr, r.handle)
	return r
}

type regServer struct {
	mu   sync.Mutex
	regs map[uint16]uint16
}

func (r *regServer) SetHolding(addr uint16, v ...uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range v {
		r.regs[addr+uint16(i)] = x
	}
}

func (r *regServer) handle(c net.Conn, req modbustest.Request) error {
	r.mu.Lock()
	vals := make([]uint16, req.Quantity())
	for i := range vals {
		vals[i] = r.regs[req.Address()+uint16(i)]
	}
	r.mu.Unlock()
	_, err := c.Write(req.Registers(vals...))
	return err
}

// Poll starts no request once ctx is done, and a cancelled context aborts
// a request in flight well before the device timeout.
func TestPollHonoursContext(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.SetHolding(0, 1)
	d := newDriver(t, device(srv.Addr, time.Second, tag("A", config.AreaHolding, 0, "uint16", "")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	samples, err := d.Poll(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if samples[0].Quality != model.Bad || samples[0].Reason != model.ReasonNotPolled {
		t.Errorf("sample %+v, want bad not polled", samples[0])
	}
	if srv.Requests() != 0 {
		t.Errorf("server saw %d requests after cancel", srv.Requests())
	}

	hung := newDriver(t, device(modbustest.HangServer(t), 5*time.Second,
		tag("A", config.AreaHolding, 0, "uint16", ""), tag("B", config.AreaHolding, 500, "uint16", "")))
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	samples, err = hung.Poll(ctx)
	if took := time.Since(start); took > time.Second {
		t.Errorf("cancelled Poll took %v", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	for _, s := range samples {
		if s.Quality != model.Bad || s.Reason != model.ReasonNotPolled {
			t.Errorf("%s: %v %q, want not polled", s.Tag, s.Quality, s.Reason)
		}
	}
	// a context deadline shorter than the device timeout bounds the poll too
	ctx, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	start = time.Now()
	if _, err := hung.Poll(ctx); err == nil || time.Since(start) > 2*time.Second { // far below the 5 s device timeout
		t.Errorf("Poll with 150ms deadline: %v after %v", err, time.Since(start))
	}
}

// Close drops the connection; the next Poll reconnects. Polls, Stats and
// Close may run concurrently.
func TestCloseAndConcurrentUse(t *testing.T) {
	srv := modbustest.NewServer(t)
	srv.SetHolding(0, 7)
	d := newDriver(t, device(srv.Addr, time.Second, tag("A", config.AreaHolding, 0, "uint16", "")))
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for g := range 3 {
		wg.Go(func() {
			for i := range 20 {
				s, err := poll(t, d)
				switch {
				case err != nil:
					errs <- err
				case s[0].Value != 7:
					errs <- fmt.Errorf("value %v", s[0].Value)
				}
				if g == 0 && i%5 == 0 {
					d.Close()
				}
				_ = d.Stats()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := d.Stats(); st.Requests != 60 || st.Reconnects < 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestNewTCPRejects(t *testing.T) {
	bit := tag("B", config.AreaHolding, 0, "bit", "")
	bit.Bit = 16
	cases := map[string]config.Tag{
		"float in coil area":   tag("X", config.AreaCoil, 0, "float32", ""),
		"bool in holding area": tag("X", config.AreaHolding, 0, "bool", ""),
		"bit 16":               bit,
		"unknown type":         tag("X", config.AreaHolding, 0, "float16", ""),
		"unknown order":        tag("X", config.AreaHolding, 0, "float32", "ABDC"),
		"unknown area":         tag("X", "memory", 0, "uint16", ""),
		"float32 at 65535":     tag("X", config.AreaInput, 65535, "float32", ""),
		"negative address":     tag("X", config.AreaInput, -1, "uint16", ""),
		"no address":           {Name: "X", Area: config.AreaHolding, Type: "uint16"},
	}
	for name, tg := range cases {
		if _, err := NewTCP(device("127.0.0.1:1", time.Second, tg), nil); err == nil {
			t.Errorf("%s: NewTCP accepted it", name)
		}
	}
	ok := tag("X", config.AreaInput, 65534, "float32", "")
	if _, err := NewTCP(device("127.0.0.1:1", time.Second, ok), nil); err != nil {
		t.Errorf("float32 at 65534: %v", err)
	}
}
