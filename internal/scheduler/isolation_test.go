package scheduler

import (
	"context"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	smb "github.com/simonvetter/modbus"

	"hazgate/drivers/modbus"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// tankServer is a real Modbus TCP server (simonvetter/modbus) that answers
// holding register reads and notes when each request arrived: the device's
// own view of the poll schedule.
type tankServer struct {
	mu       sync.Mutex
	requests []time.Time
}

func (h *tankServer) HandleCoils(*smb.CoilsRequest) ([]bool, error) {
	return nil, smb.ErrIllegalFunction
}
func (h *tankServer) HandleDiscreteInputs(*smb.DiscreteInputsRequest) ([]bool, error) {
	return nil, smb.ErrIllegalFunction
}
func (h *tankServer) HandleInputRegisters(*smb.InputRegistersRequest) ([]uint16, error) {
	return nil, smb.ErrIllegalFunction
}
func (h *tankServer) HandleHoldingRegisters(req *smb.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		return nil, smb.ErrIllegalFunction
	}
	h.mu.Lock()
	h.requests = append(h.requests, time.Now())
	h.mu.Unlock()
	out := make([]uint16, req.Quantity)
	for i := range out {
		out[i] = 1234 + uint16(req.Addr) + uint16(i)
	}
	return out, nil
}

func (h *tankServer) times() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.requests...)
}

// startTankServer starts the server on a free 127.0.0.1 port. The library
// does not expose its listener, so the port is found first and retried if
// another process takes it in between.
func startTankServer(t *testing.T, h *tankServer) string {
	t.Helper()
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		srv, err := smb.NewServer(&smb.ServerConfiguration{
			URL: "tcp://" + addr, Timeout: 30 * time.Second, MaxClients: 4,
			Logger: log.New(io.Discard, "", 0),
		}, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			continue
		}
		t.Cleanup(func() { srv.Stop() })
		return addr
	}
	t.Fatal("no free port for the Modbus server")
	return ""
}

// silentDevice accepts connections and never answers: a device whose
// firmware hung with its TCP stack still up. It keeps the first bytes of
// every connection so the test can check a real request went out.
type silentDevice struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	frames [][]byte
	wg     sync.WaitGroup
}

func startSilentDevice(t *testing.T) *silentDevice {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &silentDevice{ln: ln}
	d.wg.Add(1)
	go d.accept()
	t.Cleanup(d.stop)
	return d
}

func (d *silentDevice) accept() {
	defer d.wg.Done()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			buf := make([]byte, 12)
			if _, err := io.ReadFull(c, buf); err == nil {
				d.mu.Lock()
				d.frames = append(d.frames, buf)
				d.mu.Unlock()
			}
			io.Copy(io.Discard, c) // swallow everything, answer nothing
		}()
	}
}

func (d *silentDevice) stop() {
	d.ln.Close()
	d.mu.Lock()
	for _, c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *silentDevice) firstFrames() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.frames...)
}

// sharedSink is one pipeline for both devices, as in the gateway.
type sharedSink struct {
	mu       sync.Mutex
	byDevice map[string][]model.Sample
}

func (s *sharedSink) Submit(_ context.Context, samples []model.Sample) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, smp := range samples {
		s.byDevice[smp.Device] = append(s.byDevice[smp.Device], smp)
	}
	return nil
}

func (s *sharedSink) of(device string) []model.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]model.Sample(nil), s.byDevice[device]...)
}

func modbusDevice(name, addr string, interval, timeout time.Duration, tags ...string) config.Device {
	dev := config.Device{
		Name: name, Protocol: config.ProtocolModbusTCP, Address: addr, UnitID: 1,
		Interval: config.Duration(interval), Timeout: config.Duration(timeout), MaxGap: 8,
		CommLossAfter: config.Duration(time.Second), BackoffMax: config.Duration(4 * interval),
	}
	for i, tag := range tags {
		a := i
		dev.Tags = append(dev.Tags, config.Tag{Name: tag, Kind: config.KindLevel, Unit: "m",
			Area: config.AreaHolding, Address: &a, Type: config.TypeUint16})
	}
	return dev
}

