package e2e

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hazgate/buffer"
	"hazgate/internal/gateway"
	"hazgate/internal/testkit"
)

// TestKilledDuringBacklogDrain: after a broker outage the gateway drains a
// backlog of tens of thousands of records at a limited rate while live
// data goes on, and is killed (SIGKILL, a power cut) at random moments of
// that drain, five times. Records acknowledged before a kill must not come
// back as missing, and records not yet acknowledged must be sent after the
// restart: at the end the platform has every sequence number of both
// streams.
func TestKilledDuringBacklogDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, makes a backlog and kills the drain five times (about 40 s)")
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	addr := b.Addr()
	coll := newCollector()
	coll.attach(t, b)

	// 100 registers every 50 ms (~2000 samples/s), drained at 3000/s: the
	// backlog shrinks by ~1000/s while live data goes on, so six seconds of
	// outage is a drain of more than ten seconds.
	var y strings.Builder
	fmt.Fprintf(&y, `gateway: {id: drain-gw, enterprise_code: TEST01, data_dir: %q}
uplink: {brokers: [%q], replay_rate: 3000}
devices:
  - name: plc
    protocol: modbus-tcp
    address: %s
    interval: 50ms
    timeout: 40ms
    tags:
`, filepath.Join(dir, "data"), b.URL(), plant.Addr())
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&y, "      - {name: R-%03d, kind: count, area: holding, address: %d}\n", i, i)
	}
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", []byte(y.String()))
	loadConfig(t, []byte(y.String())) // fails the test early on a config mistake

	var logs testkit.SyncBuffer
	start := func() *exec.Cmd { return startGateway(t, bin, cfgPath, &logs, "--log-level", "warn") }
	testkit.LogOnFailure(t, "gateway output", &logs)

	cmd := start()
	waitFor(t, 15*time.Second, "first data", func() bool { return coll.max("data") > 100 })
	b.Close()
	time.Sleep(6 * time.Second) // ~12,000 records of backlog
	b2 := testkit.StartBrokerOn(t, addr)
	coll.attach(t, b2)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("kill timing seed %d", seed)
	for i := range 5 {
		before := coll.max("data")
		waitFor(t, 15*time.Second, fmt.Sprintf("drain progress before kill %d", i+1), func() bool { return coll.max("data") > before })
		time.Sleep(time.Duration(200+rng.IntN(1000)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill %d during the drain at data seq %d", i+1, coll.max("data"))
		cmd = start()
	}

	// Let the last run drain, then stop it in order.
	killedAt := coll.max("data")
	waitFor(t, 60*time.Second, "progress after the last kill", func() bool { return coll.max("data") > killedAt+5000 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("orderly stop: %v", err)
	}
	// What the buffer no longer holds was acknowledged by the broker: the
	// subscriber must have all of it.
	buf, err := buffer.Open(filepath.Join(dir, "data", gateway.BufferFile), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := buf.Stats()
	buf.Close()
	for _, s := range []struct {
		name string
		st   buffer.StreamStats
	}{{"data", st.Data}, {"event", st.Event}} {
		acked := s.st.NextSeq - 1
		if s.st.Records > 0 {
			acked = s.st.OldestSeq - 1
		}
		if got := coll.max(s.name); got < acked {
			t.Errorf("%s: the buffer says seq 1..%d were acknowledged, the subscriber has up to %d", s.name, acked, got)
		}
		t.Logf("%s: %d records still buffered at the end, next seq %d", s.name, s.st.Records, s.st.NextSeq)
	}
	for _, stream := range []string{"data", "event"} {
		if m := coll.missing(stream); len(m) > 0 {
			t.Errorf("%s: %d sequence numbers never arrived: %s", stream, len(m), summarize(m))
		}
		t.Logf("%s: up to seq %d, %d duplicates", stream, coll.max(stream), coll.duplicates(stream))
	}
	if n := coll.kindCount("gap"); n != 0 {
		t.Errorf("%d gap events: nothing should have been dropped", n)
	}
}
