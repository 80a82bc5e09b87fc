package buffer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"hazgate/internal/model"
)

// formatVersion is the first byte of every stored value. A reader that
// finds another version refuses the record instead of guessing.
const formatVersion = 1

// crcLen is the size of the CRC32C (Castagnoli) that ends every value. It
// covers every byte before it, the version byte included.
const crcLen = 4

// zeroTimeNanos stands for time.Time{}, which has no UnixNano.
const zeroTimeNanos = math.MinInt64

// sampleFixedLen is version + time + value + quality.
const sampleFixedLen = 1 + 8 + 8 + 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord says a stored value failed its checksum or did not decode.
var errBadRecord = errors.New("damaged record")

// Stored sample layout (all integers big-endian):
//
//	byte     version (1)
//	int64    acquisition time, unix nanoseconds (MinInt64 = zero time)
//	uint64   value, IEEE 754 bits
//	byte     quality
//	uvarint  len(tag)    + tag bytes
//	uvarint  len(device) + device bytes
//	uvarint  len(reason) + reason bytes
//	uint32   CRC32C of all bytes above

// sampleSize is the exact stored size of s.
func sampleSize(s *model.Sample) int {
	return sampleFixedLen + strLen(s.Tag) + strLen(s.Device) + strLen(s.Reason) + crcLen
}

func strLen(s string) int {
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(len(s))) + len(s)
}

// appendSample appends the stored form of s to dst.
func appendSample(dst []byte, s *model.Sample) []byte {
	start := len(dst)
	nanos := int64(zeroTimeNanos)
	if !s.Time.IsZero() {
		nanos = s.Time.UnixNano()
	}
	dst = append(dst, formatVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(nanos))
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(s.Value))
	dst = append(dst, byte(s.Quality))
	dst = appendString(dst, s.Tag)
	dst = appendString(dst, s.Device)
	dst = appendString(dst, s.Reason)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// checkValue verifies the version byte and the CRC and returns the payload
// between them.
func checkValue(v []byte) ([]byte, error) {
	if len(v) < 1+crcLen {
		return nil, fmt.Errorf("%w: %d bytes is too short", errBadRecord, len(v))
	}
	body := v[:len(v)-crcLen]
	want := binary.BigEndian.Uint32(v[len(v)-crcLen:])
	if got := crc32.Checksum(body, castagnoli); got != want {
		return nil, fmt.Errorf("%w: crc32c %08x, stored %08x", errBadRecord, got, want)
	}
	if body[0] != formatVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", errBadRecord, body[0])
	}
	return body[1:], nil
}

// decodeSample is the inverse of appendSample.
func decodeSample(v []byte) (model.Sample, error) {
	var s model.Sample
	p, err := checkValue(v)
	if err != nil {
		return s, err
	}
	if len(p) < sampleFixedLen-1 {
		return s, fmt.Errorf("%w: sample of %d bytes is too short", errBadRecord, len(p))
	}
	s.Time = nanosTime(int64(binary.BigEndian.Uint64(p)))
	s.Value = math.Float64frombits(binary.BigEndian.Uint64(p[8:]))
	s.Quality = model.Quality(p[16])
	p = p[17:]
	if s.Tag, p, err = readString(p); err != nil {
		return s, err
	}
	if s.Device, p, err = readString(p); err != nil {
		return s, err
	}
	if s.Reason, p, err = readString(p); err != nil {
		return s, err
	}
	if len(p) != 0 {
		return s, fmt.Errorf("%w: %d stray bytes after sample", errBadRecord, len(p))
	}
	return s, nil
}

// sampleTime decodes only the acquisition time, for the limit checks.
func sampleTime(v []byte) (time.Time, error) {
	p, err := checkValue(v)
	if err != nil {
		return time.Time{}, err
	}
	if len(p) < 8 {
		return time.Time{}, fmt.Errorf("%w: sample of %d bytes is too short", errBadRecord, len(p))
	}
	return nanosTime(int64(binary.BigEndian.Uint64(p))), nil
}

func nanosTime(n int64) time.Time {
	if n == zeroTimeNanos {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func readString(p []byte) (string, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return "", nil, fmt.Errorf("%w: bad string length", errBadRecord)
	}
	end := k + int(n)
	return string(p[k:end]), p[end:], nil
}

// Stored event layout: version byte (1), the event as JSON, CRC32C.
// Events are rare; JSON keeps them readable with any bbolt browser and
// lets model.Event grow fields without a format change.

// appendEvent appends the stored form of e to dst.
func appendEvent(dst []byte, e *model.Event) ([]byte, error) {
	js, err := json.Marshal(e)
	if err != nil {
		return dst, fmt.Errorf("encode %s event: %w", e.Kind, err)
	}
	start := len(dst)
	dst = append(dst, formatVersion)
	dst = append(dst, js...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli)), nil
}

// decodeEvent is the inverse of appendEvent.
func decodeEvent(v []byte) (model.Event, error) {
	var e model.Event
	p, err := checkValue(v)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(p, &e); err != nil {
		return e, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	return e, nil
}

// recordTime is the acquisition time of a stored record of stream s.
func recordTime(s model.Stream, v []byte) (time.Time, error) {
	if s == model.StreamData {
		return sampleTime(v)
	}
	e, err := decodeEvent(v)
	return e.Time, err
}

// decodeRecord decodes a stored value of stream s.
func decodeRecord(s model.Stream, seq uint64, v []byte) (model.Record, error) {
	r := model.Record{Stream: s, Seq: seq}
	var err error
	if s == model.StreamData {
		r.Sample, err = decodeSample(v)
	} else {
		r.Event, err = decodeEvent(v)
	}
	return r, err
}