// TestIsolationRealSockets: a device that accepts the connection and never
// answers must not disturb the schedule of another device, and its tags must
// be reported bad rather than going silent.
func TestIsolationRealSockets(t *testing.T) {
	retryTiming(t, func(timing *attempt) {
		// Long enough that a loaded 2-core test machine's scheduling hiccups
		// stay well inside 10%; the silent device's timeout is most of an
		// interval, so a loop that waited for it would visibly fall behind.
		const interval = 200 * time.Millisecond
		const timeout = 150 * time.Millisecond
		tank := &tankServer{}
		tankAddr := startTankServer(t, tank)
		silent := startSilentDevice(t)

		tankDev := modbusDevice("TANK", tankAddr, interval, timeout, "LT-101", "LT-102")
		gasDev := modbusDevice("GAS", silent.ln.Addr().String(), interval, timeout, "GT-201", "GT-202")
		tankDrv, err := modbus.NewTCP(tankDev, nil)
		if err != nil {
			timing.Fatal(err)
		}
		gasDrv, err := modbus.NewTCP(gasDev, nil)
		if err != nil {
			timing.Fatal(err)
		}
		sink := &sharedSink{byDevice: map[string][]model.Sample{}}
		tankLoop := New(tankDrv, tankDev, sink, Options{})
		gasLoop := New(gasDrv, gasDev, sink, Options{})
		runFor(t, 3*time.Second, tankLoop, gasLoop)

		// The good device, as it saw it: 15 requests, each on its tick.
		reqs := tank.times()
		if n := len(reqs); n < 14 || n > 16 {
			timing.Fatalf("tank device got %d requests in 3s at %v, want 15±10%%; loop stats %+v", n, interval, tankLoop.Stats())
		}
		offs := scheduleOffsets(reqs, interval)
		for k, off := range offs {
			if off > interval/10 {
				timing.Errorf("tank request %d arrived %v late on its tick (more than 10%% of %v)", k, off, interval)
			}
		}
		timing.Logf("tank: %d requests, offsets from the schedule %v", len(reqs), offs)
		for _, s := range sink.of("TANK") {
			if s.Quality != model.Good {
				timing.Fatalf("tank sample %+v, want good", s)
			}
			if (s.Tag == "LT-101" && s.Value != 1234) || (s.Tag == "LT-102" && s.Value != 1235) {
				timing.Fatalf("tank sample %+v has the wrong value", s)
			}
		}
		if st := tankLoop.Stats(); st.TotalFailures != 0 || st.Overruns != 0 {
			timing.Errorf("tank loop stats %+v", st)
		}

		// The silent device got real requests: read holding registers 0, 2.
		frames := silent.firstFrames()
		if len(frames) == 0 {
			timing.Fatal("the silent device never received a request")
		}
		wantPDU := []byte{0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x02} // protocol 0, length 6, unit 1, fc 3, addr 0, qty 2
		if f := frames[0]; string(f[2:]) != string(wantPDU) {
			timing.Errorf("request to the silent device % x, want ?? ?? % x", f, wantPDU)
		}

		// Its tags are bad all along, with a reason, roughly once per tick.
		gas := sink.of("GAS")
		if len(gas) < 2*12 {
			timing.Errorf("silent device has %d samples in 3s, want about 2 per tick", len(gas))
		}
		reasons := map[string]int{}
		for _, s := range gas {
			if s.Quality != model.Bad {
				timing.Fatalf("silent device sample %+v, want bad", s)
			}
			switch {
			case s.Reason == model.ReasonTimeout:
				reasons["timeout"]++
			case strings.HasPrefix(s.Reason, model.ReasonDeviceDown+": "):
				reasons["device down"]++
			default:
				timing.Fatalf("silent device sample reason %q, want timeout or device down", s.Reason)
			}
		}
		if reasons["timeout"] == 0 || reasons["device down"] == 0 {
			timing.Errorf("reasons seen %v: want both the polls' timeouts and back-off's device down", reasons)
		}
		st := gasLoop.Stats()
		if st.TotalFailures < 3 || !st.LastGoodPoll.IsZero() || st.BackoffTicks == 0 {
			timing.Errorf("silent device loop stats %+v", st)
		}
	})
}
