package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/broker"
	"hazgate/internal/testkit"
)

// TestCapacity measures the limits of one gateway process (issue 8):
// for each tag count in HAZGATE_CAPACITY (e.g. "1000,10000,50000"), the
// built binary polls that many tags once a second from in-process Modbus
// TCP devices (5000 tags a device, coalesced into 40 requests of 125
// registers), evaluates a four-level alarm on every tag, makes every sample
// durable and publishes it to the embedded broker, where a subscriber
// counts what arrives. It prints, per tag count: samples offered and
// delivered per second, the gateway's CPU seconds per million samples,
// its peak RSS, and the time from exec to the first data message at the
// subscriber. scripts/bench.sh runs it; without the variable it skips.
func TestCapacity(t *testing.T) {
	spec := os.Getenv("HAZGATE_CAPACITY")
	if spec == "" {
		t.Skip("a measurement, not a test: HAZGATE_CAPACITY=1000,10000,50000 (scripts/bench.sh)")
	}
	measure := 20 * time.Second
	if v := os.Getenv("HAZGATE_CAPACITY_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HAZGATE_CAPACITY_SECONDS=%q", v)
		}
		measure = time.Duration(n) * time.Second
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	for _, f := range strings.Split(spec, ",") {
		tags, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || tags < 1 {
			t.Fatalf("HAZGATE_CAPACITY: %q is not a tag count", f)
		}
		t.Run(fmt.Sprintf("%d_tags", tags), func(t *testing.T) {
			capacityRun(t, bin, tags, measure)
		})
	}
}

func capacityRun(t *testing.T, bin string, tags int, measure time.Duration) {
	const perDevice = 5000
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var delivered, firstAt atomic.Int64
	if err := b.Subscribe("hazgate/+/data", func(m broker.Message) {
		first, last, ok := seqSpan(m.Payload)
		if !ok {
			return
		}
		if last >= first {
			delivered.Add(int64(last - first + 1))
		}
		firstAt.CompareAndSwap(0, time.Now().UnixNano())
	}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	webAddr := testkit.FreeAddr(t)
	var y strings.Builder
	fmt.Fprintf(&y, `gateway: {id: cap-gw, enterprise_code: TEST01, data_dir: %q}
buffer: {max_bytes: 1GiB}
uplink: {brokers: [%q], inflight: 64, batch_max: 500}
web: {listen: %q}
devices:
`, filepath.Join(dir, "data"), b.URL(), webAddr)
	for d := 0; d*perDevice < tags; d++ {
		n := min(perDevice, tags-d*perDevice)
		srv := modbustest.NewServer(t)
		vals := make([]uint16, n)
		for i := range vals {
			vals[i] = uint16(40 + i%20)
		}
		srv.SetHolding(0, vals...)
		fmt.Fprintf(&y, "  - name: plc-%d\n    protocol: modbus-tcp\n    address: %s\n    interval: 1s\n    timeout: 800ms\n    tags:\n", d, srv.Addr)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&y, "      - {name: T%d-%04d, kind: temperature, unit: C, area: holding, address: %d, range: {min: 0, max: 200}, alarms: {ll: 5, l: 10, h: 150, hh: 180, deadband: 1}}\n", d, i, i)
		}
	}
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", []byte(y.String()))
	loadConfig(t, []byte(y.String()))

	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "-c", cfgPath, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gateway output:\n%s", logs.String())
		}
	}()
	waitFor(t, 60*time.Second, "first data", func() bool { return firstAt.Load() != 0 })
	startup := time.Duration(firstAt.Load() - started.UnixNano())

	time.Sleep(5 * time.Second) // warm up: connections, first alarms, page cache
	cpu0, n0, t0 := procCPU(t, cmd.Process.Pid), delivered.Load(), time.Now()
	time.Sleep(measure)
	cpu1, n1, t1 := procCPU(t, cmd.Process.Pid), delivered.Load(), time.Now()
	samples := float64(n1 - n0)
	rate := samples / t1.Sub(t0).Seconds()
	cpu := (cpu1 - cpu0).Seconds()
	heap := scrapeMetric(t, "http://"+webAddr+"/metrics", "go_memstats_heap_inuse_bytes")
	hwm := procStatusKB(t, cmd.Process.Pid, "VmHWM:")
	anon := procStatusKB(t, cmd.Process.Pid, "RssAnon:")
	var load string
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	t.Logf("CAPACITY tags=%d offered=%d/s delivered=%.0f/s cpu=%.2fs/Msamples (%.0f%% of one core) peakRSS=%.1fMiB anonRSS=%.1fMiB heapInuse=%.1fMiB first_publish=%v load=%s",
		tags, tags, rate, cpu/samples*1e6, cpu/t1.Sub(t0).Seconds()*100, float64(hwm)/1024, float64(anon)/1024, heap/(1<<20), startup.Round(time.Millisecond), load)
	if rate < 0.9*float64(tags) {
		t.Errorf("delivered %.0f samples/s of %d offered: the gateway does not keep up", rate, tags)
	}
}

// scrapeMetric reads one unlabelled series from a Prometheus text page.
func scrapeMetric(t *testing.T, url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("scrape %s: %v", url, err)
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	t.Errorf("%s: no %s", url, name)
	return 0
}

// seqSpan reads seq_first and seq_last of a data message. Header fields
// come before the samples: they are read without decoding the whole
// message, so that counting costs the shared CPUs little.
func seqSpan(payload []byte) (first, last uint64, ok bool) {
	i := bytes.Index(payload, []byte(`"seq_first":`))
	j := bytes.Index(payload, []byte(`"seq_last":`))
	if i < 0 || j < 0 {
		return 0, 0, false
	}
	first, _ = strconv.ParseUint(string(leadingDigits(payload[i+len(`"seq_first":`):])), 10, 64)
	last, _ = strconv.ParseUint(string(leadingDigits(payload[j+len(`"seq_last":`):])), 10, 64)
	return first, last, true
}

func leadingDigits(b []byte) []byte {
	for i, c := range b {
		if c < '0' || c > '9' {
			return b[:i]
		}
	}
	return b
}

// procCPU is the user+system CPU time the process has used.
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

func procStatusKB(t *testing.T, pid int, field string) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
