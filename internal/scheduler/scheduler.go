// Package scheduler runs one polling loop per device: it calls the device's
// driver on a fixed, drift-free schedule, bounds every poll in time so that
// a hanging device can only ever cost its own loop one interval, backs off
// while the device is down (reporting bad quality for every tick it does
// not poll, so the record shows a gap as bad data rather than silence) and
// hands every sample to the pipeline.
//
// Each device has its own Loop, goroutine and connection: one device can
// never delay another.
//
// Decisions:
//   - Tick k is due at start + k*interval. Each poll's context ends at the
//     next tick (or one interval after the poll started, if earlier).
//   - Ticks that pass while a poll or the pipeline is still busy, or
//     while the loop's goroutine waited to run (a starved gateway), are
//     skipped and counted as overruns; the loop never polls in a burst to
//     catch up, nor with a deadline already past.
//   - A poll that returns an error marks the device down. The n-th failure
//     in a row waits interval * 2^(n-1), capped at BackoffMax and shortened
//     by up to 20% of jitter, counted from the failed tick; the retry is the
//     first tick after that (so the first retry is the very next tick).
//     Every tick not polled meanwhile, and every tick skipped by an overrun
//     while down (at most a few at once), gets one bad sample per tag with
//     reason "device down: <last error>" and the tick's time.
//   - If a failed poll returned no samples, its tags are reported bad with
//     reason "timeout" (deadline) or "device down: <error>".
//   - A successful poll resets the back-off. Down and up are logged once
//     per change, not per poll.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Sink receives every batch of samples of a loop: the pipeline. Submit may
// block briefly to apply backpressure; it must return when ctx is done.
type Sink interface {
	Submit(ctx context.Context, samples []model.Sample) error
}

// Options are the optional parts of a Loop.
type Options struct {
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil = time.Now; the schedule is computed from it
}

// State is a loop's view of its device.
type State string

const (
	StateStarting State = "starting" // no poll has finished yet
	StateUp       State = "up"       // the last poll succeeded
	StateDown     State = "down"     // the last poll failed; a retry is due now
	StateBackoff  State = "backoff"  // the last poll failed; waiting out the back-off
	StateStopped  State = "stopped"  // Run has returned
)

// LoopStats is a snapshot of a loop's counters for the status page.
type LoopStats struct {
	Device           string
	State            State
	Polls            uint64        // polls started
	Overruns         uint64        // ticks skipped because the loop was still busy with an earlier one
	BackoffTicks     uint64        // ticks not polled because of back-off (bad samples submitted instead)
	Failures         int           // consecutive failed polls; 0 when up
	TotalFailures    uint64        // failed polls since start
	LastPollDuration time.Duration // of the last poll, failed or not
	LastGoodPoll     time.Time     // end of the last successful poll; zero if none
	LastError        string        // of the last failed poll
	RetryAt          time.Time     // while backing off: the earliest time of the next poll
	SubmitErrors     uint64        // batches the sink refused
}

// maxCatchUp bounds how many missed ticks are back-filled with bad samples
// at once after the loop fell behind while the device was down, so falling
// behind never turns into a burst towards the pipeline.
const maxCatchUp = 8

// Loop polls one device. Run it once, in a goroutine of its own; Stats may
// be called from anywhere.
type Loop struct {
	drv  drivers.Driver
	dev  config.Device
	sink Sink
	log  *slog.Logger
	now  func() time.Time
	rng  *rand.Rand // jitter; owned by the loop goroutine

	sinkFailing bool // the last Submit failed; owned by the loop goroutine

	// waitHook, when set by a test together with Options.Now, replaces the
	// timer: it returns at once once it has moved its fake clock to t.
	waitHook func(ctx context.Context, t time.Time) bool

	interval   time.Duration
	backoffMax time.Duration

	mu    sync.Mutex
	stats LoopStats
}

