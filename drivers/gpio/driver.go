// Package gpio reads and drives the gateway box's own digital lines as the
// tags of a device with protocol gpio: inputs wired to dry contacts (a gas
// controller's alarm relay, a door switch, a power supply's status) read
// as digital tags, and outputs (a beacon, a horn, an interposing relay)
// written like any other writable tag, by interlock actions through
// drivers.Writer.
//
// Lines are periph.io's gpio.PinIO (periph.io/x/conn/v3), opened by an
// Opener: Host for the real lines (Linux GPIO character device), Fake for
// tests and the demo. Values are logical: 1 is the active state (contact
// closed, beacon on), and active_low maps it onto the low level.
package gpio

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Opener opens one GPIO line. The driver configures it (In or Out).
type Opener interface {
	Open(config.GPIOPin) (pgpio.PinIO, error)
}

// levelReader is a line that can say when a read failed. periph's
// gpio.PinIn.Read cannot (gpioioctl logs the error and returns low); the
// fake can.
type levelReader interface {
	ReadLevel() (pgpio.Level, error)
}

// closer is a line that holds a file descriptor (gpioioctl's GPIOLine).
type closer interface{ Close() }

// Options tune a Driver.
type Options struct {
	// Fake holds the lines of backend fake; nil gives the driver a bank of
	// its own (see Driver.Fake).
	Fake   *Fake
	Logger *slog.Logger
	// Now is the clock of samples and of debouncing; nil = time.Now.
	Now func() time.Time
}

// Driver is one gpio device: a set of lines on the box.
type Driver struct {
	dev    config.Device
	opener Opener
	fake   *Fake
	log    *slog.Logger
	now    func() time.Time
	tags   []string

	mu     sync.Mutex // lines: Poll and Write come from different goroutines
	lines  []line
	byName map[string]int
}

// line is one tag's GPIO line and what the driver knows of it.
type line struct {
	tag *config.Tag
	cfg config.TagGPIO
	pin config.GPIOPin

	io      pgpio.PinIO // nil until opened
	openErr error       // why the last open failed

	// outputs: the level last written and accepted (the read-back of a
	// line that cannot be read without disturbing it)
	written pgpio.Level

	// inputs: debouncing. stable is the level passed on; candidate is a
	// different level seen since candidateAt.
	seen        bool
	stable      pgpio.Level
	candidate   pgpio.Level
	pending     bool
	candidateAt time.Time
}

// New builds the driver of dev, which must have been validated (protocol
// gpio, defaults applied). Lines are opened at the first Poll or Write.
func New(dev config.Device, opts Options) (*Driver, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Driver{dev: dev, log: opts.Logger, now: opts.Now, byName: map[string]int{}}
	backend := config.GPIOBackendHost
	if dev.GPIO != nil && dev.GPIO.Backend != "" {
		backend = dev.GPIO.Backend
	}
	switch backend {
	case config.GPIOBackendHost:
		d.opener = Host{}
	case config.GPIOBackendFake:
		d.fake = opts.Fake
		if d.fake == nil {
			d.fake = NewFake()
		}
		d.opener = d.fake
	default:
		return nil, fmt.Errorf("gpio device %q: backend %q is not supported", dev.Name, backend)
	}
	for i := range dev.Tags {
		t := &dev.Tags[i]
		if t.GPIO == nil {
			return nil, fmt.Errorf("gpio device %q: tag %q has no gpio line", dev.Name, t.Name)
		}
		pin, err := config.ParseGPIOPin(t.GPIO.Pin)
		if err != nil {
			return nil, fmt.Errorf("gpio device %q: tag %q: %w", dev.Name, t.Name, err)
		}
		d.byName[t.Name] = len(d.lines)
		d.lines = append(d.lines, line{tag: t, cfg: *t.GPIO, pin: pin})
		d.tags = append(d.tags, t.Name)
	}
	return d, nil
}

// Name implements drivers.Driver.
func (d *Driver) Name() string { return d.dev.Name }

// Tags implements drivers.Driver.
func (d *Driver) Tags() []string { return d.tags }

// Fake returns the lines of a device with backend fake, for the program
// that plays the field (tests, the demo); nil for backend host.
func (d *Driver) Fake() *Fake { return d.fake }

