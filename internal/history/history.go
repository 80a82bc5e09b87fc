// Package history keeps every sample the gateway acquired in a local bbolt
// file of its own (history.db in the data directory) for the retention
// period the regulator asks for (SAWS Order 40: monitoring records at least
// 30 days), so that an operator can export a tag's readings and the status
// page can draw a trend. It is not the delivery queue: the buffer package
// holds records until the platform has them; history keeps them after.
//
// File layout (bbolt):
//
//	bucket "tags": one nested bucket per tag name holding its raw samples
//	    in chunks (layout 2, chunk.go);
//	    key   = 8-byte big-endian time (Unix ns) of the chunk's first
//	            record + 1 kind byte (2 chunk), so one tag's records over
//	            a time window are one cursor Seek (and a step back to the
//	            chunk that reaches into it) and a forward walk;
//	    value = a chunk: several records, delta-coded. Files of layout 1
//	            hold one record per key (kind 0 raw sample, 1 aggregate,
//	            codec below); they are read as they are, and mixed with
//	            chunks once the gateway writes to them.
//	bucket "old": one nested bucket per tag holding what downsampling
//	    made of its oldest samples (aggregates, and raw samples alone in
//	    their interval), in chunks with the same keys. Kept apart so that
//	    both buckets only ever grow at the end and shrink at the front:
//	    bbolt's pages stay full instead of being left a sixth full by
//	    deletes in the middle. A read merges both in time order.
//	bucket "meta": counters, each an 8-byte big-endian uint64, written in
//	    the same transaction as the records they count, and the layout.
//
// Durability (relaxed, on purpose): the buffer is the durable copy for
// delivery. History coalesces samples for a round (Options.FlushEvery, 1 s
// by default, longer with many tags: see Writer) and writes them in one
// transaction with bbolt's normal fsync. A crash or power loss therefore
// loses at most the samples gathered and not yet flushed (about two
// rounds: the one gathered and the one being written); what was flushed survives,
// and the file is never left inconsistent (every commit is fsynced). The
// freelist is not synced (NoFreelistSync): it is rebuilt at open, which
// makes each commit cheaper.
//
// Bounds (retention.go): records older than MaxAge are deleted; when the
// records exceed MaxBytes, raw samples older than DownsampleAfter are
// replaced by one aggregate (min, max, mean, count) per DownsampleInterval
// and tag, oldest first; only when that is not enough are the oldest
// records deleted, which is counted and logged.
package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"hazgate/internal/model"
)

// File is the name of the history file inside the data directory.
const File = "history.db"

// Defaults for Options left zero.
const (
	DefaultMaxBytes           = 1 << 30
	DefaultDownsampleInterval = time.Minute
	DefaultFlushEvery         = time.Second
)

var (
	// ErrLocked is wrapped by Open's error when another process (a running
	// gateway) holds the file.
	ErrLocked = errors.New("history file is locked by another process")
	// ErrCorrupt is wrapped by errors about a damaged history file.
	ErrCorrupt = errors.New("history file is corrupt")
	// ErrReadOnly is returned by writes on a store opened read-only.
	ErrReadOnly = errors.New("history is open read-only")
	// ErrDisabled is returned by readers when the config keeps no history.
	ErrDisabled = errors.New("history is disabled (history.enabled: false)")
)

// Options configure a Store.
type Options struct {
	// MaxAge: records whose acquisition time is older are deleted; 0 = no age limit.
	MaxAge time.Duration
	// MaxBytes bounds the stored records (keys, values and bbolt's per-record
	// overhead, see recordOverhead); 0 = DefaultMaxBytes.
	MaxBytes int64
	// DownsampleAfter: raw samples older than this may be aggregated when the
	// bytes would not hold otherwise; 0 = any age.
	DownsampleAfter time.Duration
	// DownsampleInterval is the span of one aggregate; 0 = 1 minute.
	DownsampleInterval time.Duration
	// FlushEvery is how long the writer coalesces samples; 0 = 1 s.
	FlushEvery time.Duration
	// QueueBatches bounds the writer's queue (batches, see Writer); 0 = 256.
	QueueBatches int
	Logger       *slog.Logger     // nil = discard
	Now          func() time.Time // nil = time.Now; for tests
	// ReadOnly opens an existing file for reading (export while stopped).
	ReadOnly bool
}

