package uplink

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
)

// gzipMagic starts every gzip stream; a JSON payload never starts with it,
// so a platform can tell compressed payloads apart without a flag.
var gzipMagic = []byte{0x1f, 0x8b}

// gzipPayload compresses a data payload (uplink.compression: gzip).
func gzipPayload(p []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(p) / 4)
	w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed) // the level is valid
	_, _ = w.Write(p)                               // writes to a bytes.Buffer do not fail
	_ = w.Close()
	return b.Bytes()
}

// maxDecompressed bounds what DecodePayload inflates: a data message of
// batch_max 10000 samples is well under it.
const maxDecompressed = 64 << 20

// DecodePayload returns a payload as JSON: gzip-compressed payloads
// (docs/uplink.md §3) are inflated, others returned as they are.
func DecodePayload(p []byte) ([]byte, error) {
	if !bytes.HasPrefix(p, gzipMagic) {
		return p, nil
	}
	r, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, errors.New("compressed payload inflates beyond 64 MiB")
	}
	return out, nil
}
