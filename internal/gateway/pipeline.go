package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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

// pipeline is the single goroutine that owns the rules engine and the
// interlocks: it takes samples from every device loop, evaluates them, and
// hands samples and the events they caused to a committer goroutine that
// appends them to the buffer in one commit. While one commit is on its way
// to disk the next batch grows, so one fsync serves many samples, and
// evaluation never waits for the disk (see run).
type pipeline struct {
	// beat is the time (Unix ns) of the loop's last tick: a loop that
	// stopped turning stops the systemd watchdog (Gateway.Alive).
	beat atomic.Int64

	in     chan []model.Sample
	engine *rules.Engine
	buf    *buffer.Buffer
	log    *slog.Logger

	// append makes records durable: buf.Append (tests stall it).
	append func(ctx context.Context, events []model.Event, samples []model.Sample) error

	mu       sync.Mutex
	snapshot []rules.ActiveAlarm

	locks pipeLocks // interlocks and operator requests (interlocks.go)

	latest latestValues // newest durable sample per tag, last commit (latest.go)

	// toHistory takes a copy of every durable batch without waiting
	// (history.go); nil when history is off.
	toHistory func([]model.Sample)
}

func newPipeline(engine *rules.Engine, buf *buffer.Buffer, log *slog.Logger) *pipeline {
	p := &pipeline{in: make(chan []model.Sample, 256), engine: engine, buf: buf, log: log}
	if buf != nil {
		p.append = buf.Append
	}
	return p
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

// maxPendingSamples and maxPendingEvents bound what is held in memory
// while the disk is behind. A healthy disk that is merely slower than a
// burst gets back-pressure: the pipeline stops taking samples and the
// device loops wait in Submit, losing nothing, for at most stallAfter.
// A disk that fails, or stalls longer, gets the other treatment: intake
// goes on, the oldest held records are dropped and counted
// (storageTrouble), so the rules and interlocks keep seeing every new
// value, which matters more on a plant than keeping old telemetry.
const (
	maxPendingSamples = 200000
	maxPendingEvents  = 100000
	stallAfter        = 5 * time.Second
)

// retryCommitEvery is how often a failed commit is tried again.
const retryCommitEvery = time.Second

// batch is evaluated work on its way to disk, with the operator requests
// to answer once it is durable.
type batch struct {
	events  []model.Event
	samples []model.Sample
	replies []pendingReply
}

type pendingReply struct {
	done chan error
	err  error
}

func (b *batch) empty() bool {
	return len(b.events) == 0 && len(b.samples) == 0 && len(b.replies) == 0
}

// committed is a batch back from the committer, for reuse.
type committed struct {
	b   batch
	err error
}

// run processes until ctx is done, then drains what is queued and returns.
//
// Evaluation and disk commits overlap: the loop evaluates every poll as
// it arrives (alarms, interlocks; interlock writes are queued at once)
// and gathers the results into the pending batch, which the committer
// goroutine writes to the buffer in one commit while the loop goes on. So
// a slow or stalled disk delays durability, never a trip; and while one
// commit is on its way the next batch grows, so one fsync serves many
// samples.
func (p *pipeline) run(ctx context.Context) error {
	ticker := time.NewTicker(tickEvery)
	defer ticker.Stop()
	toDisk := make(chan batch)
	fromDisk := make(chan committed, 1)
	go func() {
		for b := range toDisk {
			err := p.commit(&b)
			fromDisk <- committed{b, err}
		}
	}()
	defer close(toDisk)
	var (
		pend     batch // evaluated, not yet handed to the committer
		spare    batch // buffers back from the committer
		busy     bool  // the committer holds a batch
		busyAt   time.Time
		trouble  storageTrouble
		incoming []model.Sample
		events   []model.Event
	)
	for {
		incoming, events = incoming[:0], events[:0]
		var send chan<- batch
		if !busy && !pend.empty() && !time.Now().Before(trouble.retryAt) {
			send = toDisk
		}
		// A failed disk, or one stuck on a commit for stallAfter, is in
		// trouble: keep taking samples and let bound drop the oldest.
		// Otherwise the disk is only behind: back-pressure, nothing lost.
		inTrouble := !trouble.since.IsZero() || (busy && time.Since(busyAt) >= stallAfter)
		in := p.in
		if len(pend.samples) >= maxPendingSamples && !inTrouble {
			in = nil
		}
		select {
		case <-ctx.Done():
			if busy {
				if c := <-fromDisk; c.err != nil {
					pend = requeue(c.b, pend)
				}
			}
			incoming = p.take(incoming)
			p.evaluate(&pend, incoming, nil)
			p.record(&pend, p.actionResults(nil))
			return p.commit(&pend)
		case send <- pend:
			busy, busyAt = true, time.Now()
			pend = batch{events: spare.events[:0], samples: spare.samples[:0], replies: spare.replies[:0]}
			continue
		case c := <-fromDisk:
			busy = false
			if c.err != nil {
				// The disk failed (read-only, I/O error, full file
				// system). Keep the batch, keep evaluating, try again.
				pend = requeue(c.b, pend)
				spare = batch{}
				if ev, first := trouble.failed(time.Now(), c.err); first {
					p.log.Error("buffer commit failed: rules and interlocks keep running, records are held in memory and retried", "err", c.err)
					p.record(&pend, []model.Event{ev})
				}
				p.bound(&pend, &trouble)
				continue
			}
			spare = c.b
			if ev, ok := trouble.recovered(time.Now()); ok {
				p.log.Warn(ev.Message)
				p.record(&pend, []model.Event{ev})
			}
			continue
		case s := <-in:
			incoming = append(incoming, s...)
			incoming = p.take(incoming)
		case now := <-ticker.C:
			p.beat.Store(now.UnixNano())
			events = p.engine.Tick(now.UTC(), events)
			events = p.interlocks(nil, now.UTC(), events)
		case <-p.actionsReady():
			events = p.actionResults(events)
		case req := <-p.operatorRequests():
			evs, err := req.fn(time.Now().UTC())
			events = append(events, evs...)
			// The operator hears back once the event is durable.
			pend.replies = append(pend.replies, pendingReply{req.done, err})
		}
		p.evaluate(&pend, incoming, events)
		if inTrouble {
			p.bound(&pend, &trouble)
		}
	}
}

// requeue puts a batch whose commit failed back in front of what was
// evaluated since, keeping acquisition order. Its operator requests were
// already answered with the error.
func requeue(failed, pend batch) batch {
	return batch{
		events:  append(failed.events, pend.events...),
		samples: append(failed.samples, pend.samples...),
		replies: pend.replies,
	}
}

// bound drops the oldest held records beyond the limits and counts them.
func (p *pipeline) bound(b *batch, t *storageTrouble) {
	if n := len(b.samples) - maxPendingSamples; n > 0 {
		t.dropSamples(b.samples[:n])
		b.samples = append(b.samples[:0], b.samples[n:]...)
	}
	if n := len(b.events) - maxPendingEvents; n > 0 {
		t.droppedEvents += uint64(n)
		b.events = append(b.events[:0], b.events[n:]...)
	}
}

// evaluate runs the rules and interlocks on samples and adds them, the
// events they caused and events (from a tick or a request) to b.
func (p *pipeline) evaluate(b *batch, samples []model.Sample, events []model.Event) {
	if len(samples) > 0 {
		events = p.engine.Process(samples, events)
		// Interlock commands leave here, before any commit.
		events = p.interlocks(samples, time.Time{}, events)
		b.samples = append(b.samples, samples...)
	}
	p.record(b, events)
}

// record adds events to b and makes them visible in the status at once.
func (p *pipeline) record(b *batch, events []model.Event) {
	if len(events) == 0 {
		return
	}
	p.publishSnapshot()
	if p.locks.engine != nil {
		p.publishInterlocks()
	}
	for _, e := range events {
		// "level" would clash with the record's own level in JSON.
		p.log.Info(e.Message, "kind", e.Kind, "tag", e.Tag, "alarm_level", e.Level)
	}
	b.events = append(b.events, events...)
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

// commit appends b to the buffer and answers its operator requests.
func (p *pipeline) commit(b *batch) error {
	var err error
	if len(b.events) > 0 || len(b.samples) > 0 {
		// The disk is local; the commit is not abandoned on shutdown, so a
		// background context with a generous bound is right here.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = p.append(ctx, b.events, b.samples)
		cancel()
		p.latest.note(b.samples, err)
		if err == nil && p.toHistory != nil {
			p.toHistory(b.samples)
		}
		if err != nil {
			err = fmt.Errorf("append %d events and %d samples: %w", len(b.events), len(b.samples), err)
		}
	}
	for _, r := range b.replies {
		if r.err == nil {
			r.err = err
		}
		r.done <- r.err // buffered: never blocks
	}
	// Answered now, whatever the outcome: a retried batch must not
	// answer twice.
	b.replies = b.replies[:0]
	return err
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
