package history

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"time"

	"hazgate/internal/model"
)

// Chunks (layout 2). A tag's records are stored several to a bbolt key:
// the key is the time of the chunk's first record + kindChunk, the value
// a version byte and then the records in time order, each
//
//	flags   1 byte: quality (2 bits), aggregate, reason follows, reason
//	        as the last one given in the chunk; other bits must be 0
//	time    zigzag varint: delta of delta from the previous record (the
//	        first record's delta is from the key's time: 0), so a tag
//	        polled at a steady rate costs 1 byte
//	reason  uvarint length + bytes, only with the "reason follows" flag
//	count, bad, interval ^ previous interval: uvarints, aggregates only
//	min, max: floats, aggregates only (a raw sample's are its value)
//	value   float
//
// A float is XORed with the same field of the previous record and
// written as one byte (leading zero bytes << 4 | trailing zero bytes)
// and the bytes between; 0x80 alone means "unchanged". A reading that
// does not move costs 1 byte, an integer count a few, noise 8-9.
//
// One key per tag per round instead of one per sample is what makes the
// layout cheaper to write: bbolt's cost is per key and per page touched,
// and the leaf page of a tag holds a few chunks instead of 120 records.
// A writer appends to the tag's last chunk while it is under
// maxChunkBytes, so a small gateway (one sample per tag per round) packs
// chunks as well as a large one.
const (
	kindChunk     = 2
	chunkVersion  = 1
	maxChunkBytes = 512

	flagQuality    = 0x03
	flagAggregate  = 0x04
	flagReason     = 0x08
	flagSameReason = 0x10
	flagUnknown    = 0xe0

	floatSame = 0x80

	// maxQuality is the largest model.Quality (Good 0, Bad 1, Uncertain 2).
	maxQuality = max(model.Good, model.Bad, model.Uncertain)
)

// chunkState is what encoding the next record of a chunk depends on: the
// previous record's time, time step and fields, and the last reason.
type chunkState struct {
	t, dt         int64
	v, mn, mx, iv uint64
	reason        string
	n             int // records in the chunk
}

func appendFloat(buf []byte, prev, cur uint64) []byte {
	x := prev ^ cur
	if x == 0 {
		return append(buf, floatSame)
	}
	lz, tz := bits.LeadingZeros64(x)/8, bits.TrailingZeros64(x)/8
	buf = append(buf, byte(lz<<4|tz))
	x >>= 8 * tz
	for i := 8 - lz - tz - 1; i >= 0; i-- {
		buf = append(buf, byte(x>>(8*i)))
	}
	return buf
}

