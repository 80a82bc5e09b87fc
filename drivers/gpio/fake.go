package gpio

import (
	"errors"
	"fmt"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"

	"hazgate/internal/config"
)

// Fake is a bank of in-memory GPIO lines, the backend "fake": tests and the
// demo set its inputs (a contact closing) and read its outputs (the beacon
// on), and can make a line fail. Lines are made on first use, by the driver
// or by the program, so an input can be set before the gateway starts.
//
// periph's own gpiotest.Pin is not used: its In() overwrites the level with
// the bias, so an input set by a test would change when the driver
// configures it, and it cannot fail a read.
type Fake struct {
	mu   sync.Mutex
	pins map[string]*FakePin
}

// NewFake returns an empty bank.
func NewFake() *Fake { return &Fake{pins: map[string]*FakePin{}} }

// Pin returns the line named name (GPIO17 or gpiochip0/17, as in the
// config), making it if needed.
func (f *Fake) Pin(name string) *FakePin {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pins[name]
	if p == nil {
		p = &FakePin{name: name, num: len(f.pins)}
		f.pins[name] = p
	}
	return p
}

// Open implements Opener.
func (f *Fake) Open(p config.GPIOPin) (pgpio.PinIO, error) {
	fp := f.Pin(p.String())
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.openErr != nil {
		return nil, fp.openErr
	}
	return fp, nil
}

// FakePin is one in-memory line. It implements periph's gpio.PinIO, so
// the driver uses it exactly as it uses a real line.
//
// An input reads what the outside drives (Set), or its bias when nothing
// does (Float), like a dry contact between the line and ground with a
// pull-up: open reads high, closed reads low. An output reads what was
// last written, unless it is stuck.
type FakePin struct {
	name string
	num  int

	mu      sync.Mutex
	dir     string // "" until configured, then config.GPIOIn or config.GPIOOut
	pull    pgpio.Pull
	driven  bool        // an input driven from outside (Set), else floating
	ext     pgpio.Level // the level driven from outside
	out     pgpio.Level // an output's level
	writes  int         // Out calls that changed nothing or something
	readErr error
	openErr error
	stuck   bool
}

// Set drives an input from outside at level l (true = high).
func (p *FakePin) Set(l bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.driven, p.ext = true, pgpio.Level(l)
}

// Float stops driving an input: it then reads its bias (up: high; down or
// none: low).
func (p *FakePin) Float() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.driven = false
}

// High reports whether the line is at the high level now: an output's
// driven level, an input's read level.
func (p *FakePin) High() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bool(p.levelLocked())
}

// Output reports whether the line has been configured as an output.
func (p *FakePin) Output() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dir == config.GPIOOut
}

// Writes is how many times the line was written (Out).
func (p *FakePin) Writes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writes
}

// FailReads makes every read fail with err (nil heals the line).
func (p *FakePin) FailReads(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readErr = err
}

// FailOpen makes opening the line fail with err (nil heals it).
func (p *FakePin) FailOpen(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.openErr = err
}

// Stick makes an output ignore writes, keeping its level: a failed driver
// stage, which the read-back after a write must catch.
func (p *FakePin) Stick(stuck bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stuck = stuck
}

func (p *FakePin) levelLocked() pgpio.Level {
	switch {
	case p.dir == config.GPIOOut:
		return p.out
	case p.driven:
		return p.ext
	default:
		return p.pull == pgpio.PullUp
	}
}

// ReadLevel reads the line or fails: what the driver uses when a line can
// report an error (periph's Read cannot).
func (p *FakePin) ReadLevel() (pgpio.Level, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readErr != nil {
		return pgpio.Low, p.readErr
	}
	return p.levelLocked(), nil
}

// String implements conn.Resource.
func (p *FakePin) String() string { return "fake " + p.name }

// Halt implements conn.Resource.
func (p *FakePin) Halt() error { return nil }

// Name implements pin.Pin.
func (p *FakePin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *FakePin) Number() int { return p.num }

// Function implements pin.Pin.
func (p *FakePin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *FakePin) Func() pin.Func {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.dir {
	case config.GPIOOut:
		return pgpio.OUT
	case config.GPIOIn:
		return pgpio.IN
	}
	return pin.FuncNone
}

// SupportedFuncs implements pin.PinFunc.
func (p *FakePin) SupportedFuncs() []pin.Func { return []pin.Func{pgpio.IN, pgpio.OUT} }

// SetFunc implements pin.PinFunc.
func (p *FakePin) SetFunc(f pin.Func) error {
	switch f {
	case pgpio.IN:
		return p.In(pgpio.PullNoChange, pgpio.NoEdge)
	case pgpio.OUT:
		return p.Out(pgpio.Level(p.High()))
	}
	return fmt.Errorf("fake %s: function %s is not supported", p.name, f)
}

// In implements gpio.PinIn. Edges are not supported: the driver polls.
func (p *FakePin) In(pull pgpio.Pull, edge pgpio.Edge) error {
	if edge != pgpio.NoEdge {
		return errors.New("fake gpio: edge detection is not supported")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dir = config.GPIOIn
	if pull != pgpio.PullNoChange {
		p.pull = pull
	}
	return nil
}

// Read implements gpio.PinIn; a failing line reads low.
func (p *FakePin) Read() pgpio.Level {
	l, _ := p.ReadLevel()
	return l
}

// WaitForEdge implements gpio.PinIn. Edges are not supported (In refuses
// them), so it returns at once, as periph's lines do when not configured.
func (p *FakePin) WaitForEdge(time.Duration) bool { return false }

// Pull implements gpio.PinIn.
func (p *FakePin) Pull() pgpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn.
func (p *FakePin) DefaultPull() pgpio.Pull { return pgpio.Float }

// Out implements gpio.PinOut: it makes the line an output at level l.
func (p *FakePin) Out(l pgpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dir = config.GPIOOut
	p.writes++
	if !p.stuck {
		p.out = l
	}
	return nil
}

// PWM implements gpio.PinOut; not supported.
func (p *FakePin) PWM(pgpio.Duty, physic.Frequency) error {
	return errors.New("fake gpio: PWM is not supported")
}

var _ pgpio.PinIO = (*FakePin)(nil)
