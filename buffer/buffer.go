// Package buffer is hazgate's durable on-disk queue between acquisition and
// the uplink. It keeps every event and sample in a bbolt file until the
// uplink says the broker acknowledged it.
//
// Durability: Append returns nil only after the bbolt commit (fsync) that
// holds its records; from then on they survive kill -9 and power loss.
// Concurrent Appends are group-committed: one writer goroutine puts all
// pending appends and acks into one transaction and one fsync.
//
// Delivery is at least once: if Append's context ends before the commit,
// Append returns ctx.Err() but the records may still be committed.
//
// Bounds: the buffer holds at most Options.MaxBytes of records and drops
// telemetry older than Options.MaxAge. It drops the oldest telemetry first,
// events only when no telemetry is left, and records every drop as a
// model.Gap event in the event stream. See README.md.
//
// Damaged records: every stored value carries a CRC32C. A record that fails
// it is skipped by Read (logged), deleted by the writer with a Gap event of
// cause "corrupt record", and counted in Stats.CorruptRecords. A damaged file
// makes Open fail with an error wrapping ErrCorrupt; OpenOrRecover moves such
// a file aside and starts a fresh one.
package buffer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"hazgate/internal/model"
)

// DefaultMaxBytes is the record byte limit when Options.MaxBytes is 0.
const DefaultMaxBytes = 256 << 20

var (
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("buffer is closed")
	// ErrCorrupt is wrapped by errors about a damaged buffer file.
	ErrCorrupt = errors.New("buffer file is corrupt")
	// ErrLocked is wrapped by Open's error when another process holds the file.
	ErrLocked = errors.New("buffer file is locked by another process")
	// ErrNotStored is wrapped by Append's error when its records were
	// withdrawn before any commit: they are not in the buffer.
	ErrNotStored = errors.New("records not stored")
)

// Options configure a Buffer.
type Options struct {
	MaxBytes int64            // limit on stored record bytes (keys+values); beyond it the oldest telemetry is dropped; 0 = 256 MiB
	MaxAge   time.Duration    // telemetry whose acquisition time is older is dropped; 0 = no age limit
	Logger   *slog.Logger     // nil = discard
	Now      func() time.Time // nil = time.Now; for tests

	// firstSeq is the first sequence number of each stream when the file
	// is new; 0 means 1. OpenOrRecover sets it above every number the
	// damaged file may have handed out.
	firstSeq [2]uint64
}

// StreamStats describes one stream's stored records.
type StreamStats struct {
	Records    uint64    // records stored now
	OldestSeq  uint64    // 0 when empty
	NewestSeq  uint64    // 0 when empty
	NextSeq    uint64    // the sequence number the next record of this stream gets
	OldestTime time.Time // acquisition time of the oldest record; zero when empty (or damaged)
	Dropped    uint64    // records dropped by the limits over the file's life
}

// Stats is a snapshot of the buffer.
type Stats struct {
	Event, Data    StreamStats
	Bytes          int64  // stored record bytes (keys+values), what MaxBytes limits
	Dropped        uint64 // Event.Dropped + Data.Dropped
	CorruptRecords uint64 // damaged records found and removed over the file's life
	Commits        uint64 // write transactions committed since Open
	FileSize       int64  // size of the bbolt file on disk
}

// Stream returns the stats of stream s.
func (s Stats) Stream(st model.Stream) StreamStats {
	if st == model.StreamData {
		return s.Data
	}
	return s.Event
}