// Store is one history file.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger

	// wmu serialises the writing side (Write, Enforce); st belongs to it.
	wmu sync.Mutex
	st  counters

	// shown is st as of the last commit, for Stats: the status page and
	// /metrics must not wait for a retention pass that holds wmu.
	shownMu sync.Mutex
	shown   counters

	// scratch of the writing side (under wmu), reused from round to round
	order []int32
	recs  []Record
	dec   []Record
}

// publish makes the counters of the last commit visible to Stats.
func (s *Store) publish() {
	s.shownMu.Lock()
	s.shown = s.st
	s.shownMu.Unlock()
}

var (
	tagsBucket = []byte("tags")
	oldBucket  = []byte("old")
	metaBucket = []byte("meta")

	keyBytes       = []byte("bytes")
	keyRaw         = []byte("raw")
	keyAgg         = []byte("aggregates")
	keyDownsampled = []byte("downsampled")    // raw samples folded into aggregates, ever
	keyDeleted     = []byte("deleted")        // records deleted for bytes within max_age, ever
	keyExpired     = []byte("expired")        // records deleted for age, ever
	keyWatermark   = []byte("downsampled.to") // raw before this time (Unix ns) is aggregated
	keyLayout      = []byte("layout")         // layoutChunks; absent in files of the first layout
)

// layoutChunks is the file layout this package writes: chunks of records
// (chunk.go). Layout 1, one record per key, had no layout key; its
// records are still read, so such a file needs no conversion.
const layoutChunks = 2

// counters is the content of the meta bucket.
type counters struct {
	bytes       uint64
	raw         uint64
	agg         uint64
	downsampled uint64
	deleted     uint64
	expired     uint64
	watermark   uint64
}

func (c *counters) fields() []struct {
	k []byte
	v *uint64
} {
	return []struct {
		k []byte
		v *uint64
	}{{keyBytes, &c.bytes}, {keyRaw, &c.raw}, {keyAgg, &c.agg}, {keyDownsampled, &c.downsampled},
		{keyDeleted, &c.deleted}, {keyExpired, &c.expired}, {keyWatermark, &c.watermark}}
}

func (c *counters) load(meta *bolt.Bucket) {
	for _, f := range c.fields() {
		if v := meta.Get(f.k); len(v) == 8 {
			*f.v = binary.BigEndian.Uint64(v)
		}
	}
}

func (c *counters) save(meta *bolt.Bucket) error {
	for _, f := range c.fields() {
		if err := meta.Put(f.k, binary.BigEndian.AppendUint64(nil, *f.v)); err != nil {
			return err
		}
	}
	return nil
}

// Open opens or creates the history file at path. Another process holding
// the file (a running gateway) makes it fail after one second with an
// error wrapping ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.DownsampleInterval <= 0 {
		opts.DownsampleInterval = DefaultDownsampleInterval
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	if opts.QueueBatches <= 0 {
		opts.QueueBatches = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("history file %s: %w", path, err)
		}
	}
	db, err := openBolt(path, opts.ReadOnly, mmapSize(opts))
	if err != nil {
		return nil, err
	}
	// With the map made up front bbolt grows the file in AllocSize steps
	// (16 MiB by default); a small history gets small steps.
	db.AllocSize = int(min(max(opts.MaxBytes/32, 1<<20), 16<<20))
	s := &Store{db: db, path: path, opts: opts, log: opts.Logger.With("component", "history")}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.publish()
	return s, nil
}

// OpenOrRecover is Open, except that a damaged file is moved aside (its
// name gets a ".corrupt-<time>" suffix) and a fresh one started: history
// must never keep the gateway from acquiring. movedTo names the moved file.
func OpenOrRecover(path string, opts Options) (s *Store, movedTo string, err error) {
	s, err = Open(path, opts)
	if err == nil || !errors.Is(err, ErrCorrupt) {
		return s, "", err
	}
	movedTo = fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(path, movedTo); rerr != nil {
		return nil, "", fmt.Errorf("%w (and moving it aside failed: %v)", err, rerr)
	}
	if opts.Logger != nil {
		opts.Logger.Error("history file was corrupt; moved aside, starting a new one", "path", path, "moved_to", movedTo, "err", err)
	}
	s, err = Open(path, opts)
	return s, movedTo, err
}

// mmapSize is what the writer maps up front. bbolt must remap when the
// file outgrows its map, and a remap waits for every open read: a long
// export from the status page would then stall the writer (and history
// would drop samples). On 64-bit, address space is plentiful: map twice
// MaxBytes, the most the file grows to. 32-bit (linux/arm) keeps bbolt's
// growing map to spare the address space.
func mmapSize(opts Options) int {
	if opts.ReadOnly || strconv.IntSize < 64 {
		return 0
	}
	return int(min(2*opts.MaxBytes+64<<20, 1<<40))
}

