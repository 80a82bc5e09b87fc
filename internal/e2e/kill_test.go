package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/testkit"
)

// buildGateway compiles cmd/hazgate into dir, so the test kills a real
// process and not a goroutine.
func buildGateway(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "hazgate")
	cmd := exec.Command("go", "build", "-o", bin, "hazgate/cmd/hazgate")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestKilledGateway kills the gateway with SIGKILL 50 times in a row while
// it acquires and publishes (a power cut at a random moment), restarting it
// on the same data directory each time: the platform must still see every
// sequence number, and every start must find its buffer readable.
func TestKilledGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it 50 times (about a minute)")
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	coll := newCollector()
	coll.attach(t, b)
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), filepath.Join(dir, "data")))

	var logs testkit.SyncBuffer
	start := func() *exec.Cmd { return startGateway(t, bin, cfgPath, &logs, "--log-level", "warn") }
	testkit.LogOnFailure(t, "gateway output", &logs)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("kill timing seed %d", seed)
	kills := killCount(t)
	surelyStarted := 1 // the last, orderly run
	for i := 0; i < kills; i++ {
		cmd := start()
		if i%5 == 4 {
			// Now and then kill it while it starts: opening the buffer,
			// recording the start event, connecting.
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		} else {
			before := coll.max("data")
			waitFor(t, 15*time.Second, fmt.Sprintf("data after start %d", i+1), func() bool { return coll.max("data") > before })
			surelyStarted++ // it published data, so its start event was committed first
			// Kill at a random moment while it polls, commits and publishes.
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = cmd.Wait()
		if i < 5 || i%10 == 9 {
			t.Logf("kill %d at data seq %d", i+1, coll.max("data"))
		}
	}

	// A last run, stopped in order: everything buffered must now arrive.
	cmd := start()
	killedAt := coll.max("data")
	waitFor(t, 20*time.Second, "data beyond the last kill", func() bool { return coll.max("data") > killedAt+50 })
	stopGateway(t, cmd)

	for _, stream := range []string{"data", "event"} {
		if m := coll.missing(stream); len(m) > 0 {
			t.Errorf("%s: %d sequence numbers never arrived: %s", stream, len(m), summarize(m))
		}
		t.Logf("%s: up to seq %d, %d duplicates", stream, coll.max(stream), coll.duplicates(stream))
	}
	// A kill in the first few milliseconds may come before the start event
	// is committed; then that start left no trace, which is honest. Every
	// start that published data must have its event, and none may be doubled.
	if n := coll.kindCount("gateway_started"); n < surelyStarted || n > kills+1 {
		t.Errorf("gateway_started events: got %d, want between %d (starts that published data) and %d (all starts)", n, surelyStarted, kills+1)
	}
	if n := coll.kindCount("gateway_stopped"); n != 1 {
		t.Errorf("gateway_stopped events: got %d, want 1 (the orderly stop)", n)
	}
}

// killCount is 50 (the fault suite's "at least 50 times in a row"), or
// HAZGATE_KILLS for a longer local run.
func killCount(t *testing.T) int {
	if v := os.Getenv("HAZGATE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HAZGATE_KILLS=%q is not a positive number", v)
		}
		return n
	}
	return 50
}
