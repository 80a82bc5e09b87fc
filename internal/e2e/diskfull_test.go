package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/testkit"
)

// TestFullBufferShowsGap fills a size-limited buffer while the broker is
// away: acquisition goes on, the oldest telemetry is dropped, no event is
// lost, and when the broker returns the platform can explain every missing
// data sequence number by a gap event: a gap, never silence.
func TestFullBufferShowsGap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 1 MiB buffer (about 10 s)")
	}
	plant, b := plantAndBroker(t)
	addr := b.Addr()

	// 100 registers polled every 20 ms: ~5000 samples/s, enough to fill
	// the smallest buffer allowed (1 MiB) within seconds.
	var y strings.Builder
	fmt.Fprintf(&y, `gateway: {id: full-gw, enterprise_code: TEST01, data_dir: %q}
buffer: {max_bytes: 1MiB}
uplink: {brokers: [%q]}
devices:
  - name: plc
    protocol: modbus-tcp
    address: %s
    interval: 20ms
    timeout: 15ms
    tags:
`, t.TempDir(), b.URL(), plant.Addr())
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&y, "      - {name: R-%03d, kind: count, area: holding, address: %d}\n", i, i)
	}
	cfg := loadConfig(t, []byte(y.String()))

	coll := newCollector()
	var (
		mu      sync.Mutex
		gaps    [][2]uint64 // data seq ranges the gateway said it dropped
		dropped uint64
	)
	watchGaps := func(br *broker.Broker) {
		err := br.Subscribe("hazgate/+/event", func(m broker.Message) {
			var e struct {
				Kind string `json:"kind"`
				Gap  *struct {
					Stream   string `json:"stream"`
					Count    uint64 `json:"count"`
					FirstSeq uint64 `json:"first_seq"`
					LastSeq  uint64 `json:"last_seq"`
				} `json:"gap"`
			}
			if json.Unmarshal(m.Payload, &e) != nil || e.Kind != "gap" || e.Gap == nil || e.Gap.Stream != "data" {
				return
			}
			mu.Lock()
			gaps = append(gaps, [2]uint64{e.Gap.FirstSeq, e.Gap.LastSeq})
			dropped += e.Gap.Count
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	coll.attach(t, b)
	watchGaps(b)

	g, stop := runGateway(t, cfg)

	waitFor(t, 10*time.Second, "first data", func() bool { return coll.max("data") > 0 })
	b.Close()
	waitFor(t, 60*time.Second, "the full buffer to drop telemetry", func() bool { return g.Status().Buffer.Data.Dropped > 2000 })
	st := g.Status().Buffer
	if st.Bytes > 1<<20 {
		t.Errorf("buffer holds %d bytes, over its 1 MiB limit", st.Bytes)
	}
	acquired := st.Data.NextSeq - 1

	b2 := testkit.StartBrokerOn(t, addr)
	coll.attach(t, b2)
	watchGaps(b2)
	waitFor(t, 60*time.Second, "the backlog after the outage", func() bool { return coll.max("data") >= acquired })
	stop()

	if m := coll.missing("event"); len(m) > 0 {
		t.Errorf("events are never dropped while telemetry remains, but %d event seqs never arrived: %s", len(m), summarize(m))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) == 0 {
		t.Fatal("telemetry was dropped but no gap event reached the platform")
	}
	explained := func(s uint64) bool {
		for _, r := range gaps {
			if s >= r[0] && s <= r[1] {
				return true
			}
		}
		return false
	}
	var silent []uint64
	missing := coll.missing("data")
	for _, s := range missing {
		if !explained(s) {
			silent = append(silent, s)
		}
	}
	if len(silent) > 0 {
		t.Errorf("%d data seqs are missing without a gap event covering them (silence): %s", len(silent), summarize(silent))
	}
	if dropped < uint64(len(missing)) {
		t.Errorf("gap events count %d dropped records, but %d seqs are missing", dropped, len(missing))
	}
	t.Logf("acquired %d data records; %d missing at the platform, all inside %d gap events counting %d dropped", acquired, len(missing), len(gaps), dropped)
}
