package buffer

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"hazgate/internal/model"
)

// filledFile writes a buffer file holding some thousands of records,
// cut to the pages in use, and returns its path and its size.
func filledFile(t *testing.T) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "buf.db")
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		appendT(t, b, []model.Event{mkEvent("alarm", t0)}, mkSamples(1000, float64(i*1000), t0))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Drop the space bbolt reserved beyond the pages in use (sparse, up
	// to 16 MiB) to keep the damage cases small; this alone must not
	// harm the file (TestOpenOrRecoverLeavesHealthyFilesAlone).
	size := highWater(t, path)
	truncate(t, path, size)
	return path, size
}

func TestCorruptFileAtOpen(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
	}{
		// bbolt grows the file ahead of use; cut into the pages in use.
		{"truncated to half of the pages in use", func(t *testing.T, path string, size int64) { truncate(t, path, highWater(t, path)/2) }},
		{"last page in use cut off", func(t *testing.T, path string, size int64) { truncate(t, path, highWater(t, path)-4096) }},
		{"truncated to three quarters of the pages in use", func(t *testing.T, path string, size int64) { truncate(t, path, highWater(t, path)/4*3) }},
		{"truncated to the meta pages", func(t *testing.T, path string, size int64) { truncate(t, path, 8192) }},
		{"truncated inside the first page", func(t *testing.T, path string, size int64) { truncate(t, path, 1000) }},
		{"zero-filled", func(t *testing.T, path string, size int64) { write(t, path, make([]byte, size)) }},
		{"random garbage", func(t *testing.T, path string, size int64) {
			g := make([]byte, size)
			_, _ = rand.NewChaCha8([32]byte{1, 2, 3}).Read(g)
			write(t, path, g)
		}},
		{"both meta pages zeroed", func(t *testing.T, path string, size int64) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			clear(data[:8192])
			write(t, path, data)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, size := filledFile(t)
			tc.damage(t, path, size)
			damaged, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			_, err = Open(path, Options{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open of a damaged file = %v, want an error wrapping ErrCorrupt that names the file", err)
			}
			t.Logf("Open: %v", err)

			at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
			b, movedTo, err := OpenOrRecover(path, Options{Now: func() time.Time { return at }})
			if err != nil {
				t.Fatalf("OpenOrRecover: %v", err)
			}
			defer b.Close()
			if movedTo != path+".corrupt-20250304T050607.000Z" {
				t.Errorf("moved to %q", movedTo)
			}
			kept, err := os.ReadFile(movedTo)
			if err != nil || !bytes.Equal(kept, damaged) {
				t.Fatalf("the damaged file was not kept as it was at %s: %v", movedTo, err)
			}
			// A working, empty buffer.
			// ... whose numbers go on above any the damaged file can have
			// handed out (the platform would drop reused ones as
			// duplicates), and which says what the platform may miss.
			st := b.Stats()
			if st.Data.Records != 0 || st.Data.NextSeq < clockFloor(at) || st.Event.NextSeq < clockFloor(at) {
				t.Fatalf("fresh buffer stats %+v, want next sequence numbers from %d", st, clockFloor(at))
			}
			for _, s := range model.Streams {
				if first, last := b.SkippedAtRecovery(s); first < 1 || last != st.Stream(s).NextSeq-1 {
					t.Errorf("%s: skipped %d..%d, want up to %d", s, first, last, st.Stream(s).NextSeq-1)
				}
			}
			appendT(t, b, nil, mkSamples(3, 1, t0))
			if n := st.Data.NextSeq; !equalSeqs(seqs(readAll(t, b, model.StreamData)), []uint64{n, n + 1, n + 2}) {
				t.Fatalf("fresh buffer holds %v", seqs(readAll(t, b, model.StreamData)))
			}
		})
	}
}

func TestOpenOrRecoverLeavesHealthyFilesAlone(t *testing.T) {
	path, _ := filledFile(t)
	b, movedTo, err := OpenOrRecover(path, Options{})
	if err != nil || movedTo != "" {
		t.Fatalf("OpenOrRecover of a healthy file = %q, %v", movedTo, err)
	}
	defer b.Close()
	if st := b.Stats(); st.Data.Records != 20000 || st.Event.Records != 20 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDamagedRecordIsSkippedAndReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buf.db")
	b := openT(t, path, Options{})
	s := mkSamples(5, 1, t0)
	s[2].Tag = "DAMAGE-ME-TAG"
	appendT(t, b, nil, s)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("DAMAGE-ME-TAG"))
	if i < 0 || bytes.Count(data, []byte("DAMAGE-ME-TAG")) != 1 {
		t.Fatal("tag not found exactly once in the file")
	}
	data[i] = 'X' // a flipped byte bbolt cannot notice; the CRC can
	write(t, path, data)

	b = openT(t, path, Options{})
	recs, err := b.Read(model.StreamData, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(recs); !equalSeqs(got, []uint64{1, 2, 4, 5}) {
		t.Fatalf("Read returned %v, want the damaged seq 3 skipped", got)
	}
	waitFor(t, "removal of the damaged record", func() bool { return b.Stats().CorruptRecords == 1 })
	settle(t, b)
	st := b.Stats()
	if st.Data.Records != 4 {
		t.Fatalf("stats %+v", st)
	}
	evs := readAll(t, b, model.StreamEvent)
	if len(evs) != 1 || evs[0].Event.Kind != model.Gap {
		t.Fatalf("events %+v, want one gap", evs)
	}
	if g := evs[0].Event.Gap; g.Stream != "data" || g.Count != 1 || g.FirstSeq != 3 || g.LastSeq != 3 || g.Cause != CauseCorrupt {
		t.Fatalf("gap %+v", g)
	}
	// Reading again finds nothing new to report.
	if _, err := b.Read(model.StreamData, 0, 10); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if st := b.Stats(); st.CorruptRecords != 1 || st.Event.Records != 1 {
		t.Fatalf("after a second read: %+v", st)
	}
}

