package uplink

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/internal/testkit"
)

// startMosquitto runs Debian's Mosquitto, with no limit on messages in
// flight or queued, until the end of the test and returns its tcp:// URL.
func startMosquitto(tb testing.TB) string {
	tb.Helper()
	return testkit.StartMosquitto(tb, tb.TempDir(), "max_inflight_messages 0\nmax_queued_messages 0\nallow_anonymous true\n").URL()
}

// BenchmarkThroughputMosquitto: records per second from an in-memory
// source to Mosquitto, acknowledged by PUBACK, for a few window and batch
// settings.
func BenchmarkThroughputMosquitto(b *testing.B) {
	for _, c := range []struct {
		name            string
		inflight, batch int
		compression     string
	}{
		{"inflight1-batch1", 1, 1, ""},
		{"inflight32-batch1", 32, 1, ""},
		{"inflight32-batch100", 32, 100, ""},
		{"inflight64-batch500", 64, 500, ""},
		{"inflight64-batch500-gzip", 64, 500, config.CompressionGzip},
		{"inflight64-batch500-zstd", 64, 500, config.CompressionZstd},
	} {
		b.Run(c.name, func(b *testing.B) {
			url := startMosquitto(b)
			cfg := testConfig(url)
			cfg.Uplink.Inflight, cfg.Uplink.BatchMax = c.inflight, c.batch
			if c.compression != "" {
				cfg.Uplink.Compression = c.compression
			}
			src := newMemSource()
			u, stop := runUplink(b, Options{Config: cfg}, src)
			eventually(b, 10*time.Second, "connected", u.Connected)
			b.ResetTimer()
			start := time.Now()
			src.addData(b.N)
			eventually(b, 10*time.Minute, "all acknowledged", func() bool { return src.unacked(model.StreamData) == 0 })
			elapsed := time.Since(start)
			b.StopTimer()
			st := u.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "samples/s")
			b.ReportMetric(float64(st.AckedMsgs)/elapsed.Seconds(), "msgs/s")
			stop()
		})
	}
}

// TestAlarmLatencyDuringBacklogMosquitto: while a backlog of data drains
// to Mosquitto, alarms still reach a subscriber at once: events go ahead
// of telemetry, waiting at most for the window in flight. HAZGATE_ALARMS
// alarms (20 by default) are raised 10 ms apart; the log gives
// nearest-rank percentiles and how many were raised before the backlog
// ran out.
func TestAlarmLatencyDuringBacklogMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("drains a backlog")
	}
	url := startMosquitto(t)
	var mu sync.Mutex
	arrived := map[uint64]time.Time{}
	var dataSeen int
	// Two subscribers, as a platform would have (or a shared
	// subscription): events on their own connection, so that what is
	// measured is the gateway's part, not the events queued behind
	// telemetry in one subscriber's socket.
	subscribe := func(id, filter string, fn func(stream string, seq uint64, samples int)) {
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false)
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		if tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
			var p struct {
				Stream  string            `json:"stream"`
				Seq     uint64            `json:"seq"`
				Samples []json.RawMessage `json:"samples"`
			}
			if json.Unmarshal(m.Payload(), &p) == nil {
				fn(p.Stream, p.Seq, len(p.Samples))
			}
		}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	subscribe("latency-events", "hazgate/gw-01/event", func(_ string, seq uint64, _ int) {
		mu.Lock()
		arrived[seq] = time.Now()
		mu.Unlock()
	})
	subscribe("latency-data", "hazgate/gw-01/data", func(_ string, _ uint64, n int) {
		mu.Lock()
		dataSeen += n
		mu.Unlock()
	})

	backlog := 1_000_000
	if raceEnabled {
		backlog = 200_000 // the race detector makes it slow and big
	}
	src := newMemSource()
	src.addData(backlog)
	cfg := testConfig(url)
	u, _ := runUplink(t, Options{Config: cfg}, src)
	eventually(t, 10*time.Second, "backlog draining", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return u.Connected() && dataSeen > 1000
	})
	alarms := 20
	if v := os.Getenv("HAZGATE_ALARMS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HAZGATE_ALARMS=%q: want a positive count", v)
		}
		alarms = n
	}
	sent := map[uint64]time.Time{}
	underLoad := 0 // raised while backlog remained
	for range alarms {
		seq := src.addEvent(alarm("LT-101", 18.7, 18.5))
		sent[seq] = time.Now()
		mu.Lock()
		if dataSeen < backlog {
			underLoad++
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, 30*time.Second, "all alarms", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) == len(sent)
	})
	mu.Lock()
	var lat []time.Duration
	for seq, at := range sent {
		lat = append(lat, arrived[seq].Sub(at))
	}
	remaining := backlog - dataSeen
	mu.Unlock()
	slices.Sort(lat)
	// Nearest rank: the smallest latency with at least q % at or below it.
	pct := func(q int) time.Duration { return lat[max(1, (q*len(lat)+99)/100)-1].Round(100 * time.Microsecond) }
	slowest := lat[len(lat)-1]
	t.Logf("alarm latency to a Mosquitto subscriber with a backlog draining, %d alarms (%d raised while backlog remained; %d samples still to go at the end): p50 %s, p90 %s, p99 %s, max %s (nearest rank)",
		len(lat), underLoad, remaining, pct(50), pct(90), pct(99), slowest.Round(100*time.Microsecond))
	if remaining <= 0 {
		t.Log("the backlog finished before the alarms: latency not measured under load; raise the backlog")
	}
	if slowest > 2*time.Second {
		t.Errorf("an alarm took %s behind the backlog", slowest)
	}
}
