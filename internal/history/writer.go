package history

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hazgate/internal/model"
)

// pruneEvery is how often the writer applies the age bound when nothing
// else makes it look.
const pruneEvery = time.Minute

// flushSamples ends a coalescing round early: one transaction of this many
// samples is already an efficient write (for a few thousand tags; with
// more tags the bound grows, see roundSamples).
const flushSamples = 50_000

// A transaction costs history at least one rewritten bbolt page per tag
// it touches (each tag is a bucket of its own): at 50 000 tags that is
// 200 MB of pages a second when every round is one second, whatever the
// samples per tag (docs/PERFORMANCE.md, BenchmarkWriteManyTags). So the
// round grows with the tags written in the last one: tagsPerRound tags
// take FlushEvery, twice as many twice as long, up to maxRound. That
// bounds what a crash loses to the round (docs/history.md).
const (
	tagsPerRound = 1_000
	maxRound     = 10 * time.Second
	// tagsPerTx bounds the tags of one transaction (see flush).
	tagsPerTx = 5_000
	// samplesPerTag ends a round early when the tags are polled fast:
	// that many samples per tag make the page rewrite a small part.
	samplesPerTag = 10
)

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
	round   atomic.Int64 // current coalescing round (time.Duration)

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
	Written   uint64        // samples written to the file
	Dropped   uint64        // samples dropped because the queue was full
	Failed    uint64        // samples lost to a failed write
	Flushes   uint64        // transactions written
	Queued    int           // batches waiting
	Round     time.Duration // how long the writer coalesces now (grows with the tags)
	LastError string        // of the last failed write or retention pass; "" if none
}

// Stats returns the counters; safe from any goroutine.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	e := w.lastErr
	w.mu.Unlock()
	return WriterStats{Written: w.written.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load(),
		Flushes: w.flushes.Load(), Queued: len(w.queue), Round: time.Duration(w.round.Load()), LastError: e}
}

// roundFor is how long to coalesce when the last round wrote tags tags.
func (w *Writer) roundFor(tags int) time.Duration {
	every := w.store.opts.FlushEvery
	d := every * time.Duration((tags+tagsPerRound-1)/tagsPerRound)
	return max(every, min(d, max(every, maxRound)))
}

// roundSamples is how many samples end a round early.
func roundSamples(tags int) int { return max(flushSamples, samplesPerTag*tags) }

// job is one transaction for the writing goroutine: samples to write
// (may be empty) and whether to apply the bounds after.
type job struct {
	samples []model.Sample
	enforce bool
}

// jobDone returns the job's slice for reuse and the tags it wrote.
type jobDone struct {
	samples []model.Sample
	tags    int
}