func TestCodecRejectsDamage(t *testing.T) {
	s := model.Sample{Tag: "PT-101", Device: "plc-2", Value: -1.25, Quality: model.Uncertain, Reason: "out of range", Time: t0}
	v := appendSample(nil, &s)
	if len(v) != sampleSize(&s) {
		t.Fatalf("encoded %d bytes, sampleSize says %d", len(v), sampleSize(&s))
	}
	// The layout, written out.
	want := []byte{
		1,                                              // version
		0x18, 0x28, 0x9e, 0xed, 0xc3, 0x51, 0x00, 0x00, // 2025-03-01T08:00:00Z in unix ns
		0xbf, 0xf4, 0, 0, 0, 0, 0, 0, // -1.25
		2,                               // uncertain
		6, 'P', 'T', '-', '1', '0', '1', // tag
		5, 'p', 'l', 'c', '-', '2', // device
		12, 'o', 'u', 't', ' ', 'o', 'f', ' ', 'r', 'a', 'n', 'g', 'e', // reason
	}
	if !bytes.Equal(v[:len(v)-4], want) {
		t.Fatalf("encoded\n%x\nwant\n%x", v[:len(v)-4], want)
	}
	got, err := decodeSample(v)
	if err != nil || got != s {
		t.Fatalf("decode = %+v, %v", got, err)
	}
	zero := model.Sample{Tag: "x"}
	if got, err := decodeSample(appendSample(nil, &zero)); err != nil || !got.Time.IsZero() {
		t.Fatalf("zero time round trip = %+v, %v", got, err)
	}
	for i := range v {
		bad := bytes.Clone(v)
		bad[i] ^= 0x10
		if _, err := decodeSample(bad); !errors.Is(err, errBadRecord) {
			t.Fatalf("flipping byte %d was not detected", i)
		}
	}
	for n := range len(v) {
		if _, err := decodeSample(v[:n]); !errors.Is(err, errBadRecord) {
			t.Fatalf("a record cut to %d bytes was not detected", n)
		}
	}
	e := mkEvent("x", t0)
	ev, err := appendEvent(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	ev[len(ev)/2] ^= 1
	if _, err := decodeEvent(ev); !errors.Is(err, errBadRecord) {
		t.Fatal("damaged event not detected")
	}
}

// highWater is the end of the last page the file's meta says is in use.
func highWater(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	_ = db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverGoesOnFromTheDamagedNumbers: a file whose records bbolt can
// still read but that Open refuses (here its meta lost the layout version)
// is moved aside, and the fresh file's numbers go on from the damaged
// file's (20 events, 20,000 samples), never from 1; what the platform may
// miss runs from the damaged file's oldest record. With a clock
// before 2025 (no battery-backed clock, no NTP yet) the numbers salvaged
// from the file are all there is to go on.
func TestRecoverGoesOnFromTheDamagedNumbers(t *testing.T) {
	path, _ := filledFile(t)
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Ack(model.StreamData, 1, 500) // the broker had these
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Delete(keyVersion) }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	early := time.Date(1970, 1, 1, 0, 1, 0, 0, time.UTC)
	r, movedTo, err := OpenOrRecover(path, Options{Now: func() time.Time { return early }})
	if err != nil || movedTo == "" {
		t.Fatalf("OpenOrRecover = %q, %v; want the file moved aside", movedTo, err)
	}
	defer r.Close()
	st := r.Stats()
	if st.Event.NextSeq != 21 || st.Data.NextSeq != 20001 {
		t.Errorf("next event %d, data %d; want 21 and 20001", st.Event.NextSeq, st.Data.NextSeq)
	}
	if first, last := r.SkippedAtRecovery(model.StreamData); first != 501 || last != 20000 {
		t.Errorf("data skipped %d..%d, want 501..20000 (1..500 were acknowledged)", first, last)
	}
	if first, last := r.SkippedAtRecovery(model.StreamEvent); first != 1 || last != 20 {
		t.Errorf("events skipped %d..%d, want 1..20", first, last)
	}
}