// Buffer is an open buffer file. All methods are safe for concurrent use.
type Buffer struct {
	db     *bolt.DB
	path   string
	opts   Options
	log    *slog.Logger
	notify chan struct{}
	// durable is per stream the next sequence number after the last
	// commit that returned: every record below it is on disk. bbolt lets
	// a reader see a commit as soon as its meta page is written, before
	// the fsync of that page; Read stops below durable, so that nothing
	// is published that a power loss could still take back (its numbers
	// would then be handed out again, to other records).
	durable [2]atomic.Uint64
	// skipped is per stream the range OpenOrRecover skipped; set before
	// the Buffer is shared, read-only after.
	skipped [2][2]uint64

	mu      sync.Mutex
	closed  bool
	pending []*appendReq // appends waiting for the writer
	acks    []ackRange   // acks waiting for the writer
	damaged []recordRef  // records Read found damaged, for the writer to remove

	wake       chan struct{} // capacity 1: there is work for the writer
	stop       chan struct{} // closed by Close
	writerDone chan struct{}

	commits atomic.Uint64
	w       writer // owned by the writer goroutine

	// ageAllowance (nanoseconds) lengthens the age limit by the forward
	// steps of the wall clock seen since the data stream was last empty
	// (ClockStepped): records stamped before such a step look older than
	// they are, and must not be dropped for it.
	ageAllowance atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// ClockStepped tells the buffer that the wall clock jumped by offset
// (positive: forward), as uplink.ClockMonitor detects. A forward step of a
// day would otherwise make a 24 h age limit drop the whole backlog as "too
// old" although nothing aged; so the age limit is lengthened by every
// forward step until the data stream next runs empty. Records stored after
// the step may be kept that much longer, which the byte limit still bounds.
// Backward steps need nothing: records only look younger.
func (b *Buffer) ClockStepped(offset time.Duration) {
	if offset > 0 {
		b.ageAllowance.Add(int64(offset))
	}
}

type appendReq struct {
	events  encoded
	samples encoded
	done    chan error // capacity 1, so the writer never blocks on a waiter that left
}

// encoded holds the stored values of one Append contiguously: value i is
// buf[ends[i-1]:ends[i]]. One allocation per batch instead of per record.
type encoded struct {
	buf  []byte
	ends []int
}

func (e *encoded) len() int { return len(e.ends) }

func (e *encoded) at(i int) []byte {
	start := 0
	if i > 0 {
		start = e.ends[i-1]
	}
	return e.buf[start:e.ends[i]:e.ends[i]]
}

type ackRange struct {
	stream      model.Stream
	first, last uint64
}

type recordRef struct {
	stream model.Stream
	seq    uint64
}

// Open opens or creates the buffer file at path. A second process opening
// the same file gets an error wrapping ErrLocked after one second; a damaged
// file gives an error wrapping ErrCorrupt.
func Open(path string, opts Options) (*Buffer, error) {
	return open(path, opts, 0)
}

// open takes maxFileSize to let tests make bbolt's hard ceiling small;
// 0 means 2*MaxBytes + 32 MiB.
func open(path string, opts Options, maxFileSize int) (*Buffer, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxAge < 0 {
		opts.MaxAge = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if maxFileSize <= 0 {
		// bbolt refuses to allocate within one growth step (up to 16 MiB)
		// of MaxSize, hence 32 MiB on top of twice the record bytes.
		maxFileSize = int(min(2*opts.MaxBytes+32<<20, int64(^uint(0)>>1)))
	}
	db, err := openBolt(path, maxFileSize)
	if err != nil {
		return nil, err
	}
	// bbolt fsyncs the file but not the directory entry of a file it just
	// created; without this a power loss could lose the whole new file.
	if err := syncDir(filepath.Dir(path)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("buffer file %s: sync directory: %w", path, err)
	}
	st, err := loadState(db, path, opts.Logger, opts.firstSeq)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	b := &Buffer{
		db:         db,
		path:       path,
		opts:       opts,
		log:        opts.Logger.With("component", "buffer"),
		notify:     make(chan struct{}, 1),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	b.w.state = st
	b.publishDurable(&st)
	go b.run()
	return b, nil
}

// OpenOrRecover opens the buffer at path like Open. If the file is damaged
// (Open's error wraps ErrCorrupt) it renames the file to
// path+".corrupt-<UTC time>", keeps it for inspection, opens a fresh buffer
// and returns where the damaged file went, so the caller can raise an event.
// Sequence numbers of the fresh buffer start at 1 again.
func OpenOrRecover(path string, opts Options) (b *Buffer, movedTo string, err error) {
	b, err = Open(path, opts)
	if err == nil || !errors.Is(err, ErrCorrupt) {
		return b, "", err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	// Sequence numbers must not start again at 1: the platform has the
	// damaged file's numbers and would drop new records that reuse them
	// as duplicates, alarms included. Go on above what the damaged file
	// still tells, and above a floor from the clock that no gateway can
	// have reached (a million records a second since 1970) when it tells
	// nothing.
	salvaged, oldest := salvageSeqs(path)
	var first [2]uint64
	for _, s := range model.Streams {
		first[s] = max(salvaged[s], clockFloor(now()), 1)
	}
	movedTo = path + ".corrupt-" + now().UTC().Format("20060102T150405.000Z")
	if _, statErr := os.Lstat(movedTo); statErr == nil {
		movedTo += fmt.Sprintf("-%d", time.Now().UnixNano())
	}
	if rerr := os.Rename(path, movedTo); rerr != nil {
		return nil, "", fmt.Errorf("%w; moving it aside failed: %w", err, rerr)
	}
	if opts.Logger != nil {
		opts.Logger.Error("buffer file is damaged; moved it aside and started a fresh one",
			"path", path, "moved_to", movedTo, "first_event_seq", first[model.StreamEvent], "first_data_seq", first[model.StreamData], "err", err)
	}
	opts.firstSeq = first
	b, err = Open(path, opts)
	if err != nil {
		return nil, movedTo, fmt.Errorf("open fresh buffer after moving the damaged one to %s: %w", movedTo, err)
	}
	for _, s := range model.Streams {
		// Numbers below first that the platform may not have seen: from
		// the damaged file's oldest record (1 when it told nothing).
		if from := max(oldest[s], 1); from < first[s] {
			b.skipped[s] = [2]uint64{from, first[s] - 1}
		}
	}
	return b, movedTo, nil
}

// clockFloor is a sequence number above any a buffer can have handed out
// by t: a million a second since 1970. Zero for a clock before 2025 (a box
// without a battery-backed clock, before NTP): then it proves nothing.
func clockFloor(t time.Time) uint64 {
	if t.Year() < 2025 {
		return 0
	}
	return uint64(t.UnixMicro())
}

// salvageSeqs reads what it can of a damaged buffer file: per stream the
// next sequence number (from the meta bucket and the last key) and the
// oldest stored one. Zero where it could read nothing.
func salvageSeqs(path string) (next, oldest [2]uint64) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { _ = recover() }() // damage: keep what was read
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return next, oldest
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		for _, s := range model.Streams {
			if meta := tx.Bucket(metaBucket); meta != nil {
				next[s] = max(next[s], readUint(meta, keyNext[s]))
			}
			if bk := tx.Bucket(streamBucketName[s]); bk != nil {
				c := bk.Cursor()
				if k, _ := c.First(); len(k) == 8 {
					oldest[s] = keySeq(k)
				}
				if k, _ := c.Last(); len(k) == 8 {
					next[s] = max(next[s], keySeq(k)+1)
				}
			}
		}
		return nil
	})
	return next, oldest
}

// SkippedAtRecovery is, for a buffer that OpenOrRecover started afresh,
// the range of sequence numbers of stream s that the platform may miss:
// from the damaged file's oldest record to just below the fresh file's
// first number. Zero when nothing was skipped.
func (b *Buffer) SkippedAtRecovery(s model.Stream) (first, last uint64) {
	if int(s) >= len(b.skipped) {
		return 0, 0
	}
	return b.skipped[s][0], b.skipped[s][1]
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append stores events and samples durably and returns only after the
// commit (fsync) that holds them. Concurrent calls share one commit. Each
// record gets the next sequence number of its stream.
//
// If ctx ends while the records still wait for the writer (it is busy
// with an earlier commit, say on a stalled disk), Append withdraws them and
// returns an error wrapping both ErrNotStored and ctx.Err(): a retry stores
// them once. If the writer has them already, Append returns ctx.Err() and
// the records may still be committed (a caller that retries may store them
// twice, under new sequence numbers).
func (b *Buffer) Append(ctx context.Context, events []model.Event, samples []model.Sample) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &appendReq{done: make(chan error, 1)}
	if err := encodeEvents(&req.events, events); err != nil {
		return err
	}
	encodeSamples(&req.samples, samples)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if len(events)+len(samples) == 0 {
		b.mu.Unlock()
		return nil
	}
	b.pending = append(b.pending, req)
	b.mu.Unlock()
	b.kick()

	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := slices.Index(b.pending, req); i >= 0 {
		// Not taken: withdraw it, or every retry of a caller facing a
		// stalled disk would queue one more copy of its batch.
		b.pending = slices.Delete(b.pending, i, i+1)
		return fmt.Errorf("%w: %w", ErrNotStored, ctx.Err())
	}
	select {
	case err := <-req.done: // committed (or failed) meanwhile
		return err
	default:
		return ctx.Err()
	}
}

func encodeSamples(dst *encoded, samples []model.Sample) {
	if len(samples) == 0 {
		return
	}
	size := 0
	for i := range samples {
		size += sampleSize(&samples[i])
	}
	dst.buf = make([]byte, 0, size)
	dst.ends = make([]int, len(samples))
	for i := range samples {
		dst.buf = appendSample(dst.buf, &samples[i])
		dst.ends[i] = len(dst.buf)
	}
}

func encodeEvents(dst *encoded, events []model.Event) error {
	if len(events) == 0 {
		return nil
	}
	dst.ends = make([]int, len(events))
	for i := range events {
		var err error
		if dst.buf, err = appendEvent(dst.buf, &events[i]); err != nil {
			return err
		}
		dst.ends[i] = len(dst.buf)
	}
	return nil
}

func (b *Buffer) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Read returns up to max records of stream with Seq > after, in sequence
// order. A damaged record is skipped (and logged, and queued for removal
// with a Gap event), never returned and never a panic.
func (b *Buffer) Read(stream model.Stream, after uint64, max int) (recs []model.Record, err error) {
	name, ok := bucketName(stream)
	if !ok {
		return nil, fmt.Errorf("buffer read: unknown stream %v", stream)
	}
	if max <= 0 || after == ^uint64(0) {
		return nil, nil
	}
	// A damaged page may point outside the mapped file; turn that fault
	// into a panic we can recover from instead of a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			recs = nil
			err = fmt.Errorf("buffer read %s: %w: bbolt panicked: %v", stream, ErrCorrupt, r)
		}
	}()
	var damaged []recordRef
	durable := b.durable[stream].Load()
	err = b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(name)
		if bk == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
		}
		recs = make([]model.Record, 0, min(max, 1024))
		c := bk.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(recs) < max; k, v = c.Next() {
			if len(k) != 8 {
				b.log.Error("buffer record with a malformed key skipped", "stream", stream, "key", fmt.Sprintf("%x", k))
				continue
			}
			seq := keySeq(k)
			if seq >= durable {
				break // committed, perhaps not yet on disk
			}
			r, derr := decodeRecord(stream, seq, v)
			if derr != nil {
				b.log.Error("damaged buffer record skipped", "stream", stream, "seq", seq, "err", derr)
				damaged = append(damaged, recordRef{stream: stream, seq: seq})
				continue
			}
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("buffer read %s: %w", stream, err)
	}
	if len(damaged) > 0 {
		b.mu.Lock()
		if !b.closed {
			b.queueDamaged(damaged)
		}
		b.mu.Unlock()
		b.kick()
	}
	return recs, nil
}

