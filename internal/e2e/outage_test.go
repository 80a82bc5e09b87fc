package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// TestLongOutage keeps the broker away while a large backlog accumulates
// (200k records here, HAZGATE_OUTAGE_RECORDS=1000000 for the full fault-suite
// run), raises a gas alarm in the middle of it, and brings the broker back:
// the alarm must arrive before the backlog has drained, every record must
// arrive, and the gateway's heap must not grow with the backlog, which
// lives on disk.
func TestLongOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("accumulates a backlog of 200k records (about 30 s)")
	}
	target := uint64(200_000)
	if v := os.Getenv("HAZGATE_OUTAGE_RECORDS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			t.Fatalf("HAZGATE_OUTAGE_RECORDS=%q", v)
		}
		target = n
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant := testkit.StartPlant(t, sim.PlantOptions{Script: false})
	b := testkit.StartBroker(t)
	addr := b.Addr()

	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", []byte(outageConfigYAML(filepath.Join(dir, "data"), b.URL(), plant.Addr(), "")))

	coll := newCollector()
	var (
		mu          sync.Mutex
		arrivals    int // data messages seen after the broker returned
		alarmAtMsg  = -1
		backlogDone = -1
		returned    bool
	)
	attach := func(br *broker.Broker) {
		coll.attach(t, br)
		err := br.Subscribe("hazgate/+/#", func(m broker.Message) {
			mu.Lock()
			defer mu.Unlock()
			if !returned {
				return
			}
			switch {
			case strings.HasSuffix(m.Topic, "/data"):
				arrivals++
			case strings.HasSuffix(m.Topic, "/event"):
				var e struct {
					Kind string `json:"kind"`
					Tag  string `json:"tag"`
				}
				if json.Unmarshal(m.Payload, &e) == nil && e.Kind == "alarm_raised" && e.Tag == "GT-201" && alarmAtMsg < 0 {
					alarmAtMsg = arrivals
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	attach(b)

	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "-c", cfgPath, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("gateway output:\n%s", logs.String())
		}
	}()
	waitFor(t, 15*time.Second, "first data", func() bool { return coll.max("data") > 0 })
	b.Close()
	outageStart := time.Now()
	first := coll.max("data")

	// Accumulate, sampling the heap of the gateway once a second.
	rate := 25_000.0
	wait := time.Duration(float64(target)/rate*float64(time.Second)) + 2*time.Second
	heap := []uint64{anonRSS(t, cmd.Process.Pid)}
	alarmSet := false
	for time.Since(outageStart) < wait {
		time.Sleep(time.Second)
		heap = append(heap, anonRSS(t, cmd.Process.Pid))
		if !alarmSet && time.Since(outageStart) > wait/2 {
			if err := plant.Set(sim.GT201, 45); err != nil {
				t.Fatal(err)
			}
			alarmSet = true
		}
	}
	b2 := testkit.StartBrokerOn(t, addr)
	mu.Lock()
	returned = true
	mu.Unlock()
	drainStart := time.Now()
	attach(b2)

	acquired := first + target
	waitFor(t, 5*time.Minute, fmt.Sprintf("data seq %d", acquired), func() bool {
		heap = append(heap, anonRSS(t, cmd.Process.Pid))
		return coll.max("data") >= acquired
	})
	drain := time.Since(drainStart)
	mu.Lock()
	backlogDone = arrivals
	mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_, _ = cmd.Process.Wait()

	if m := coll.missing("data"); len(m) > 0 {
		t.Errorf("data: %d seqs never arrived: %s", len(m), summarize(m))
	}
	if m := coll.missing("event"); len(m) > 0 {
		t.Errorf("event: %d seqs never arrived: %s", len(m), summarize(m))
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case alarmAtMsg < 0:
		t.Error("the gas alarm raised during the outage never arrived")
	case alarmAtMsg > 64+2:
		t.Errorf("the gas alarm arrived after %d of %d backlog messages: alarms must overtake the backlog", alarmAtMsg, backlogDone)
	}
	var peak uint64
	for _, h := range heap {
		peak = max(peak, h)
	}
	// The backlog is ~60 bytes a record on disk; the heap must not hold it.
	if limit := uint64(150 << 20); peak > limit {
		t.Errorf("gateway heap (RssAnon) peaked at %d MiB over a %d-record backlog: the backlog must live on disk", peak>>20, target)
	}
	t.Logf("backlog %d records in %s; drained in %s (%.0f records/s); gas alarm arrived after %d of %d data messages; heap RssAnon start %d MiB, peak %d MiB",
		target, wait.Round(time.Second), drain.Round(time.Millisecond), float64(target)/drain.Seconds(), alarmAtMsg, backlogDone, heap[0]>>20, peak>>20)
}

// outageConfigYAML is the long-outage gateway: the gas detector GT-201
// polled every 100 ms and five PLCs of 100 registers every 20 ms (~25k
// samples/s), so that a broker outage makes a large backlog quickly.
// extra is more top-level YAML (e.g. a web section), or "".
func outageConfigYAML(dataDir, brokerURL, plantAddr, extra string) string {
	var y strings.Builder
	fmt.Fprintf(&y, `gateway: {id: outage-gw, enterprise_code: TEST01, data_dir: %q}
buffer: {max_bytes: 1GiB}
uplink: {brokers: [%q], inflight: 64, batch_max: 500}
%sdevices:
%s`, dataDir, brokerURL, extra, gasDetectorYAML(plantAddr))
	for d := 1; d <= 5; d++ {
		fmt.Fprintf(&y, "  - {name: plc-%d, protocol: modbus-tcp, address: %s, interval: 20ms, timeout: 15ms, tags: [", d, plantAddr)
		for i := 0; i < 100; i++ {
			if i > 0 {
				y.WriteString(", ")
			}
			fmt.Fprintf(&y, "{name: R%d-%03d, kind: count, area: holding, address: %d}", d, i, i)
		}
		y.WriteString("]}\n")
	}
	return y.String()
}

// anonRSS is the process's anonymous resident memory (heap, stacks) in
// bytes: unlike VmRSS it leaves out the buffer file's memory-mapped pages,
// which the kernel may drop at any time.
func anonRSS(t *testing.T, pid int) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
