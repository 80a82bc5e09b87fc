package interlock

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Actuator writes interlock outputs. Each output tag has its own queue and
// goroutine, so a device that times out delays only its own outputs, and
// Submit never blocks the pipeline. Every write is verified by read-back
// (drivers.Writer's contract) and retried once; the outcome becomes an
// event (interlock_action or interlock_action_failed) that the pipeline
// collects with Drain.
type Actuator struct {
	writers map[string]drivers.Writer
	queues  map[string]chan Command
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	results []model.Event
	ready   chan struct{}
}

// ActuatorOptions tune an Actuator.
type ActuatorOptions struct {
	// Timeout bounds one write with its read-back; zero means 2 s.
	Timeout time.Duration
	// Now is the clock for event times and latency (wall clock if nil):
	// writes happen in real time, unlike rule evaluation.
	Now    func() time.Time
	Logger *slog.Logger
}

// queueLen is how many commands may wait per output.
const queueLen = 64

// NewActuator writes each tag through writers[tag].
func NewActuator(writers map[string]drivers.Writer, opts ActuatorOptions) *Actuator {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Actuator{writers: writers, queues: map[string]chan Command{}, timeout: opts.Timeout,
		now: opts.Now, log: opts.Logger, ready: make(chan struct{}, 1)}
	for tag := range writers {
		a.queues[tag] = make(chan Command, queueLen)
	}
	return a
}

// Submit queues a command without waiting. A command that cannot be
// queued (no writer for the tag, queue full) fails at once, as an event.
func (a *Actuator) Submit(c Command) {
	q, ok := a.queues[c.Tag]
	if !ok {
		a.fail(c, 0, fmt.Errorf("no driver can write %s", c.Tag))
		return
	}
	select {
	case q <- c:
	default:
		a.fail(c, 0, fmt.Errorf("%d writes to %s are already waiting", queueLen, c.Tag))
	}
}

// Ready is signalled when Drain has events to return.
func (a *Actuator) Ready() <-chan struct{} { return a.ready }

// Drain appends the outcome events gathered so far to out.
func (a *Actuator) Drain(out []model.Event) []model.Event {
	a.mu.Lock()
	out = append(out, a.results...)
	a.results = a.results[:0]
	a.mu.Unlock()
	return out
}

// Run writes until ctx is done; commands still queued then are abandoned
// (the gateway is stopping).
func (a *Actuator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for tag, q := range a.queues {
		w := a.writers[tag]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case c := <-q:
					a.write(ctx, w, c)
				}
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (a *Actuator) write(ctx context.Context, w drivers.Writer, c Command) {
	start := a.now()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, a.timeout)
		err = w.Write(wctx, c.Tag, c.Value)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		a.log.Warn("interlock write failed, retrying once", "interlock", c.Interlock, "tag", c.Tag, "err", err)
	}
	if err != nil {
		a.fail(c, start.Sub(c.Cause), err)
		return
	}
	done := a.now()
	a.add(model.Event{
		Kind: model.InterlockAction, Time: done.UTC(), Interlock: c.Interlock, Tag: c.Tag, Value: model.Float(c.Value),
		Message: fmt.Sprintf("%s: %s := %g written and read back (condition to write %s, write %s)",
			c.Interlock, c.Tag, c.Value, latency(start.Sub(c.Cause)), done.Sub(start).Round(time.Microsecond)),
	})
}

func latency(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Microsecond).String()
}

func (a *Actuator) fail(c Command, lat time.Duration, err error) {
	a.add(model.Event{
		Kind: model.InterlockActionFailed, Time: a.now().UTC(), Interlock: c.Interlock, Tag: c.Tag, Value: model.Float(c.Value),
		Reason: err.Error(), Colour: config.ColourRed, Priority: 1,
		Message: fmt.Sprintf("%s: writing %s := %g FAILED after one retry: %v", c.Interlock, c.Tag, c.Value, err),
	})
}

func (a *Actuator) add(ev model.Event) {
	a.mu.Lock()
	a.results = append(a.results, ev)
	a.mu.Unlock()
	select {
	case a.ready <- struct{}{}:
	default:
	}
}