// Ack says the broker acknowledged records first..last (inclusive) of
// stream. The writer deletes them in its next commit; Ack does not wait.
// Acking records that are gone (or never existed) is harmless.
func (b *Buffer) Ack(stream model.Stream, first, last uint64) {
	if _, ok := bucketName(stream); !ok || last == 0 || first > last {
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.log.Warn("ack after close ignored", "stream", stream, "first", first, "last", last)
		return
	}
	b.acks = append(b.acks, ackRange{stream: stream, first: max(first, 1), last: last})
	b.mu.Unlock()
	b.kick()
}

// Notify returns a channel (capacity 1) that receives after each commit
// that added records. Sends never block: one pending signal stands for any
// number of commits.
func (b *Buffer) Notify() <-chan struct{} { return b.notify }

// Stats returns a snapshot. Record counts and byte totals come from the
// file's meta bucket, so they are exact and consistent with the records.
func (b *Buffer) Stats() Stats {
	s := Stats{Commits: b.commits.Load()}
	if fi, err := os.Stat(b.path); err == nil {
		s.FileSize = fi.Size()
	}
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				b.log.Error("buffer stats: bbolt panicked", "panic", r)
			}
		}()
		err := b.db.View(func(tx *bolt.Tx) error {
			meta := tx.Bucket(metaBucket)
			if meta == nil {
				return fmt.Errorf("%w: meta bucket missing", ErrCorrupt)
			}
			st := readState(meta)
			s.Bytes = int64(st.bytes)
			s.CorruptRecords = st.corrupt
			for _, stream := range model.Streams {
				ss := StreamStats{Records: st.count[stream], NextSeq: st.next[stream], Dropped: st.dropped[stream]}
				name, _ := bucketName(stream)
				if bk := tx.Bucket(name); bk != nil {
					c := bk.Cursor()
					if k, v := c.First(); k != nil {
						ss.OldestSeq = keySeq(k)
						ss.OldestTime, _ = recordTime(stream, v)
						lk, _ := c.Last()
						ss.NewestSeq = keySeq(lk)
					}
				}
				if stream == model.StreamData {
					s.Data = ss
				} else {
					s.Event = ss
				}
				s.Dropped += ss.Dropped
			}
			return nil
		})
		if err != nil {
			b.log.Error("buffer stats", "err", err)
		}
	}()
	return s
}

// Close commits pending appends and acks, stops the writer and closes the
// file. Append after Close returns ErrClosed. Close is idempotent.
func (b *Buffer) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
		<-b.writerDone
		if err := b.db.Close(); err != nil {
			b.closeErr = fmt.Errorf("close buffer file %s: %w", b.path, err)
		}
	})
	return b.closeErr
}

// publishDurable makes the sequence numbers below st's visible to Read:
// called after a commit returned (data and meta fsynced).
func (b *Buffer) publishDurable(st *state) {
	for _, s := range model.Streams {
		b.durable[s].Store(st.next[s])
	}
}

// queueDamaged queues damaged records for removal, each once: while
// commits fail, every Read finds the same ones again. Call with b.mu held.
func (b *Buffer) queueDamaged(refs []recordRef) {
	for _, r := range refs {
		if !slices.Contains(b.damaged, r) {
			b.damaged = append(b.damaged, r)
		}
	}
}
