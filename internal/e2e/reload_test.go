package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/testkit"
)

// reactorVariant is the test's config with the reactor device changed
// (its comm_loss_after is n seconds) and the tank farm PLC unchanged.
func reactorVariant(t *testing.T, base []byte, n int) []byte {
	t.Helper()
	s := string(base)
	i := strings.Index(s, "name: reactor-r301")
	if i < 0 || !strings.Contains(s[i:], "comm_loss_after: 3s") {
		t.Fatal("configs/demo.yaml no longer has the reactor with comm_loss_after: 3s; update this test")
	}
	return []byte(s[:i] + strings.Replace(s[i:], "comm_loss_after: 3s", fmt.Sprintf("comm_loss_after: %ds", n), 1))
}

// startGateway runs the built binary on cfgPath, its output in logs.
func startGateway(t *testing.T, bin, cfgPath string, logs *testkit.SyncBuffer, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run", "-c", cfgPath}, extra...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	return cmd
}

// stopGateway stops it with SIGTERM and waits.
func stopGateway(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("orderly stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("gateway did not stop within 15 s of SIGTERM")
	}
}

// TestReloadBySIGHUP runs the real binary under load and reloads it with
// SIGHUP: a valid change is applied (config_changed at the platform, the
// unchanged device not restarted), an invalid file is refused with its
// problem as `hazgate validate` prints it and the gateway runs on, and a
// changed file is picked up without a signal. No sequence number is lost.
func TestReloadBySIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	coll := newCollector()
	coll.attach(t, b)
	// The status page on a free port: its /metrics shows each device
	// loop's poll counter, which a restarted loop would start afresh.
	base := append(testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), filepath.Join(dir, "data")), "web: {listen: \"127.0.0.1:0\"}\n"...)
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", base)

	logs := &testkit.SyncBuffer{}
	cmd := startGateway(t, bin, cfgPath, logs, "--log-level", "info", "--reload-poll", "200ms")
	testkit.LogOnFailure(t, "gateway output", logs)
	waitFor(t, 15*time.Second, "first data", func() bool { return coll.max("data") > 20 })
	var metricsURL string
	waitFor(t, 10*time.Second, "the status page's address in the log", func() bool {
		m := statusURL.FindStringSubmatch(logs.String())
		if m != nil {
			metricsURL = m[1] + "metrics"
		}
		return m != nil
	})
	// Enough polls that a loop started afresh by the reload could not
	// have caught up by the time the counter is read again.
	var polls0 int
	waitFor(t, 15*time.Second, "30 polls of the tank farm", func() bool {
		polls0 = devicePolls(t, metricsURL, "tank-farm-plc")
		return polls0 >= 30
	})

	// A valid change, announced by SIGHUP.
	testkit.WriteFile(t, dir, "gateway.yaml", reactorVariant(t, base, 4))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "config_changed at the platform", func() bool { return coll.kindCount("config_changed") == 1 })
	if l := logs.String(); !strings.Contains(l, "config reloaded") || !strings.Contains(l, "changed=[reactor-r301]") {
		t.Errorf("the reload is not logged with the changed device")
	}
	if polls1 := devicePolls(t, metricsURL, "tank-farm-plc"); polls1 < polls0 {
		t.Errorf("the unchanged tank farm PLC's loop was restarted: %d polls before the reload, %d after", polls0, polls1)
	} else {
		t.Logf("tank-farm-plc polls: %d before the reload, %d after", polls0, polls1)
	}

	// An invalid file: refused, reported, and the gateway goes on.
	testkit.WriteFile(t, dir, "gateway.yaml", []byte(strings.Replace(string(base), "  id: ", "  colour: red\n  id: ", 1)))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refusal in the log", func() bool { return strings.Contains(logs.String(), "not valid") })
	if !strings.Contains(logs.String(), cfgPath+":") || !strings.Contains(logs.String(), "gateway.colour: unknown field") {
		t.Errorf("the problem is not logged as FILE:LINE:COL: field: message")
	}
	before := coll.max("data")
	waitFor(t, 10*time.Second, "data after the refusal", func() bool { return coll.max("data") > before+20 })

	// A valid change without a signal: the file watcher applies it.
	testkit.WriteFile(t, dir, "gateway.yaml", reactorVariant(t, base, 5))
	waitFor(t, 10*time.Second, "the second config_changed", func() bool { return coll.kindCount("config_changed") == 2 })

	stopGateway(t, cmd)
	if strings.Contains(logs.String(), "changed=[tank-farm-plc") || strings.Contains(logs.String(), "tank-farm-plc]") {
		t.Error("the unchanged tank farm PLC was counted as changed")
	}
	for _, stream := range []string{"data", "event"} {
		if m := coll.missing(stream); len(m) > 0 {
			t.Errorf("%s: %d sequence numbers never arrived: %s", stream, len(m), summarize(m))
		}
	}
}

var statusURL = regexp.MustCompile(`msg="status page listening".* url=(\S+)`)

// devicePolls reads the device's poll counter from /metrics.
func devicePolls(t *testing.T, url, device string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`device_polls_total\{device="` + regexp.QuoteMeta(device) + `"\} ([0-9.e+]+)`)
	m := re.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no poll counter for %s in %s:\n%s", device, url, body)
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return int(f)
}

// TestKilledDuringReload kills the gateway with SIGKILL at a random moment
// of a config reload, again and again, restarting it on the same data
// directory and the config file as it then is: every sequence number
// still arrives, and every start finds a readable buffer and a valid
// config.
func TestKilledDuringReload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it a dozen times")
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	coll := newCollector()
	coll.attach(t, b)
	base := testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), filepath.Join(dir, "data"))
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", base)

	logs := &testkit.SyncBuffer{}
	testkit.LogOnFailure(t, "gateway output", logs)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("kill timing seed %d", seed)
	const kills = 12
	for i := range kills {
		cmd := startGateway(t, bin, cfgPath, logs, "--log-level", "warn")
		before := coll.max("data")
		waitFor(t, 15*time.Second, fmt.Sprintf("data after start %d", i+1), func() bool { return coll.max("data") > before })
		// Write the file as an editor would (a new file renamed over the
		// old one), ask for the reload, and kill while it is applied.
		tmp := filepath.Join(dir, "gateway.yaml.new")
		if err := os.WriteFile(tmp, reactorVariant(t, base, 4+i%2), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = cmd.Wait()
	}

	cmd := startGateway(t, bin, cfgPath, logs, "--log-level", "warn")
	killedAt := coll.max("data")
	waitFor(t, 20*time.Second, "data beyond the last kill", func() bool { return coll.max("data") > killedAt+50 })
	stopGateway(t, cmd)
	for _, stream := range []string{"data", "event"} {
		if m := coll.missing(stream); len(m) > 0 {
			t.Errorf("%s: %d sequence numbers never arrived: %s", stream, len(m), summarize(m))
		}
		t.Logf("%s: up to seq %d, %d duplicates", stream, coll.max(stream), coll.duplicates(stream))
	}
	t.Logf("config_changed events that were committed before their kill: %d of %d", coll.kindCount("config_changed"), kills)
}
