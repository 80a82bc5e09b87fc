package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hazgate/buffer"
	"hazgate/internal/model"
	"hazgate/rules"
)

// tickEvery is how often time-driven rules (on-delays that expire without a
// new sample, stale data) are evaluated.
const tickEvery = 200 * time.Millisecond

// maxBatchSamples bounds one commit, so a burst after a stall still goes
// to disk in pieces of a sensible size.
const maxBatchSamples = 20000

// pipeline is the single goroutine that owns the rules engine: it takes
// samples from every device loop, evaluates them, and appends samples and
// the events they caused to the buffer in one commit. While one commit is
// on its way to disk the next samples queue up, so the batch size grows
// with load and one fsync serves many samples.
type pipeline struct {
	in     chan []model.Sample
	engine *rules.Engine
	buf    *buffer.Buffer
	log    *slog.Logger

	mu       sync.Mutex
	snapshot []rules.ActiveAlarm
}

func newPipeline(engine *rules.Engine, buf *buffer.Buffer, log *slog.Logger) *pipeline {
	return &pipeline{in: make(chan []model.Sample, 256), engine: engine, buf: buf, log: log}
}

// Submit hands one poll's samples to the pipeline. It blocks only while
// the pipeline's queue is full (the disk is slower than acquisition).
func (p *pipeline) Submit(ctx context.Context, samples []model.Sample) error {
	select {
	case p.in <- samples:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run processes until ctx is done, then drains what is queued and returns.
func (p *pipeline) run(ctx context.Context) error {
	ticker := time.NewTicker(tickEvery)
	defer ticker.Stop()
	var (
		samples []model.Sample
		events  []model.Event
	)
	for {
		samples, events = samples[:0], events[:0]
		select {
		case <-ctx.Done():
			return p.drain()
		case s := <-p.in:
			samples = append(samples, s...)
			samples = p.take(samples)
		case now := <-ticker.C:
			events = p.engine.Tick(now.UTC(), events)
		}
		if len(samples) > 0 {
			events = p.engine.Process(samples, events)
		}
		if err := p.commit(events, samples); err != nil {
			return err
		}
	}
}

// take appends whatever else is queued, without waiting.
func (p *pipeline) take(samples []model.Sample) []model.Sample {
	for len(samples) < maxBatchSamples {
		select {
		case s := <-p.in:
			samples = append(samples, s...)
		default:
			return samples
		}
	}
	return samples
}

func (p *pipeline) drain() error {
	samples := p.take(nil)
	if len(samples) == 0 {
		return nil
	}
	events := p.engine.Process(samples, nil)
	return p.commit(events, samples)
}

func (p *pipeline) commit(events []model.Event, samples []model.Sample) error {
	if len(events) > 0 {
		p.publishSnapshot()
		for _, e := range events {
			p.log.Info(e.Message, "kind", e.Kind, "tag", e.Tag, "level", e.Level)
		}
	}
	if len(events) == 0 && len(samples) == 0 {
		return nil
	}
	// The disk is local; the commit is not abandoned on shutdown, so a
	// background context with a generous bound is right here.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.buf.Append(ctx, events, samples); err != nil {
		return fmt.Errorf("append %d events and %d samples: %w", len(events), len(samples), err)
	}
	return nil
}

func (p *pipeline) publishSnapshot() {
	active := p.engine.Active()
	p.mu.Lock()
	p.snapshot = active
	p.mu.Unlock()
}

// active returns the alarms active after the last commit that changed them.
func (p *pipeline) active() []rules.ActiveAlarm {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rules.ActiveAlarm(nil), p.snapshot...)
}