// New prepares a loop for dev read through drv, handing samples to sink.
func New(drv drivers.Driver, dev config.Device, sink Sink, opts Options) *Loop {
	l := &Loop{
		drv:        drv,
		dev:        dev,
		sink:       sink,
		log:        opts.Logger,
		now:        opts.Now,
		interval:   time.Duration(dev.Interval),
		backoffMax: time.Duration(dev.BackoffMax),
		// A source of its own per loop: no shared lock, and devices that
		// failed together do not retry together.
		rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		stats: LoopStats{Device: dev.Name, State: StateStarting},
	}
	if l.log == nil {
		l.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l.log = l.log.With("device", dev.Name)
	if l.now == nil {
		l.now = time.Now
	}
	if l.backoffMax < l.interval {
		l.backoffMax = l.interval
	}
	return l
}

// Stats returns a snapshot of the loop's counters. Safe to call from any
// goroutine.
func (l *Loop) Stats() LoopStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

func (l *Loop) update(fn func(*LoopStats)) {
	l.mu.Lock()
	fn(&l.stats)
	l.mu.Unlock()
}

// Run polls the device until ctx is done, then closes the driver. It
// returns nil after an orderly stop, or the error of closing the driver.
//
// The k-th tick is due at start + k*interval, whatever the polls cost: a
// timer is set to the next due time rather than sleeping an interval after
// the work. A poll that runs past the next due time makes the loop skip the
// missed ticks (counted as overruns) instead of polling in a burst.
func (l *Loop) Run(ctx context.Context) (err error) {
	defer func() {
		if cerr := l.drv.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("device %s: close driver: %w", l.dev.Name, cerr)
		}
		l.update(func(s *LoopStats) { s.State = StateStopped; s.RetryAt = time.Time{} })
	}()
	if l.interval <= 0 {
		return fmt.Errorf("device %s: poll interval %v must be positive", l.dev.Name, l.interval)
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wait := func(t time.Time) bool { return l.waitUntil(ctx, timer, t) }
	if l.waitHook != nil {
		wait = func(t time.Time) bool { return l.waitHook(ctx, t) && !stopping(ctx, l.now()) }
	}

	var (
		start     = l.now()
		k         int64     // index of the tick being served
		failures  int       // consecutive failed polls
		retryAt   time.Time // while failing: no poll before this tick time
		lastError string    // of the last failed poll
		// lastReason is the short reason the failed poll gave its tags
		// ("timeout", "connection refused"): what the platform reads in
		// the bad samples of the back-off ticks. The whole error, with
		// addresses, stays in the log and LoopStats.LastError.
		lastReason string
		warned     bool // "device down" was logged for this run of failures
		everUp     bool // a poll has succeeded since the loop started
	)
	tickTime := func(i int64) time.Time { return start.Add(time.Duration(i) * l.interval) }

	for {
		due := tickTime(k)
		if !wait(due) {
			return nil
		}
		if now := l.now(); !now.Before(tickTime(k + 1)) {
			// Woken an interval or more late (the gateway was starved of
			// CPU, or stopped by GC or a suspended VM): this tick's time
			// is over before its poll could start, and a poll now would
			// get a deadline already past and fail the device, with
			// "not polled", for the gateway's own delay. Serve the latest
			// tick instead; the ones missed are overruns, as when a poll
			// runs long, and get bad samples only while the device is down.
			last := int64(now.Sub(start) / l.interval)
			if failures > 0 {
				for i := max(k, last-maxCatchUp); i < last; i++ {
					l.submitBad(ctx, tickTime(i), lastReason)
				}
			}
			l.update(func(s *LoopStats) { s.Overruns += uint64(last - k) })
			k, due = last, tickTime(last)
		}

		if failures > 0 && due.Before(retryAt) {
			// Backing off: no poll, but the record shows why there is no value.
			l.submitBad(ctx, due, lastReason)
			l.update(func(s *LoopStats) { s.BackoffTicks++; s.State = StateBackoff })
			k++
			continue
		}

		l.update(func(s *LoopStats) {
			s.Polls++
			if failures > 0 {
				s.State = StateDown
			}
		})
		pollStart := l.now()
		next := tickTime(k + 1)
		deadline := pollStart.Add(l.interval)
		if next.Before(deadline) {
			deadline = next
		}
		samples, perr := l.poll(ctx, deadline)
		pollEnd := l.now()
		if stopping(ctx, pollEnd) {
			// Stopping: whatever the poll returned is an artefact of the
			// cancellation, not a device failure.
			return nil
		}
		l.update(func(s *LoopStats) { s.LastPollDuration = pollEnd.Sub(pollStart) })

		if perr != nil {
			failures++
			lastError = perr.Error()
			backoff := l.backoff(failures)
			retryAt = due.Add(backoff)
			lastReason = badReason(samples, strings.TrimPrefix(failReason(perr), model.ReasonDeviceDown+": "))
			if len(samples) == 0 {
				samples = drivers.BadSamples(l.dev.Name, l.drv.Tags(), failReason(perr), pollStart)
			}
			switch {
			case !warned && !everUp && errors.Is(perr, drivers.ErrConnecting):
				// The first connection is still being made: no value yet,
				// but nothing is known to be wrong.
				level := slog.LevelDebug
				if failures == 1 {
					level = slog.LevelInfo
				}
				l.log.Log(ctx, level, "device connecting", "err", perr, "retry_in", backoff)
			case !warned:
				warned = true
				l.log.Warn("device down", "err", perr, "retry_in", backoff)
			default:
				l.log.Debug("device still down", "err", perr, "failures", failures, "retry_in", backoff)
			}
			l.update(func(s *LoopStats) {
				s.Failures = failures
				s.TotalFailures++
				s.LastError = lastError
				s.RetryAt = retryAt
				s.State = StateBackoff
				if !retryAt.After(next) {
					s.State = StateDown
				}
			})
		} else {
			if failures > 0 {
				l.log.Info("device up", "after_failures", failures, "last_error", lastError)
			}
			failures, retryAt, warned, everUp = 0, time.Time{}, false, true
			l.update(func(s *LoopStats) {
				s.Failures = 0
				s.LastGoodPoll = pollEnd
				s.RetryAt = time.Time{}
				s.State = StateUp
			})
		}
		for i := range samples {
			if samples[i].Time.IsZero() {
				samples[i].Time = pollStart
			}
		}
		l.submit(ctx, samples)

		// Next tick: the first one not yet passed. Ticks that passed while
		// this poll (or the sink) was busy are skipped, not caught up.
		k++
		if now := l.now(); now.After(tickTime(k)) {
			last := int64(now.Sub(start) / l.interval) // the latest tick that passed
			missed := last - k + 1
			if failures > 0 {
				// The device is down: the missed ticks get bad samples like
				// back-off ticks do, but never more than a few at once.
				from := max(k, last-maxCatchUp+1)
				for i := from; i <= last; i++ {
					l.submitBad(ctx, tickTime(i), lastReason)
				}
			}
			l.update(func(s *LoopStats) { s.Overruns += uint64(missed) })
			k = last + 1
		}
	}
}

// waitUntil blocks until t or until ctx is done; it reports whether t came
// with ctx still live.
func (l *Loop) waitUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	if d := t.Sub(l.now()); d > 0 {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
	return !stopping(ctx, l.now())
}

// stopping reports whether ctx is done or its deadline has passed at now:
// a deadline's own timer may fire a moment after the loop's timer, and a
// poll started in that moment would fail for no fault of the device.
func stopping(ctx context.Context, now time.Time) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !now.Before(d)
}

