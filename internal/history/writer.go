package history

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"hazgate/internal/model"
)

// pruneEvery is how often the writer applies the age bound when nothing
// else makes it look.
const pruneEvery = time.Minute

// flushSamples ends a coalescing round early: one transaction of this many
// samples is already an efficient write.
const flushSamples = 50_000

// Writer feeds a Store from the gateway's pipeline on a goroutine of its
// own. Offer never waits: when the queue is full (the history disk is
// slower than acquisition) the samples are dropped from history and
// counted. History must never slow acquisition, rules, interlocks or the
// buffer; the buffer, not history, is what delivery relies on.
type Writer struct {
	store *Store
	queue chan []model.Sample

	dropped atomic.Uint64 // samples not queued: the queue was full
	failed  atomic.Uint64 // samples whose write failed
	written atomic.Uint64 // samples written
	flushes atomic.Uint64

	mu      sync.Mutex
	lastErr string
}

// NewWriter makes a writer for s with a queue of s.Options().QueueBatches
// batches.
func NewWriter(s *Store) *Writer {
	return &Writer{store: s, queue: make(chan []model.Sample, s.opts.QueueBatches)}
}

// Offer hands a copy of samples to the writer without waiting; it returns
// false, and counts the samples as dropped, when the queue is full.
func (w *Writer) Offer(samples []model.Sample) bool {
	if len(samples) == 0 {
		return true
	}
	select {
	case w.queue <- append([]model.Sample(nil), samples...):
		return true
	default:
		w.dropped.Add(uint64(len(samples)))
		return false
	}
}

// WriterStats are the writer's counters since it was made.
type WriterStats struct {
	Written   uint64 // samples written to the file
	Dropped   uint64 // samples dropped because the queue was full
	Failed    uint64 // samples lost to a failed write
	Flushes   uint64 // transactions written
	Queued    int    // batches waiting
	LastError string // of the last failed write or retention pass; "" if none
}

// Stats returns the counters; safe from any goroutine.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	e := w.lastErr
	w.mu.Unlock()
	return WriterStats{Written: w.written.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load(),
		Flushes: w.flushes.Load(), Queued: len(w.queue), LastError: e}
}

// Run writes what is offered until ctx is done, then writes what is still
// queued and returns. Samples are coalesced for FlushEvery and written in
// one transaction; the bounds are applied after a flush that went over
// MaxBytes and every minute for the age. Errors are logged and counted,
// never returned: history is a record, not a stage acquisition waits for.
func (w *Writer) Run(ctx context.Context) {
	s := w.store
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	w.enforce()
	var pending []model.Sample
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case b := <-w.queue:
					pending = append(pending, b...)
					continue
				default:
				}
				break
			}
			w.flush(pending)
			return
		case <-prune.C:
			w.enforce()
			continue
		case b := <-w.queue:
			pending = append(pending[:0], b...)
		}
		// coalesce for up to FlushEvery
		timer := time.NewTimer(s.opts.FlushEvery)
	gather:
		for len(pending) < flushSamples {
			select {
			case b := <-w.queue:
				pending = append(pending, b...)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		timer.Stop()
		w.flush(pending)
		pending = pending[:0]
		if s.overBytes() {
			w.enforce()
		}
	}
}

func (w *Writer) flush(samples []model.Sample) {
	if len(samples) == 0 {
		return
	}
	if err := w.store.Write(samples); err != nil {
		w.failed.Add(uint64(len(samples)))
		w.fail(err)
		return
	}
	w.written.Add(uint64(len(samples)))
	w.flushes.Add(1)
}

func (w *Writer) enforce() {
	if err := w.store.Enforce(); err != nil {
		w.fail(err)
	}
}

// fail logs an error once per distinct text, so a full disk does not
// flood the journal every second.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	same := w.lastErr == err.Error()
	w.lastErr = err.Error()
	w.mu.Unlock()
	if !same {
		w.store.log.Error("history write failed (acquisition and delivery go on)", "err", err)
	}
}