func openBolt(path string, readOnly bool, mmap int) (db *bolt.DB, err error) {
	if !readOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("history directory: %w", err)
		}
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %s: bbolt panicked while opening it: %v", ErrCorrupt, path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         time.Second,
		ReadOnly:        readOnly,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: mmap,
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("history file %s is locked by another process (a running gateway?): %w", path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return nil, fmt.Errorf("open history file %s: %w", path, err)
}

// load creates the buckets of a new file and reads the counters.
func (s *Store) load() (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: bbolt panicked while reading it: %v", ErrCorrupt, s.path, r)
		}
	}()
	if s.opts.ReadOnly {
		return s.db.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(metaBucket); m != nil {
				s.st.load(m)
				_, err := s.checkLayout(m)
				return err
			}
			return nil
		})
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{tagsBucket, oldBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("history file %s: %w", s.path, err)
			}
		}
		m, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return fmt.Errorf("history file %s: %w", s.path, err)
		}
		s.st.load(m)
		layout, err := s.checkLayout(m)
		if err != nil || layout == layoutChunks {
			return err
		}
		if s.st.raw+s.st.agg > 0 {
			s.log.Info("history file is of the first layout (one record per sample): its records are read as they are and leave with retention; new samples are stored in chunks",
				"path", s.path, "raw", s.st.raw, "aggregates", s.st.agg)
		}
		return m.Put(keyLayout, binary.BigEndian.AppendUint64(nil, layoutChunks))
	})
}

// checkLayout returns the file's layout (1 when it has no layout key) and
// an error wrapping ErrCorrupt for a layout this code does not know (a
// file of a newer gateway): OpenOrRecover then moves it aside, history
// never keeps the gateway from starting.
func (s *Store) checkLayout(meta *bolt.Bucket) (uint64, error) {
	v := meta.Get(keyLayout)
	if v == nil {
		return 1, nil
	}
	if len(v) != 8 || binary.BigEndian.Uint64(v) > layoutChunks {
		return 0, fmt.Errorf("%w: %s: layout %x is newer than this gateway reads (%d)", ErrCorrupt, s.path, v, layoutChunks)
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close history file %s: %w", s.path, err)
	}
	return nil
}

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// Options returns the options in effect (defaults filled in).
func (s *Store) Options() Options { return s.opts }

// Stats describe what the file holds.
type Stats struct {
	Bytes       int64  // stored records: keys + values + recordOverhead each
	FileSize    int64  // the bbolt file on disk
	Raw         uint64 // raw samples held
	Aggregates  uint64 // aggregates held
	Downsampled uint64 // raw samples folded into aggregates, over the file's life
	Deleted     uint64 // records deleted within max_age because of max_bytes, ever
	Expired     uint64 // records deleted for being older than max_age, ever
}

// Stats returns the counters; safe from any goroutine.
func (s *Store) Stats() Stats {
	s.shownMu.Lock()
	c := s.shown
	s.shownMu.Unlock()
	st := Stats{Bytes: int64(c.bytes), Raw: c.raw, Aggregates: c.agg, Downsampled: c.downsampled, Deleted: c.deleted, Expired: c.expired}
	if fi, err := os.Stat(s.path); err == nil {
		st.FileSize = fi.Size()
	}
	return st
}

// Record is one stored entry of a tag: a raw sample (Interval 0, Count 1)
// or an aggregate of the samples in [Time, Time+Interval).
type Record struct {
	Tag      string
	Time     time.Time     // acquisition time (UTC); start of the interval for an aggregate
	Interval time.Duration // 0 for a raw sample
	Value    float64       // the value; for an aggregate the mean of the samples that had one
	Min, Max float64       // equal to Value for a raw sample
	Count    uint32        // samples with a value (good or uncertain); 1 or 0 for a raw sample
	Bad      uint32        // samples of bad quality (no value) in an aggregate
	Quality  model.Quality // a raw sample's; for an aggregate the worst of its samples
	Reason   string        // a raw sample's reason for bad quality
}

// Aggregate says whether r stands for several samples.
func (r Record) Aggregate() bool { return r.Interval > 0 }

const (
	kindRaw       = 0
	kindAggregate = 1
	keyLen        = 9
	// recordOverhead is bbolt's leaf element header, counted with every key
	// (a chunk or a record of layout 1) so that Bytes tracks the pages filled.
	recordOverhead = 16
	rawFixed       = 1 + 8               // quality, value; reason follows
	aggLen         = 1 + 4 + 4 + 3*8 + 8 // quality, count, bad, min, max, mean, interval
)

