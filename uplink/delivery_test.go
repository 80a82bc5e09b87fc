package uplink

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// TestBatchIntervalAndGzip: with batch_interval a partial batch waits to
// fill, a full one goes at once, and nothing is held longer than the
// interval; with compression gzip every data payload is gzip and decodes
// to a valid message.
func TestBatchIntervalAndGzip(t *testing.T) {
	testBatchIntervalCompressed(t, config.CompressionGzip, gzipMagic)
}

// TestZstd: compression zstd makes every data payload a zstd frame that
// DecodePayload (and so hazgate watch) turns back into a valid message.
func TestZstd(t *testing.T) {
	testBatchIntervalCompressed(t, config.CompressionZstd, zstdMagic)
}

func testBatchIntervalCompressed(t *testing.T, compression string, magic []byte) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	src := newMemSource()
	cfg := testConfig(b.URL())
	cfg.Uplink.BatchInterval = config.Duration(time.Second)
	cfg.Uplink.Compression = compression
	u, _ := runUplink(t, Options{Config: cfg}, src)
	eventually(t, 10*time.Second, "connected", u.Connected)

	start := time.Now()
	src.addData(10)
	time.Sleep(50 * time.Millisecond)
	src.addData(10)
	eventually(t, 10*time.Second, "the held batch", func() bool { return col.nSeen(model.StreamData) == 20 })
	waited := time.Since(start)
	if n := col.nData(); n != 1 {
		t.Errorf("20 samples came in %d messages; a partial batch must wait to fill", n)
	}
	if waited < 900*time.Millisecond {
		t.Errorf("partial batch sent after %s, before batch_interval (1s)", waited)
	}

	// A full batch does not wait: 250 records give two messages of 100 at
	// once and the remaining 50 after the interval.
	start = time.Now()
	src.addData(250)
	eventually(t, 10*time.Second, "two full batches", func() bool { return col.nSeen(model.StreamData) >= 220 })
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Logf("full batches took %s (slow machine?)", d)
	}
	if n := col.nSeen(model.StreamData); n != 220 {
		t.Errorf("%d samples seen right after the full batches, want 220 (the partial rest waits)", n)
	}
	eventually(t, 10*time.Second, "the rest", func() bool { return col.nSeen(model.StreamData) == 270 })
	checkNoGaps(t, col, model.StreamData, 270)

	col.mu.Lock()
	defer col.mu.Unlock()
	for _, m := range col.raw {
		if bytes.HasSuffix([]byte(m.Topic), []byte("/data")) && !bytes.HasPrefix(m.Payload, magic) {
			t.Fatalf("a data payload is not %s: %.40q", compression, m.Payload)
		}
	}
}

// TestReplayMarker: data sent again after a lost connection is marked as
// replayed; data sent for the first time is not.
func TestReplayMarker(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	p := startProxy(t, b.Addr())
	src := newMemSource()
	// The proxy first; once it is cut (and refuses), the broker itself.
	u, _ := runUplink(t, Options{Config: testConfig(p.URL(), b.URL())}, src)
	eventually(t, 10*time.Second, "connected through the proxy", u.Connected)
	if s := u.Stats(); s.Broker != p.URL() {
		t.Fatalf("connected to %s, want the proxy", s.Broker)
	}
	p.stalled.Store(true) // publishes leave the gateway but never arrive
	src.addData(50)
	eventually(t, 10*time.Second, "published into the stalled link", func() bool { return u.Stats().PublishedRecords >= 50 })
	p.cut()
	eventually(t, 15*time.Second, "resent through the second broker", func() bool { return col.nSeen(model.StreamData) == 50 })
	src.addData(10)
	eventually(t, 10*time.Second, "fresh data", func() bool { return col.nSeen(model.StreamData) == 60 })

	col.mu.Lock()
	defer col.mu.Unlock()
	for _, d := range col.dataMsgs {
		fresh := d.SeqFirst > 50
		if d.Replay == fresh {
			t.Errorf("data %d..%d: replay=%v, want %v", d.SeqFirst, d.SeqLast, d.Replay, !fresh)
		}
	}
}

// TestReplayRate: a backlog drains at replay_rate samples per second, and
// an alarm raised meanwhile does not wait for it.
func TestReplayRate(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	src := newMemSource()
	src.addData(2000)
	cfg := testConfig(b.URL())
	cfg.Uplink.ReplayRate = 500 // 500 at once (the burst), then 1500 in 3 s
	start := time.Now()
	u, _ := runUplink(t, Options{Config: cfg}, src)
	eventually(t, 10*time.Second, "connected", u.Connected)
	eventually(t, 10*time.Second, "half the backlog", func() bool { return col.nSeen(model.StreamData) >= 1000 })
	alarmAt := time.Now()
	src.addEvent(alarm("LT-101", 18.7, 18.5))
	eventually(t, 10*time.Second, "the alarm", func() bool { return col.nSeen(model.StreamEvent) == 1 })
	if d := time.Since(alarmAt); d > 2*time.Second {
		t.Errorf("the alarm waited %s behind a paced backlog", d)
	}
	if n := col.nSeen(model.StreamData); n >= 2000 {
		t.Errorf("the backlog was done when the alarm arrived (%d): not paced", n)
	}
	eventually(t, 20*time.Second, "the whole backlog", func() bool { return col.nSeen(model.StreamData) == 2000 })
	if d := time.Since(start); d < 2500*time.Millisecond {
		t.Errorf("2000 samples at 500/s took %s, want about 3 s", d)
	}
	checkNoGaps(t, col, model.StreamData, 2000)
}

// TestMessageNeverSpansAHole: records missing from the middle of the
// buffer (dropped, or acknowledged out of order before a restart) split
// the data messages, so seq_last - seq_first + 1 always counts the samples
// (docs/uplink.md §3.1).
func TestMessageNeverSpansAHole(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	src := newMemSource()
	src.addData(30)
	src.mu.Lock()
	for seq := 11; seq <= 14; seq++ { // already gone
		src.gone[model.StreamData][seq-1] = true
		src.left[model.StreamData]--
	}
	src.mu.Unlock()
	runUplink(t, Options{Config: testConfig(b.URL())}, src)
	eventually(t, 10*time.Second, "the 26 records left", func() bool { return col.nSeen(model.StreamData) == 26 })
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, m := range col.raw {
		if !bytes.HasSuffix([]byte(m.Topic), []byte("/data")) {
			continue
		}
		var d DataMessage
		if err := json.Unmarshal(m.Payload, &d); err != nil {
			t.Fatal(err)
		}
		if int(d.SeqLast-d.SeqFirst+1) != len(d.Samples) {
			t.Errorf("message %d..%d carries %d samples", d.SeqFirst, d.SeqLast, len(d.Samples))
		}
	}
}
