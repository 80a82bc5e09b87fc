package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"hazgate/internal/model"
)

// File layout (bbolt):
//
//	bucket "event": 8-byte big-endian seq -> stored event (codec.go)
//	bucket "data":  8-byte big-endian seq -> stored sample (codec.go)
//	bucket "meta":  the counters below, each an 8-byte big-endian uint64,
//	                written in the same transaction as the records they count.
var (
	metaBucket = []byte("meta")

	keyVersion       = []byte("version")
	keyBytes         = []byte("bytes")
	keyCorrupt       = []byte("corrupt")
	keyNext          = [2][]byte{model.StreamEvent: []byte("next.event"), model.StreamData: []byte("next.data")}
	keyCount         = [2][]byte{model.StreamEvent: []byte("count.event"), model.StreamData: []byte("count.data")}
	keyDropped       = [2][]byte{model.StreamEvent: []byte("dropped.event"), model.StreamData: []byte("dropped.data")}
	streamBucketName = [2][]byte{model.StreamEvent: []byte("event"), model.StreamData: []byte("data")}
)

// fileVersion is the layout version kept in meta "version".
const fileVersion = 1

// fillPercent: records are only appended at the end of a stream, so pages
// can be filled almost completely instead of bbolt's default half.
const fillPercent = 0.95