// Poll implements drivers.Driver: one sample per line. An input reads its
// contact (debounced); an output reads back the level it drives. A line
// that cannot be opened or read is Bad with the reason; the poll fails as
// a whole only when no line could be opened.
func (d *Driver) Poll(ctx context.Context) ([]model.Sample, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	out := make([]model.Sample, 0, len(d.lines))
	opened := 0
	var firstErr error
	for i := range d.lines {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		l := &d.lines[i]
		s := model.Sample{Tag: l.tag.Name, Device: d.dev.Name, Time: now.UTC()}
		if err := d.openLocked(l); err != nil {
			s.Quality, s.Reason = model.Bad, model.ReasonDeviceDown+": "+err.Error()
			firstErr = cmpOr(firstErr, err)
			out = append(out, s)
			continue
		}
		opened++
		level, err := l.read()
		if err != nil {
			s.Quality, s.Reason = model.Bad, fmt.Sprintf("%s: read %s: %v", model.ReasonDeviceDown, l.pin, err)
			out = append(out, s)
			continue
		}
		if l.cfg.Direction == config.GPIOIn {
			level = l.debounce(level, now)
		}
		s.Value = logical(level, l.cfg.ActiveLow)
		out = append(out, s)
	}
	if opened == 0 && firstErr != nil {
		return out, fmt.Errorf("gpio device %q: no line could be opened: %w", d.dev.Name, firstErr)
	}
	return out, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Write implements drivers.Writer: it drives an output line to value (0
// or 1, logical) and reads it back. Only outputs the config marks
// writable are written.
func (d *Driver) Write(ctx context.Context, tag string, value float64) error {
	i, ok := d.byName[tag]
	if !ok {
		return fmt.Errorf("gpio device %q: no tag %q", d.dev.Name, tag)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gpio device %q: write %s: %w", d.dev.Name, tag, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	l := &d.lines[i]
	switch {
	case l.cfg.Direction != config.GPIOOut:
		return fmt.Errorf("gpio device %q: tag %q is an input line, which cannot be written", d.dev.Name, tag)
	case !l.tag.Writable:
		return fmt.Errorf("gpio device %q: tag %q is not writable (the config must say writable: true)", d.dev.Name, tag)
	case value != 0 && value != 1:
		return fmt.Errorf("gpio device %q: write %s = %g: a GPIO line takes 0 or 1", d.dev.Name, tag, value)
	}
	if err := d.openLocked(l); err != nil {
		return fmt.Errorf("gpio device %q: write %s: %w", d.dev.Name, tag, err)
	}
	want := physical(value == 1, l.cfg.ActiveLow)
	if err := l.io.Out(want); err != nil {
		return fmt.Errorf("gpio device %q: write %s = %g on %s: %w", d.dev.Name, tag, value, l.pin, err)
	}
	l.written = want
	got, err := l.read()
	if err != nil {
		return fmt.Errorf("gpio device %q: write %s: read back %s: %w", d.dev.Name, tag, l.pin, err)
	}
	if got != want {
		return fmt.Errorf("gpio device %q: write %s: read back %g, wrote %g (%s is stuck)", d.dev.Name, tag, logical(got, l.cfg.ActiveLow), value, l.pin)
	}
	d.log.Info("gpio output written", "tag", tag, "value", value, "pin", l.pin.String())
	return nil
}

// openLocked opens and configures l if it is not yet: an input with its
// bias, an output driven to its initial state.
func (d *Driver) openLocked(l *line) error {
	if l.io != nil {
		return nil
	}
	io, err := d.opener.Open(l.pin)
	if err != nil {
		err = fmt.Errorf("open %s: %w", l.pin, err)
		if l.openErr == nil || l.openErr.Error() != err.Error() {
			d.log.Warn("gpio line cannot be opened", "tag", l.tag.Name, "err", err)
		}
		l.openErr = err
		return err
	}
	switch l.cfg.Direction {
	case config.GPIOOut:
		initial := l.cfg.Initial != nil && *l.cfg.Initial == 1
		lv := physical(initial, l.cfg.ActiveLow)
		if err := io.Out(lv); err != nil {
			closeLine(io)
			err = fmt.Errorf("drive %s to its initial state: %w", l.pin, err)
			l.openErr = err
			return err
		}
		l.written = lv
	default:
		if err := io.In(pull(l.cfg.Pull), pgpio.NoEdge); err != nil {
			closeLine(io)
			err = fmt.Errorf("configure %s as input: %w", l.pin, err)
			l.openErr = err
			return err
		}
		l.seen, l.pending = false, false
	}
	if l.openErr != nil {
		d.log.Info("gpio line opened", "tag", l.tag.Name, "pin", l.pin.String())
	}
	l.io, l.openErr = io, nil
	return nil
}

// read returns the line's level. An output that cannot report its level
// without disturbing it (gpioioctl's Read turns an output into an input)
// reads back the level last written and accepted by the kernel.
func (l *line) read() (pgpio.Level, error) {
	if r, ok := l.io.(levelReader); ok {
		return r.ReadLevel()
	}
	if l.cfg.Direction == config.GPIOOut {
		return l.written, nil
	}
	return l.io.Read(), nil
}

// debounce passes a new input level on once it has been read at polls
// spanning at least the debounce time with no other level between; the
// first read is passed on at once.
func (l *line) debounce(level pgpio.Level, now time.Time) pgpio.Level {
	switch {
	case !l.seen:
		l.seen, l.stable, l.pending = true, level, false
	case level == l.stable:
		l.pending = false
	case !l.pending || level != l.candidate:
		l.pending, l.candidate, l.candidateAt = true, level, now
	}
	if l.pending && now.Sub(l.candidateAt) >= l.cfg.Debounce.D() {
		l.stable, l.pending = l.candidate, false
	}
	return l.stable
}

// Close implements drivers.Driver: it releases every line. Outputs are
// left as the board leaves a released line (see docs/gpio.md); the next
// Poll opens them again and drives them to their initial state.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.lines {
		if d.lines[i].io != nil {
			closeLine(d.lines[i].io)
			d.lines[i].io = nil
		}
	}
	return nil
}

func closeLine(io pgpio.PinIO) {
	if c, ok := io.(closer); ok {
		c.Close()
	}
}

func pull(p string) pgpio.Pull {
	switch p {
	case config.GPIOPullUp:
		return pgpio.PullUp
	case config.GPIOPullDown:
		return pgpio.PullDown
	}
	return pgpio.Float
}

// physical is the level of logical state on (active) with the wiring.
func physical(on, activeLow bool) pgpio.Level { return pgpio.Level(on != activeLow) }

// logical is the tag value of level with the wiring: 1 = active.
func logical(level pgpio.Level, activeLow bool) float64 {
	if bool(level) != activeLow {
		return 1
	}
	return 0
}

var (
	_ drivers.Driver = (*Driver)(nil)
	_ drivers.Writer = (*Driver)(nil)
)
