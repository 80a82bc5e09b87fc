// Package sim is a simulated tank farm served over Modbus TCP: two tanks
// with level, temperature and pressure, three combustible gas detectors, a
// high-level switch and an inlet valve, following a script of incidents
// (overfill, gas leak, broken sensor wire) that repeats every Period. It
// stands in for the plant's PLC in `hazgate demo` and in tests; its
// register map is in README.md.
package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/simonvetter/modbus"
)

// PlantOptions configure a Plant. The zero value is a plant that follows
// no script (steady normal values with noise) on the wall clock.
type PlantOptions struct {
	// Script runs the incident script; false keeps every value normal
	// (with noise), for load tests.
	Script bool
	// Clock returns the current time; nil means time.Now. Tests pass a
	// fake one to pick the moment of the script.
	Clock func() time.Time
	// UnitID is the only unit id answered (default 1); requests to other
	// ids get exception 0x0B, as from a Modbus gateway whose target is
	// missing.
	UnitID uint8
	// Logger receives the Modbus server's messages at debug level; nil
	// discards them.
	Logger *slog.Logger
}

// updateEvery is how often the register image follows the script.
const updateEvery = 100 * time.Millisecond

// Plant is a simulated tank farm. Its methods are safe for concurrent use.
type Plant struct {
	opts PlantOptions
	log  *slog.Logger

	mu        sync.Mutex
	started   time.Time          // script time zero
	overrides map[string]float64 // values fixed by Set or by a master writing a coil
	img       image
	srv       *modbus.ModbusServer
	addr      string
	stop      chan struct{}
	done      chan struct{}
}

// NewPlant returns a plant that is not yet serving; call Start.
func NewPlant(opts PlantOptions) *Plant {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.UnitID == 0 {
		opts.UnitID = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Plant{opts: opts, log: log, overrides: make(map[string]float64)}
	p.started = opts.Clock()
	p.refreshLocked()
	return p
}

// Start serves Modbus TCP on addr (host:port, e.g. 127.0.0.1:15020; port 0
// picks a free port, see Addr) and starts the script clock.
func (p *Plant) Start(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("sim: listen address %q: %w", addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return errors.New("sim: plant already started")
	}
	// simonvetter's server does not expose its listener, so for port 0 we
	// find a free port first and bind it again; another process may take
	// it in between, hence the retries.
	attempts := 1
	if port == "0" {
		attempts = 10
	}
	for i := 0; ; i++ {
		listen := addr
		if port == "0" {
			free, err := freePort(host)
			if err != nil {
				return err
			}
			listen = net.JoinHostPort(host, strconv.Itoa(free))
		}
		srv, err := modbus.NewServer(&modbus.ServerConfiguration{
			URL:        "tcp://" + listen,
			Timeout:    5 * time.Minute, // idle sessions; the gateway polls far more often
			MaxClients: 16,
			Logger:     slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		}, handler{p})
		if err != nil {
			return fmt.Errorf("sim: modbus server on %s: %w", listen, err)
		}
		err = srv.Start()
		if err == nil {
			p.srv, p.addr = srv, listen
			break
		}
		if i+1 >= attempts || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("sim: listen on %s: %w", listen, err)
		}
	}
	p.started = p.opts.Clock()
	p.refreshLocked()
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.follow(p.stop, p.done)
	p.log.Info("simulated tank farm serving Modbus TCP", "addr", p.addr, "script", p.opts.Script)
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("sim: find a free port on %s: %w", host, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port, nil
}

// Addr is the address the plant serves on, with the real port; empty
// before Start.
func (p *Plant) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Close stops serving and disconnects every master. It is safe to call
// twice and before Start.
func (p *Plant) Close() error {
	p.mu.Lock()
	srv, stop, done := p.srv, p.stop, p.done
	p.srv, p.stop, p.done = nil, nil, nil
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	close(stop)
	<-done
	if err := srv.Stop(); err != nil {
		return fmt.Errorf("sim: stop modbus server: %w", err)
	}
	return nil
}

// Set fixes a tag at v (in the units of Values) until Release, overriding
// the script. The register image changes at once.
func (p *Plant) Set(tag string, v float64) error {
	if _, ok := pointOf(tag); !ok {
		return fmt.Errorf("sim: no tag %q in the plant", tag)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.overrides[tag] = v
	p.refreshLocked()
	return nil
}

// Release returns a tag fixed by Set (or by a coil write) to the script.
func (p *Plant) Release(tag string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.overrides, tag)
	p.refreshLocked()
}

// Now returns the values the plant serves at this moment.
func (p *Plant) Now() Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.currentLocked()
}

// follow keeps the register image on the script until stop is closed.
func (p *Plant) follow(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(updateEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			p.mu.Lock()
			p.refreshLocked()
			p.mu.Unlock()
		}
	}
}

func (p *Plant) currentLocked() Values {
	v := p.valuesAt(p.opts.Clock().Sub(p.started))
	for tag, x := range p.overrides {
		v[tag] = x
	}
	return v
}

// refreshLocked writes the current values into the register image.
func (p *Plant) refreshLocked() {
	v := p.currentLocked()
	for _, pt := range registerMap {
		p.img.put(pt, v[pt.Tag])
	}
}

// handler answers the Modbus server's requests from the register image.
// It is a separate type so that Plant's API does not carry the
// server's callback methods.
type handler struct{ p *Plant }

func (h handler) unit(id uint8) error {
	if id != h.p.opts.UnitID {
		return modbus.ErrGWTargetFailedToRespond
	}
	return nil
}

// span checks that addr..addr+qty-1 lies inside an area of size n.
func span(addr, qty uint16, n int) error {
	if int(addr)+int(qty) > n {
		return modbus.ErrIllegalDataAddress
	}
	return nil
}

func (h handler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	if err := span(req.Addr, req.Quantity, imageBits); err != nil {
		return nil, err
	}
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if req.IsWrite {
		// Only the inlet valve is an output; the write holds until
		// Release, as a PLC keeps a commanded valve position.
		for i, on := range req.Args {
			a := req.Addr + uint16(i)
			if a != 0 {
				return nil, modbus.ErrIllegalDataAddress
			}
			h.p.overrides[XV101] = b2f(on)
		}
		h.p.refreshLocked()
		return nil, nil
	}
	return append([]bool(nil), h.p.img.coils[req.Addr:req.Addr+req.Quantity]...), nil
}

func (h handler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	if err := span(req.Addr, req.Quantity, imageBits); err != nil {
		return nil, err
	}
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return append([]bool(nil), h.p.img.discrete[req.Addr:req.Addr+req.Quantity]...), nil
}

func (h handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	if err := span(req.Addr, req.Quantity, imageRegisters); err != nil {
		return nil, err
	}
	if req.IsWrite {
		// Measurements are read-only, as on a real PLC's input image.
		return nil, modbus.ErrIllegalDataAddress
	}
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return append([]uint16(nil), h.p.img.holding[req.Addr:req.Addr+req.Quantity]...), nil
}

func (h handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	if err := span(req.Addr, req.Quantity, imageRegisters); err != nil {
		return nil, err
	}
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	return append([]uint16(nil), h.p.img.input[req.Addr:req.Addr+req.Quantity]...), nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
