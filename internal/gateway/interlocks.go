package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"hazgate/drivers"
	"hazgate/internal/model"
	"hazgate/rules/interlock"
)

// pipeLocks is the interlock part of the pipeline: the engine decides on
// the pipeline's goroutine, right after the alarm rules and before the
// disk commit, and hands commands to the actuator's queues without
// waiting; the actuator's outcome events come back through its Ready
// channel. Operator requests (ack, reset, bypass) run on the pipeline's
// goroutine too, through ops, because the engines are not shared.
type pipeLocks struct {
	engine *interlock.Engine
	act    *interlock.Actuator
	cmds   []interlock.Command
	ops    chan operatorRequest

	snapshot []interlock.Status // under pipeline.mu
}

// operatorRequest runs fn on the pipeline goroutine; its events are
// committed like any other, and its error comes back on done.
type operatorRequest struct {
	fn   func(now time.Time) ([]model.Event, error)
	done chan error
}

// wireInterlocks builds the interlock engine and the actuator, with every
// writable tag of a device whose driver can write.
func (g *Gateway) wireInterlocks() error {
	engine, err := interlock.New(g.cfg)
	if err != nil {
		return err
	}
	// The actuator writes through tagWriter, which finds the tag's driver
	// at write time: a reload may replace a device's driver (reload.go).
	g.rl.writers = writersOf(g.cfg, g.drivers)
	writers := map[string]drivers.Writer{}
	for tag := range g.rl.writers {
		writers[tag] = tagWriter{g, tag}
	}
	act := interlock.NewActuator(writers, interlock.ActuatorOptions{Logger: g.log.With("stage", "actuator")})
	g.pipe.locks = pipeLocks{engine: engine, act: act, ops: make(chan operatorRequest)}
	g.pipe.publishInterlocks()
	return nil
}

// interlocks evaluates the interlocks on samples (or at a tick when now is
// set) and submits their commands at once.
func (p *pipeline) interlocks(samples []model.Sample, now time.Time, events []model.Event) []model.Event {
	l := &p.locks
	if l.engine == nil {
		return events
	}
	if now.IsZero() {
		events, l.cmds = l.engine.Process(samples, events, l.cmds[:0])
	} else {
		events, l.cmds = l.engine.Tick(now, events, l.cmds[:0])
	}
	for _, c := range l.cmds {
		l.act.Submit(c)
	}
	return events
}

// actionResults appends the actuator's outcome events to events and notes
// failed outputs in the interlocks' status.
func (p *pipeline) actionResults(events []model.Event) []model.Event {
	if p.locks.act == nil {
		return events
	}
	n := len(events)
	events = p.locks.act.Drain(events)
	for _, ev := range events[n:] {
		p.locks.engine.NoteAction(ev)
	}
	return events
}

// actionsReady is the actuator's signal, nil (never ready) without one.
func (p *pipeline) actionsReady() <-chan struct{} {
	if p.locks.act == nil {
		return nil
	}
	return p.locks.act.Ready()
}

func (p *pipeline) operatorRequests() <-chan operatorRequest { return p.locks.ops }

func (p *pipeline) publishInterlocks() {
	st := p.locks.engine.Status()
	p.mu.Lock()
	p.locks.snapshot = st
	p.mu.Unlock()
}

func (p *pipeline) interlockStatus() []interlock.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]interlock.Status(nil), p.locks.snapshot...)
}

// ErrNotRunning is returned by operator requests when the pipeline is not
// running.
var ErrNotRunning = errors.New("gateway is not running")

// operate runs fn on the pipeline goroutine and waits for it.
func (g *Gateway) operate(ctx context.Context, fn func(now time.Time) ([]model.Event, error)) error {
	if g.pipe.locks.ops == nil {
		return ErrNotRunning
	}
	req := operatorRequest{fn: fn, done: make(chan error, 1)}
	select {
	case g.pipe.locks.ops <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ack acknowledges the alarms of tag at level ("" for all) on behalf of
// who; the acknowledgement is recorded as an event.
func (g *Gateway) Ack(ctx context.Context, tag, level, who string) error {
	return g.operate(ctx, func(now time.Time) ([]model.Event, error) {
		return g.pipe.engine.Ack(tag, level, who, now)
	})
}

// ResetInterlock resets a tripped interlock (refused while its condition
// holds).
func (g *Gateway) ResetInterlock(ctx context.Context, name, who string) error {
	return g.operate(ctx, func(now time.Time) ([]model.Event, error) {
		if g.pipe.locks.engine == nil {
			return nil, fmt.Errorf("%s: %w", name, interlock.ErrUnknown)
		}
		return g.pipe.locks.engine.Reset(name, who, now)
	})
}

// Bypass bypasses an interlock for d, for reason.
func (g *Gateway) Bypass(ctx context.Context, name, who, reason string, d time.Duration) error {
	return g.operate(ctx, func(now time.Time) ([]model.Event, error) {
		if g.pipe.locks.engine == nil {
			return nil, fmt.Errorf("%s: %w", name, interlock.ErrUnknown)
		}
		return g.pipe.locks.engine.Bypass(name, who, reason, now.Add(d), now)
	})
}

// Unbypass ends a bypass early.
func (g *Gateway) Unbypass(ctx context.Context, name, who string) error {
	return g.operate(ctx, func(now time.Time) ([]model.Event, error) {
		if g.pipe.locks.engine == nil {
			return nil, fmt.Errorf("%s: %w", name, interlock.ErrUnknown)
		}
		return g.pipe.locks.engine.Unbypass(name, who, now)
	})
}

// Interlocks returns the state of every interlock as of the last change.
func (g *Gateway) Interlocks() []interlock.Status { return g.pipe.interlockStatus() }

// runActuator writes interlock outputs until ctx is done.
func (g *Gateway) runActuator(ctx context.Context) {
	if g.pipe.locks.act != nil {
		_ = g.pipe.locks.act.Run(ctx)
	}
}

// Shelve takes an alarm off the operators' list for d (reported; its
// events are still recorded).
func (g *Gateway) Shelve(ctx context.Context, tag, level, who, reason string, d time.Duration) error {
	return g.operate(ctx, func(now time.Time) ([]model.Event, error) {
		return g.pipe.engine.Shelve(tag, level, who, reason, now.Add(d), now)
	})
}

// Unshelve puts a shelved alarm back on the list.
func (g *Gateway) Unshelve(ctx context.Context, tag, level, who string) error {
	return g.operate(ctx, func(now time.Time) ([]model.Event, error) {
		return g.pipe.engine.Unshelve(tag, level, who, now)
	})
}