// poll runs one bounded poll. A driver that panics is a failed poll, not a
// dead gateway.
func (l *Loop) poll(ctx context.Context, deadline time.Time) (samples []model.Sample, err error) {
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			samples, err = nil, fmt.Errorf("driver panic: %v", r)
			l.log.Error("driver panicked", "panic", r)
		}
	}()
	samples, err = l.drv.Poll(pctx)
	if err == nil && pctx.Err() != nil && len(samples) == 0 {
		// A driver that returned nothing when its time ran out failed.
		err = fmt.Errorf("poll: %w", pctx.Err())
	}
	return samples, err
}

// backoff is the wait after the n-th consecutive failure: interval, 2x,
// 4x, ... capped at BackoffMax, then shortened by up to 20% of jitter so
// that devices that fail together do not retry in lockstep. It never
// exceeds BackoffMax and is never shorter than 0.8 interval, so the first
// retry is always the next tick.
func (l *Loop) backoff(n int) time.Duration {
	d := l.interval
	for i := 1; i < n && d < l.backoffMax; i++ {
		d *= 2
	}
	d = min(d, l.backoffMax)
	return d - time.Duration(l.rng.Int64N(int64(d)/5+1))
}

// failReason is the bad-quality reason for the tags of a failed poll whose
// driver returned no samples.
func failReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return model.ReasonTimeout
	}
	return model.ReasonDeviceDown + ": " + err.Error()
}

func (l *Loop) submitBad(ctx context.Context, at time.Time, reason string) {
	l.submit(ctx, drivers.BadSamples(l.dev.Name, l.drv.Tags(), model.ReasonDeviceDown+": "+reason, at))
}

func (l *Loop) submit(ctx context.Context, samples []model.Sample) {
	if len(samples) == 0 {
		return
	}
	err := l.sink.Submit(ctx, samples)
	switch {
	case err != nil && ctx.Err() == nil:
		l.update(func(s *LoopStats) { s.SubmitErrors++ })
		if !l.sinkFailing {
			l.sinkFailing = true
			l.log.Error("pipeline refuses samples", "err", err, "samples", len(samples))
		}
	case err == nil && l.sinkFailing:
		l.sinkFailing = false
		l.log.Info("pipeline accepts samples again")
	}
}

// badReason returns the reason of the first bad sample, or fallback.
func badReason(samples []model.Sample, fallback string) string {
	for _, s := range samples {
		if s.Quality != model.Good && s.Reason != "" {
			return s.Reason
		}
	}
	return fallback
}