func bucketName(s model.Stream) ([]byte, bool) {
	if int(s) >= len(streamBucketName) {
		return nil, false
	}
	return streamBucketName[s], true
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func keySeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// state is the content of the meta bucket.
type state struct {
	next    [2]uint64 // next sequence number per stream, starts at 1
	count   [2]uint64 // records stored per stream
	dropped [2]uint64 // records dropped by limits per stream, ever
	bytes   uint64    // stored keys+values of both streams
	corrupt uint64    // damaged records removed, ever
}

func readUint(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func readState(meta *bolt.Bucket) state {
	var st state
	for _, s := range model.Streams {
		st.next[s] = max(readUint(meta, keyNext[s]), 1)
		st.count[s] = readUint(meta, keyCount[s])
		st.dropped[s] = readUint(meta, keyDropped[s])
	}
	st.bytes = readUint(meta, keyBytes)
	st.corrupt = readUint(meta, keyCorrupt)
	return st
}

// metaScratch holds the encoded counters during one transaction: bbolt
// keeps references to put values until the commit.
type metaScratch [9 * 8]byte

func writeState(meta *bolt.Bucket, st *state, scratch *metaScratch) error {
	i := 0
	put := func(k []byte, v uint64) error {
		buf := scratch[i : i+8 : i+8]
		i += 8
		binary.BigEndian.PutUint64(buf, v)
		return meta.Put(k, buf)
	}
	for _, s := range model.Streams {
		if err := put(keyNext[s], st.next[s]); err != nil {
			return err
		}
		if err := put(keyCount[s], st.count[s]); err != nil {
			return err
		}
		if err := put(keyDropped[s], st.dropped[s]); err != nil {
			return err
		}
	}
	if err := put(keyBytes, st.bytes); err != nil {
		return err
	}
	return put(keyCorrupt, st.corrupt)
}

// openBolt opens the bbolt file, turning bbolt's panics and memory faults
// on garbage files into errors wrapping ErrCorrupt.
func openBolt(path string, maxFileSize int) (db *bolt.DB, err error) {
	var (
		file    *os.File
		fileErr error
	)
	bo := &bolt.Options{
		Timeout:      time.Second,
		FreelistType: bolt.FreelistMapType,
		MaxSize:      maxFileSize,
		// On 64-bit, map the whole ceiling up front: bbolt then never
		// remaps while the file grows, and a remap is what makes the
		// writer wait for every open Read (and copies the dirty nodes).
		// 32-bit (linux/arm) keeps bbolt's growing map to spare the
		// address space.
		InitialMmapSize: initialMmapSize(maxFileSize),
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			file, fileErr = os.OpenFile(name, flag, perm)
			return file, fileErr
		},
	}
	// Pages beyond the end of a truncated file fault (SIGBUS) when touched;
	// make that a recoverable panic on this goroutine.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// bbolt did not get to close the file. Unlock explicitly: a
			// memory map of the file may survive the panic (it is leaked,
			// once), and it would keep the lock alive past Close.
			if file != nil {
				_ = syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
				_ = file.Close()
			}
			db = nil
			err = fmt.Errorf("%w: %s: bbolt panicked while opening it: %v", ErrCorrupt, path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, bo)
	if err == nil {
		return db, nil
	}
	var errno syscall.Errno
	switch {
	case fileErr != nil:
		return nil, fmt.Errorf("open buffer file %s: %w", path, err)
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("buffer file %s is locked by another process (another gateway on the same data directory?): %w", path, ErrLocked)
	case errors.As(err, &errno):
		// mmap, flock, I/O: the system's trouble, not the file's.
		return nil, fmt.Errorf("open buffer file %s: %w", path, err)
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
}

func initialMmapSize(maxFileSize int) int {
	if strconv.IntSize < 64 {
		return 0
	}
	return maxFileSize
}

// loadState checks the file's structure, creates the buckets of a new file
// and returns the meta state.
func loadState(db *bolt.DB, path string, log *slog.Logger, firstSeq [2]uint64) (st state, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: bbolt panicked while checking it: %v", ErrCorrupt, path, r)
		}
	}()
	fi, err := os.Stat(path)
	if err != nil {
		return st, fmt.Errorf("buffer file %s: %w", path, err)
	}
	fresh := false
	repair := false
	err = db.View(func(tx *bolt.Tx) error {
		// A file cut short (copy, full disk, broken storage) still has valid
		// meta pages but refers to pages past its end.
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: %s is %d bytes but its page map needs %d: truncated", ErrCorrupt, path, fi.Size(), tx.Size())
		}
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			for _, s := range model.Streams {
				if tx.Bucket(streamBucketName[s]) != nil {
					return fmt.Errorf("%w: %s has a %s bucket but no meta bucket", ErrCorrupt, path, s)
				}
			}
			fresh = true
			return nil
		}
		v := meta.Get(keyVersion)
		if len(v) != 8 {
			return fmt.Errorf("%w: %s: meta has no valid version", ErrCorrupt, path)
		}
		if ver := binary.BigEndian.Uint64(v); ver != fileVersion {
			// Not damage: a newer gateway wrote it. Do not move it aside.
			return fmt.Errorf("buffer file %s has layout version %d, this gateway reads version %d", path, ver, fileVersion)
		}
		st = readState(meta)
		for _, s := range model.Streams {
			bk := tx.Bucket(streamBucketName[s])
			if bk == nil {
				return fmt.Errorf("%w: %s: bucket %s missing", ErrCorrupt, path, s)
			}
			c := bk.Cursor()
			k, _ := c.Last()
			if k == nil {
				continue
			}
			if len(k) != 8 {
				return fmt.Errorf("%w: %s: bucket %s has a malformed key %x", ErrCorrupt, path, s, k)
			}
			// The counter and the records share every transaction, so this
			// cannot happen short of damage; never reuse a sequence number.
			if last := keySeq(k); st.next[s] <= last {
				log.Error("buffer meta sequence behind stored records; advancing it", "stream", s, "next", st.next[s], "last", last)
				st.next[s] = last + 1
				repair = true
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if !fresh && !repair {
		return st, nil
	}
	if fresh {
		st = state{next: [2]uint64{max(firstSeq[0], 1), max(firstSeq[1], 1)}}
	}
	var scratch metaScratch
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		for _, s := range model.Streams {
			if _, err := tx.CreateBucketIfNotExists(streamBucketName[s]); err != nil {
				return err
			}
		}
		if err := meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, fileVersion)); err != nil {
			return err
		}
		return writeState(meta, &st, &scratch)
	})
	if err != nil {
		return st, fmt.Errorf("initialise buffer file %s: %w", path, err)
	}
	return st, nil
}