// Run writes what is offered until ctx is done, then writes what is still
// queued and returns. Samples are coalesced for a round (FlushEvery, longer
// with many tags: roundFor) and written in one transaction on a second
// goroutine, so that the queue is drained while a large round is written;
// the bounds are applied after a flush that went over MaxBytes and every
// minute for the age. Errors are logged and counted, never returned:
// history is a record, not a stage acquisition waits for.
func (w *Writer) Run(ctx context.Context) {
	s := w.store
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	jobs := make(chan job)
	done := make(chan jobDone, 1)
	go func() {
		var f flusher
		for j := range jobs {
			tags := w.flush(j.samples, &f)
			if j.enforce || s.overBytes() {
				w.enforce()
			}
			done <- jobDone{samples: j.samples[:0], tags: tags}
		}
	}()
	defer close(jobs)
	w.enforce()

	var (
		pending, spare []model.Sample
		busy           bool // a job is being written
		due            bool // the round is over: write pending when the writer is free
		enforceDue     bool
		tags           int // tags written by the last round
		timer          *time.Timer
		timerC         <-chan time.Time
	)
	round := w.roundFor(0)
	w.round.Store(int64(round))
	start := func() {
		busy, due = true, false
		jobs <- job{samples: pending, enforce: enforceDue}
		pending, spare, enforceDue = spare[:0], nil, false
		if timer != nil {
			timer.Stop()
		}
		timerC = nil
	}
	for {
		// While a round is being written pending may grow to a few rounds;
		// past that the queue fills and Offer drops (counted).
		queue := w.queue
		if busy && len(pending) >= 2*roundSamples(tags) {
			queue = nil
		}
		select {
		case <-ctx.Done():
			if busy {
				<-done
			}
			for {
				select {
				case b := <-w.queue:
					pending = append(pending, b...)
					continue
				default:
				}
				break
			}
			w.flush(pending, &flusher{})
			if s.overBytes() {
				// what gathered during the last write may be a few rounds
				w.enforce()
			}
			return
		case <-prune.C:
			enforceDue = true
			if !busy && len(pending) == 0 {
				start()
			}
		case r := <-done:
			busy, spare = false, r.samples
			if r.tags > 0 {
				tags = r.tags
				round = w.roundFor(tags)
				w.round.Store(int64(round))
			}
			if due || enforceDue && len(pending) == 0 {
				start()
			}
		case b := <-queue:
			if len(pending) == 0 && timerC == nil {
				// the first batch starts the round
				if timer == nil {
					timer = time.NewTimer(round)
				} else {
					timer.Reset(round)
				}
				timerC = timer.C
			}
			pending = append(pending, b...)
			if len(pending) >= roundSamples(tags) {
				due = true
				if !busy {
					start()
				}
			}
		case <-timerC:
			timerC = nil
			due = true
			if !busy {
				start()
			}
		}
	}
}

// flusher is the writing goroutine's state, reused from round to round.
type flusher struct {
	part  map[string]int // tag -> transaction of the round
	names []string
	buf   []model.Sample
	offs  []int
}

// flush writes a round and returns how many tags it held. A transaction
// holds the nodes of every tag bucket it touches in memory (about 10 KB a
// tag with the page it writes), so a round of more than tagsPerTx tags is
// written as several transactions of contiguous tag names, each tag whole
// in one of them: the same pages are written, with a fraction of the
// memory. A crash between them loses only what the round would have lost.
func (w *Writer) flush(samples []model.Sample, f *flusher) (tags int) {
	if len(samples) == 0 {
		return 0
	}
	if f.part == nil {
		f.part = make(map[string]int)
	}
	clear(f.part)
	f.names = f.names[:0]
	for i := range samples {
		if _, ok := f.part[samples[i].Tag]; !ok {
			f.part[samples[i].Tag] = 0
			f.names = append(f.names, samples[i].Tag)
		}
	}
	tags = len(f.names)
	parts := (tags + tagsPerTx - 1) / tagsPerTx
	if parts <= 1 {
		w.write(samples)
		return tags
	}
	// contiguous names: each transaction also changes only its own share
	// of the pages of the bucket that holds the tag buckets
	slices.Sort(f.names)
	for i, n := range f.names {
		f.part[n] = i * parts / tags
	}
	// a stable counting sort into buf: a tag's samples keep their order
	f.offs = append(f.offs[:0], make([]int, 2*parts+1)...)
	start, next := f.offs[:parts+1], f.offs[parts+1:]
	for i := range samples {
		start[f.part[samples[i].Tag]+1]++
	}
	for p := 1; p <= parts; p++ {
		start[p] += start[p-1]
	}
	copy(next, start[:parts])
	f.buf = slices.Grow(f.buf[:0], len(samples))[:len(samples)]
	for _, sm := range samples {
		p := f.part[sm.Tag]
		f.buf[next[p]] = sm
		next[p]++
	}
	for p := range parts {
		w.write(f.buf[start[p]:start[p+1]])
	}
	clear(f.buf) // keep no strings alive between rounds
	return tags
}

// write stores samples in one transaction and counts them.
func (w *Writer) write(samples []model.Sample) {
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
