package testkit

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/config"
)

// TestNotInTheBinary: the gateway binary must not carry test support
// (nor the testing package it pulls in).
func TestNotInTheBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "hazgate/cmd/hazgate").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "hazgate/internal/testkit" || pkg == "testing" {
			t.Errorf("cmd/hazgate depends on %s", pkg)
		}
	}
}

type blockUntilCancel struct{ runs int }

func (b *blockUntilCancel) Run(ctx context.Context) error {
	b.runs++
	<-ctx.Done()
	return nil
}

// TestRunInBackgroundStopsOnce: stop may be called again and again (and
// runs once more at cleanup) but cancels and waits only once.
func TestRunInBackgroundStopsOnce(t *testing.T) {
	r := &blockUntilCancel{}
	stop := RunInBackground(t, "blocker", r, 5*time.Second)
	stop()
	stop()
	if r.runs != 1 {
		t.Fatalf("Run called %d times", r.runs)
	}
}

func TestSyncBufferTakesConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 400 {
		t.Fatalf("%d bytes, want 400", n)
	}
}

func TestEventsFind(t *testing.T) {
	b := StartBroker(t)
	ev := CollectEvents(t, b, "hazgate/+/event")
	for _, p := range []string{`{"kind":"gap","seq":1}`, `not json`, `{"kind":"gap","seq":2,"reason":"buffer file corrupt"}`} {
		if err := b.Publish("hazgate/gw/event", []byte(p), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	WaitFor(t, 5*time.Second, "two events", func() bool { return len(ev.All()) == 2 })
	got, ok := ev.Find(map[string]any{"kind": "gap", "reason": "buffer file corrupt"})
	if !ok || got["seq"] != 2.0 {
		t.Fatalf("Find = %v, %v", got, ok)
	}
	if _, ok := ev.Find(map[string]any{"kind": "trip"}); ok {
		t.Fatal("found an event that never came")
	}
}

func TestDemoConfigYAMLParses(t *testing.T) {
	y := DemoConfigYAML(t, "127.0.0.1:1502", "tcp://127.0.0.1:1884", t.TempDir(), "heartbeat: 10s", "heartbeat: 1s")
	cfg, err := config.Parse("demo-test.yaml", y)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Devices[0].Address; got != "127.0.0.1:1502" {
		t.Errorf("first device at %s, want the test's plant", got)
	}
	if got := cfg.Uplink.Heartbeat.String(); got != "1s" {
		t.Errorf("heartbeat %s, want the replaced 1s", got)
	}
}
