// Package alarmout drives outputs that follow the alarms (config
// alarm_outputs): a beacon lit while any red alarm is active, a horn that
// an acknowledgement silences. The outputs are ordinary writable tags, a
// GPIO line of the box or a coil, written through their driver's
// drivers.Writer with read-back, like interlock actions.
//
// Unlike an interlock an alarm output never latches: it follows the
// alarms both ways. It looks at the active alarms every Period (200 ms)
// rather than inside the pipeline, so the pipeline never waits for it.
package alarmout

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/rules"
)

// Event kinds of alarm outputs (docs/uplink.md §3.2).
const (
	// Failed: writing or reading back an alarm output failed (an alarm:
	// the beacon may not show what it should).
	Failed model.EventKind = "alarm_output_failed"
	// Restored: a write succeeded again after a failure.
	Restored model.EventKind = "alarm_output_restored"
)

// Options tune the outputs.
type Options struct {
	Period     time.Duration // how often the alarms are looked at; 0 = 200 ms
	Timeout    time.Duration // one write with its read-back; 0 = 2 s
	RetryAfter time.Duration // wait after a failed write before the next; 0 = 5 s
	// Report receives the failure and recovery events; nil = log only.
	Report func(model.Event)
	Now    func() time.Time // nil = time.Now
	Logger *slog.Logger
}

// Outputs drives every alarm output of a gateway.
type Outputs struct {
	outs   []output
	active func() []rules.ActiveAlarm
	opts   Options
}

type output struct {
	cfg config.AlarmOutput
	w   drivers.Writer

	known    bool // a write succeeded: state is what the output holds
	state    bool
	failed   bool      // the last write failed
	failedAt time.Time // when
}

// New drives outs through writers[tag], from the alarms active returns
// (a snapshot; safe to call from another goroutine). An output without a
// writer fails at its first write, as an event.
func New(outs []config.AlarmOutput, writers map[string]drivers.Writer, active func() []rules.ActiveAlarm, opts Options) *Outputs {
	if opts.Period <= 0 {
		opts.Period = 200 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	o := &Outputs{active: active, opts: opts}
	for _, c := range outs {
		o.outs = append(o.outs, output{cfg: c, w: writers[c.Tag]})
	}
	return o
}

// Want says whether an output of cfg is on with these alarms, counting
// only alarms of its colours that are not shelved. A beacon (the default)
// is on while the process is in alarm, or while a latching alarm waits
// for its acknowledgement; an alarm that returned by itself puts it out,
// acknowledged or not (the operators' list keeps it). An unacknowledged
// output (a horn) is on while any alarm awaits acknowledgement, returned
// or not.
func Want(cfg config.AlarmOutput, active []rules.ActiveAlarm, now time.Time) bool {
	for _, a := range active {
		if !contains(cfg.Colours, a.Colour) || a.State == rules.Normal {
			continue
		}
		if !a.ShelvedUntil.IsZero() && now.Before(a.ShelvedUntil) {
			continue
		}
		unacked := a.State == rules.ActiveUnacked || a.State == rules.ReturnedUnacked
		if cfg.Unacknowledged && unacked {
			return true
		}
		if !cfg.Unacknowledged && (a.Condition || a.State == rules.ActiveUnacked) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run drives the outputs until ctx is done. Each output is written when
// what it should show differs from what it was last written (so at once
// at start), and again after a failed write every RetryAfter.
func (o *Outputs) Run(ctx context.Context) error {
	if len(o.outs) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTicker(o.opts.Period)
	defer t.Stop()
	for {
		o.step(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// step looks at the alarms once and writes what changed.
func (o *Outputs) step(ctx context.Context) {
	active := o.active()
	now := o.opts.Now()
	for i := range o.outs {
		out := &o.outs[i]
		want := Want(out.cfg, active, now)
		if out.known && !out.failed && out.state == want {
			continue
		}
		if out.failed && now.Sub(out.failedAt) < o.opts.RetryAfter {
			continue
		}
		o.write(ctx, out, want, now)
	}
}

func (o *Outputs) write(ctx context.Context, out *output, on bool, now time.Time) {
	value := 0.0
	if on {
		value = 1
	}
	var err error
	if out.w == nil {
		err = fmt.Errorf("no driver can write %s", out.cfg.Tag)
	} else {
		wctx, cancel := context.WithTimeout(ctx, o.opts.Timeout)
		err = out.w.Write(wctx, out.cfg.Tag, value)
		cancel()
	}
	if ctx.Err() != nil {
		return // stopping: not the output's fault
	}
	if err != nil {
		if !out.failed {
			o.report(model.Event{
				Kind: Failed, Time: now.UTC(), Tag: out.cfg.Tag, Value: model.Float(value),
				Reason: err.Error(), Colour: config.ColourRed, Priority: 1,
				Message: fmt.Sprintf("alarm output %s := %g FAILED: %v (retried every %s)", out.cfg.Tag, value, err, o.opts.RetryAfter),
			})
		}
		out.failed, out.failedAt = true, now
		return
	}
	if out.failed {
		o.report(model.Event{
			Kind: Restored, Time: now.UTC(), Tag: out.cfg.Tag, Value: model.Float(value),
			Message: fmt.Sprintf("alarm output %s := %g written and read back again", out.cfg.Tag, value),
		})
	}
	o.opts.Logger.Info("alarm output written", "tag", out.cfg.Tag, "value", value)
	out.known, out.state, out.failed = true, on, false
}

func (o *Outputs) report(ev model.Event) {
	if ev.Kind == Failed {
		o.opts.Logger.Warn(ev.Message)
	} else {
		o.opts.Logger.Info(ev.Message)
	}
	if o.opts.Report != nil {
		o.opts.Report(ev)
	}
}