func readFloat(b []byte, prev uint64) (uint64, []byte, bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	h := b[0]
	if h == floatSame {
		return prev, b[1:], true
	}
	lz, tz := int(h>>4), int(h&0x0f)
	n := 8 - lz - tz
	if n < 1 || n > 8 || len(b) < 1+n {
		return 0, nil, false
	}
	var x uint64
	for _, c := range b[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	return prev ^ x<<(8*tz), b[1+n:], true
}

// newChunk starts the value of a chunk whose key time is kt.
func newChunk(buf []byte, kt int64) ([]byte, chunkState) {
	return append(buf, chunkVersion), chunkState{t: kt}
}

// appendRecord adds r to a chunk; r must not be older than the last
// record. A quality the model does not define is stored as Bad.
func appendRecord(buf []byte, st *chunkState, r Record) []byte {
	t := int64(timeKey(r.Time))
	q := r.Quality
	if q > maxQuality {
		q = model.Bad
	}
	flags := byte(q)
	if r.Aggregate() {
		flags |= flagAggregate
	}
	switch {
	case r.Reason == "":
	case r.Reason == st.reason:
		flags |= flagSameReason
	default:
		flags |= flagReason
	}
	buf = append(buf, flags)
	dt := t - st.t
	buf = binary.AppendVarint(buf, dt-st.dt)
	st.t, st.dt = t, dt
	if flags&flagReason != 0 {
		buf = binary.AppendUvarint(buf, uint64(len(r.Reason)))
		buf = append(buf, r.Reason...)
	}
	if r.Reason != "" {
		st.reason = r.Reason
	}
	v := math.Float64bits(r.Value)
	if flags&flagAggregate != 0 {
		iv := uint64(r.Interval)
		buf = binary.AppendUvarint(buf, uint64(r.Count))
		buf = binary.AppendUvarint(buf, uint64(r.Bad))
		buf = binary.AppendUvarint(buf, iv^st.iv)
		mn, mx := math.Float64bits(r.Min), math.Float64bits(r.Max)
		buf = appendFloat(buf, st.mn, mn)
		buf = appendFloat(buf, st.mx, mx)
		st.mn, st.mx, st.iv = mn, mx, iv
	} else {
		st.mn, st.mx = v, v
	}
	buf = appendFloat(buf, st.v, v)
	st.v = v
	st.n++
	return buf
}

// decodeChunk appends the records of the chunk v (key time kt) to out
// and returns the state to append after its last record. Whatever the
// bytes, it returns an error wrapping ErrCorrupt rather than panicking.
func decodeChunk(out []Record, tag string, kt int64, v []byte) ([]Record, chunkState, error) {
	st := chunkState{t: kt}
	bad := func(what string) ([]Record, chunkState, error) {
		return out, st, fmt.Errorf("%w: tag %s: chunk at %s: %s", ErrCorrupt, tag, time.Unix(0, kt).UTC().Format(time.RFC3339Nano), what)
	}
	if len(v) < 2 || v[0] != chunkVersion {
		return bad(fmt.Sprintf("%d bytes, version %d", len(v), v[:min(1, len(v))]))
	}
	b := v[1:]
	for len(b) > 0 {
		flags := b[0]
		b = b[1:]
		if flags&flagUnknown != 0 || flags&flagQuality > byte(maxQuality) || flags&flagReason != 0 && flags&flagSameReason != 0 {
			return bad(fmt.Sprintf("record %d: flags %#x", st.n, flags))
		}
		dod, n := binary.Varint(b)
		if n <= 0 {
			return bad(fmt.Sprintf("record %d: time", st.n))
		}
		b = b[n:]
		dt := st.dt + dod
		if (dod > 0 && dt < st.dt) || dt < 0 || st.t+dt < st.t {
			return bad(fmt.Sprintf("record %d: time goes back", st.n))
		}
		st.t, st.dt = st.t+dt, dt
		r := Record{Tag: tag, Time: time.Unix(0, st.t).UTC(), Quality: model.Quality(flags & flagQuality)}
		switch {
		case flags&flagReason != 0:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return bad(fmt.Sprintf("record %d: reason", st.n))
			}
			st.reason = string(b[n : n+int(l)])
			b = b[n+int(l):]
			r.Reason = st.reason
		case flags&flagSameReason != 0:
			if st.reason == "" {
				return bad(fmt.Sprintf("record %d: repeats a reason never given", st.n))
			}
			r.Reason = st.reason
		}
		var ok bool
		if flags&flagAggregate != 0 {
			var f [3]uint64
			for i := range f {
				u, n := binary.Uvarint(b)
				if n <= 0 {
					return bad(fmt.Sprintf("record %d: aggregate counts", st.n))
				}
				f[i], b = u, b[n:]
			}
			st.iv ^= f[2]
			if f[0] > math.MaxUint32 || f[1] > math.MaxUint32 || st.iv == 0 || st.iv > math.MaxInt64 {
				return bad(fmt.Sprintf("record %d: aggregate counts out of range", st.n))
			}
			r.Count, r.Bad, r.Interval = uint32(f[0]), uint32(f[1]), time.Duration(st.iv)
			if st.mn, b, ok = readFloat(b, st.mn); !ok {
				return bad(fmt.Sprintf("record %d: min", st.n))
			}
			if st.mx, b, ok = readFloat(b, st.mx); !ok {
				return bad(fmt.Sprintf("record %d: max", st.n))
			}
			r.Min, r.Max = math.Float64frombits(st.mn), math.Float64frombits(st.mx)
		}
		if st.v, b, ok = readFloat(b, st.v); !ok {
			return bad(fmt.Sprintf("record %d: value", st.n))
		}
		r.Value = math.Float64frombits(st.v)
		if flags&flagAggregate == 0 {
			st.mn, st.mx = st.v, st.v
			r.Min, r.Max = r.Value, r.Value
			if r.Quality == model.Bad {
				r.Bad = 1
			} else {
				r.Count = 1
			}
		}
		out = append(out, r)
		st.n++
	}
	return out, st, nil
}

// decodeEntry appends the records of one stored key to out: a chunk, or
// a single raw sample or aggregate of the first layout (files written
// before chunks keep them until retention removes them).
func decodeEntry(out []Record, tag string, k, v []byte) ([]Record, error) {
	if len(k) != keyLen {
		return out, fmt.Errorf("%w: tag %s: key of %d bytes", ErrCorrupt, tag, len(k))
	}
	if k[8] == kindChunk {
		out, _, err := decodeChunk(out, tag, int64(binary.BigEndian.Uint64(k[:8])), v)
		return out, err
	}
	r, err := decode(tag, k, v)
	if err != nil {
		return out, err
	}
	return append(out, r), nil
}

// recordFromSample is the raw record of a sample.
func recordFromSample(sm model.Sample) Record {
	r := Record{Tag: sm.Tag, Time: sm.Time, Value: sm.Value, Min: sm.Value, Max: sm.Value, Quality: sm.Quality, Reason: sm.Reason}
	if sm.Quality == model.Bad {
		r.Bad = 1
	} else {
		r.Count = 1
	}
	return r
}

// chunkKV is one key and value to store.
type chunkKV struct{ k, v []byte }

// encodeChunks cuts records (in time order) into chunks of about
// maxChunkBytes and appends them to out.
func encodeChunks(out []chunkKV, recs []Record) []chunkKV {
	var (
		buf []byte
		st  chunkState
		k   []byte
	)
	for _, r := range recs {
		if buf == nil || len(buf) >= maxChunkBytes {
			if buf != nil {
				out = append(out, chunkKV{k, buf})
			}
			k = makeKey(r.Time, kindChunk)
			buf, st = newChunk(make([]byte, 0, 64), int64(timeKey(r.Time)))
		}
		buf = appendRecord(buf, &st, r)
	}
	if buf != nil {
		out = append(out, chunkKV{k, buf})
	}
	return out
}

// countKinds counts raw samples and aggregates.
func countKinds(recs []Record) (raw, agg uint64) {
	for _, r := range recs {
		if r.Aggregate() {
			agg++
		} else {
			raw++
		}
	}
	return raw, agg
}