func makeKey(t time.Time, kind byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, keyLen), timeKey(t))
	return append(k, kind)
}

// timeKey is t in Unix ns; times before 1970 (a clock that was never set)
// sort first rather than wrapping round.
func timeKey(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC()
}

func encodeRaw(sm model.Sample) []byte {
	v := make([]byte, 0, rawFixed+len(sm.Reason))
	v = append(v, byte(sm.Quality))
	v = binary.BigEndian.AppendUint64(v, math.Float64bits(sm.Value))
	return append(v, sm.Reason...)
}

func encodeAgg(r Record) []byte {
	v := make([]byte, 0, aggLen)
	v = append(v, byte(r.Quality))
	v = binary.BigEndian.AppendUint32(v, r.Count)
	v = binary.BigEndian.AppendUint32(v, r.Bad)
	for _, f := range []float64{r.Min, r.Max, r.Value} {
		v = binary.BigEndian.AppendUint64(v, math.Float64bits(f))
	}
	return binary.BigEndian.AppendUint64(v, uint64(r.Interval))
}

// decode turns a stored key and value into a Record of tag.
func decode(tag string, k, v []byte) (Record, error) {
	if len(k) != keyLen {
		return Record{}, fmt.Errorf("%w: tag %s: key of %d bytes", ErrCorrupt, tag, len(k))
	}
	r := Record{Tag: tag, Time: keyTime(k)}
	switch k[8] {
	case kindRaw:
		if len(v) < rawFixed {
			return Record{}, fmt.Errorf("%w: tag %s at %s: raw value of %d bytes", ErrCorrupt, tag, r.Time, len(v))
		}
		r.Quality = model.Quality(v[0])
		r.Value = math.Float64frombits(binary.BigEndian.Uint64(v[1:9]))
		r.Min, r.Max = r.Value, r.Value
		r.Reason = string(v[9:])
		if r.Quality == model.Bad {
			r.Bad = 1
		} else {
			r.Count = 1
		}
	case kindAggregate:
		if len(v) != aggLen {
			return Record{}, fmt.Errorf("%w: tag %s at %s: aggregate of %d bytes", ErrCorrupt, tag, r.Time, len(v))
		}
		r.Quality = model.Quality(v[0])
		r.Count = binary.BigEndian.Uint32(v[1:5])
		r.Bad = binary.BigEndian.Uint32(v[5:9])
		r.Min = math.Float64frombits(binary.BigEndian.Uint64(v[9:17]))
		r.Max = math.Float64frombits(binary.BigEndian.Uint64(v[17:25]))
		r.Value = math.Float64frombits(binary.BigEndian.Uint64(v[25:33]))
		r.Interval = time.Duration(binary.BigEndian.Uint64(v[33:41]))
	default:
		return Record{}, fmt.Errorf("%w: tag %s at %s: unknown record kind %d", ErrCorrupt, tag, r.Time, k[8])
	}
	return r, nil
}

func recordBytes(k, v []byte) uint64 { return uint64(len(k) + len(v) + recordOverhead) }

// seekKey is the smallest key at time t (Unix ns).
func seekKey(t uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, keyLen), t) }

func keyNanos(k []byte) uint64 { return binary.BigEndian.Uint64(k[:8]) }

// Write stores samples in one transaction (one fsync). Samples with an
// empty tag are skipped. A second sample of a tag with the same
// acquisition time replaces the first.
//
// A tag's samples of one call are appended to its last chunk while that
// is under maxChunkBytes, then to new chunks: one key per tag and round.
// Samples not younger than the tag's last stored one (a clock set back)
// are merged into the chunks they overlap, which are rewritten.
func (s *Store) Write(samples []model.Sample) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if len(samples) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	st := s.st
	// by tag, then time; stable, so that of two samples at one time the
	// later given is the later here and wins
	order := s.order[:0]
	for i := range samples {
		if samples[i].Tag != "" {
			order = append(order, int32(i))
		}
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		if c := strings.Compare(samples[a].Tag, samples[b].Tag); c != 0 {
			return c
		}
		return cmpTime(timeKey(samples[a].Time), timeKey(samples[b].Time))
	})
	s.order = order
	err := s.db.Update(func(tx *bolt.Tx) error {
		tags := tx.Bucket(tagsBucket)
		for i := 0; i < len(order); {
			tag := samples[order[i]].Tag
			recs := s.recs[:0]
			for ; i < len(order) && samples[order[i]].Tag == tag; i++ {
				r := recordFromSample(samples[order[i]])
				if n := len(recs); n > 0 && timeKey(recs[n-1].Time) == timeKey(r.Time) {
					recs[n-1] = r
					continue
				}
				recs = append(recs, r)
			}
			s.recs = recs
			if err := s.writeTag(tags, tag, recs, &st); err != nil {
				return fmt.Errorf("tag %s: %w", tag, err)
			}
		}
		return st.save(tx.Bucket(metaBucket))
	})
	clear(s.recs[:cap(s.recs)]) // keep no reasons alive between rounds
	if err != nil {
		return fmt.Errorf("history: write %d samples: %w", len(samples), err)
	}
	s.st = st
	s.publish()
	return nil
}

func cmpTime(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writeTag stores the raw records of one tag (in time order, no two at
// one time) inside a write transaction.
func (s *Store) writeTag(tags *bolt.Bucket, tag string, recs []Record, st *counters) error {
	b := tags.Bucket([]byte(tag))
	if b == nil {
		var err error
		if b, err = tags.CreateBucket([]byte(tag)); err != nil {
			return err
		}
	}
	// records arrive in time order per tag: fill pages up
	b.FillPercent = 0.9
	first := timeKey(recs[0].Time)
	if k, v := b.Cursor().Last(); len(k) == keyLen {
		lastT := keyNanos(k)
		if k[8] == kindChunk {
			var (
				cs  chunkState
				err error
			)
			s.dec, cs, err = decodeChunk(s.dec[:0], tag, int64(lastT), v)
			if err == nil {
				lastT = uint64(cs.t)
				if first > lastT && len(v) < maxChunkBytes && keyNanos(k) >= st.watermark {
					nv := append(make([]byte, 0, len(v)+12*len(recs)), v...)
					n := 0
					for n < len(recs) && len(nv) < maxChunkBytes {
						nv = appendRecord(nv, &cs, recs[n])
						n++
					}
					k = bytes.Clone(k)
					if err := b.Put(k, nv); err != nil {
						return err
					}
					st.bytes += recordBytes(k, nv) - recordBytes(k, v)
					st.raw += uint64(n)
					recs = recs[n:]
				}
			}
			// a damaged last chunk is left as it is (Range reports it);
			// new samples go to chunks of their own
		} else if k[8] == kindRaw {
			// a sample of the first layout
			lastT = keyNanos(k)
		}
		if len(recs) > 0 && timeKey(recs[0].Time) <= lastT {
			return s.mergeTag(b, tag, recs, st)
		}
	}
	return putChunks(b, recs, st)
}

// putChunks stores records as new chunks and counts them.
func putChunks(b *bolt.Bucket, recs []Record, st *counters) error {
	for _, kv := range encodeChunks(nil, recs) {
		if err := b.Put(kv.k, kv.v); err != nil {
			return err
		}
		st.bytes += recordBytes(kv.k, kv.v)
	}
	raw, agg := countKinds(recs)
	st.raw += raw
	st.agg += agg
	return nil
}

// entryBefore is the entry just before the first key at or after t, or
// nil.
func entryBefore(b *bolt.Bucket, t uint64) (k, v []byte) {
	c := b.Cursor()
	if k, _ := c.Seek(seekKey(t)); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// mergeTag merges raw records into the chunks of b that overlap their
// time span: those are decoded, deleted and written again with the new
// records in place (a new record replaces a stored one at the same time).
func (s *Store) mergeTag(b *bolt.Bucket, tag string, recs []Record, st *counters) error {
	a, z := timeKey(recs[0].Time), timeKey(recs[len(recs)-1].Time)
	var (
		old  []Record
		keys [][]byte
		size uint64
		err  error
	)
	if k, v := entryBefore(b, a); len(k) == keyLen {
		n := len(old)
		if old, err = decodeEntry(old, tag, k, v); err != nil {
			return err
		}
		if len(old) > n && timeKey(old[len(old)-1].Time) >= a {
			keys, size = append(keys, bytes.Clone(k)), size+recordBytes(k, v)
		} else {
			old = old[:n]
		}
	}
	c := b.Cursor()
	for k, v := c.Seek(seekKey(a)); k != nil; k, v = c.Next() {
		if len(k) != keyLen {
			continue
		}
		if keyNanos(k) > z {
			break
		}
		if old, err = decodeEntry(old, tag, k, v); err != nil {
			return err
		}
		keys, size = append(keys, bytes.Clone(k)), size+recordBytes(k, v)
	}
	merged := make([]Record, 0, len(old)+len(recs))
	i, j := 0, 0
	for i < len(old) || j < len(recs) {
		switch {
		case j == len(recs) || i < len(old) && timeKey(old[i].Time) < timeKey(recs[j].Time):
			merged = append(merged, old[i])
			i++
		default:
			if i < len(old) && timeKey(old[i].Time) == timeKey(recs[j].Time) {
				i++ // replaced
			}
			merged = append(merged, recs[j])
			j++
		}
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	raw, agg := countKinds(old)
	st.raw -= raw
	st.agg -= agg
	st.bytes -= size
	return putChunks(b, merged, st)
}

// recIter walks the records of one tag bucket in time order from a time
// on.
type recIter struct {
	tag    string
	c      *bolt.Cursor
	nk, nv []byte // the next entry to decode
	buf    []Record
	i      int
	from   uint64
}

func newRecIter(tag string, b *bolt.Bucket, from uint64) (*recIter, error) {
	it := &recIter{tag: tag, c: b.Cursor(), from: from}
	it.nk, it.nv = it.c.Seek(seekKey(from))
	// the entry before may hold records from `from` on
	if k, v := entryBefore(b, from); len(k) == keyLen {
		if err := it.load(k, v); err != nil {
			return nil, err
		}
	}
	return it, nil
}

func (it *recIter) load(k, v []byte) error {
	recs, err := decodeEntry(it.buf[:0], it.tag, k, v)
	if err != nil {
		return err
	}
	it.buf, it.i = recs, 0
	for it.i < len(recs) && timeKey(recs[it.i].Time) < it.from {
		it.i++
	}
	return nil
}

// peek returns the next record, or nil at the end.
func (it *recIter) peek() (*Record, error) {
	for it.i >= len(it.buf) {
		if it.nk == nil {
			return nil, nil
		}
		k, v := it.nk, it.nv
		it.nk, it.nv = it.c.Next()
		if len(k) != keyLen {
			continue
		}
		if err := it.load(k, v); err != nil {
			return nil, err
		}
	}
	return &it.buf[it.i], nil
}

// Range calls fn with every record of tag whose time is in [from, to), in
// time order, until fn returns an error (returned as is). The read is one
// consistent bbolt view; fn must not call the store's writing side. A
// damaged chunk ends the walk with an error wrapping ErrCorrupt.
func (s *Store) Range(tag string, from, to time.Time, fn func(Record) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		var its []*recIter
		for _, root := range [][]byte{oldBucket, tagsBucket} {
			if r := tx.Bucket(root); r != nil {
				if b := r.Bucket([]byte(tag)); b != nil {
					it, err := newRecIter(tag, b, timeKey(from))
					if err != nil {
						return err
					}
					its = append(its, it)
				}
			}
		}
		end := timeKey(to)
		for {
			var best *recIter
			var bestRec *Record
			for _, it := range its {
				r, err := it.peek()
				if err != nil {
					return err
				}
				if r != nil && (bestRec == nil || r.Time.Before(bestRec.Time)) {
					best, bestRec = it, r
				}
			}
			if best == nil || timeKey(bestRec.Time) >= end {
				return nil
			}
			best.i++
			if err := fn(*bestRec); err != nil {
				return err
			}
		}
	})
}

// Span is the time of the oldest and the newest record of tag; both are
// zero when it has none.
func (s *Store) Span(tag string) (first, last time.Time, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, root := range [][]byte{oldBucket, tagsBucket} {
			r := tx.Bucket(root)
			if r == nil {
				continue
			}
			b := r.Bucket([]byte(tag))
			if b == nil {
				continue
			}
			c := b.Cursor()
			// a key's time is its first record's
			if k, _ := c.First(); len(k) == keyLen && (first.IsZero() || keyTime(k).Before(first)) {
				first = keyTime(k)
			}
			if k, v := c.Last(); len(k) == keyLen {
				recs, err := decodeEntry(nil, tag, k, v)
				if err != nil {
					return err
				}
				if l := recs[len(recs)-1].Time; l.After(last) {
					last = l
				}
			}
		}
		return nil
	})
	return first, last, err
}

// Tags lists the tags that have records, in name order.
func (s *Store) Tags() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		tags := tx.Bucket(tagsBucket)
		if tags == nil {
			return nil
		}
		return tags.ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}
