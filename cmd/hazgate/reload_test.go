package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/testkit"
)

// fakeGateway records the configs it was asked to apply.
type fakeGateway struct {
	mu     sync.Mutex
	hashes []string
	refuse error
}

func (f *fakeGateway) Reload(_ context.Context, cfg *config.Config) (gateway.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return gateway.ReloadResult{}, f.refuse
	}
	f.hashes = append(f.hashes, cfg.Hash())
	return gateway.ReloadResult{NewHash: cfg.Hash()}, nil
}

func (f *fakeGateway) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.hashes...)
}

const watchedConfig = `gateway: {id: gw-1, enterprise_code: E1, data_dir: /tmp/x}
uplink: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - name: plc
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: LT-1, kind: level, area: holding, address: 0, range: {min: 0, max: 20}}
`

// TestConfigWatcher: a changed file is applied once it has settled; an
// invalid one is refused with its problems logged as `validate` prints
// them, and not retried until it changes; SIGHUP loads at once; a reload
// the gateway refuses is logged and the running config stays.
func TestConfigWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plant.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(watchedConfig)
	first, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.SyncBuffer
	fake := &fakeGateway{}
	hup := make(chan os.Signal, 1)
	w := &configWatcher{path: path, g: fake, log: slog.New(slog.NewTextHandler(&logs, nil)),
		every: 20 * time.Millisecond, hup: hup, running: first.Hash()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	defer func() { cancel(); <-done }()

	// An invalid file: refused, every problem logged with file and line.
	write(strings.Replace(watchedConfig, "max: 20", "max: 20, colour: red", 1))
	testkit.WaitFor(t, 10*time.Second, "the invalid file refused", func() bool { return strings.Contains(logs.String(), "not valid") })
	if !strings.Contains(logs.String(), path+":8:") || !strings.Contains(logs.String(), "unknown field") {
		t.Errorf("the problem is not logged as validate prints it:\n%s", logs.String())
	}
	if n := len(fake.applied()); n != 0 {
		t.Fatalf("an invalid file was applied %d times", n)
	}
	refusals := strings.Count(logs.String(), "not valid")
	time.Sleep(100 * time.Millisecond) // several polls: the same file is not tried again
	if n := strings.Count(logs.String(), "not valid"); n != refusals {
		t.Errorf("the same invalid file was refused %d times", n)
	}

	// Fixed: applied, once.
	changed := strings.Replace(watchedConfig, "max: 20", "max: 25", 1)
	write(changed)
	testkit.WaitFor(t, 10*time.Second, "the fixed file applied", func() bool { return len(fake.applied()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(fake.applied()); n != 1 {
		t.Errorf("applied %d times, want once", n)
	}

	// SIGHUP with the file unchanged: nothing to do, and said so.
	hup <- os.Interrupt
	testkit.WaitFor(t, 10*time.Second, "SIGHUP answered", func() bool { return strings.Contains(logs.String(), "config unchanged") })

	// The gateway refuses: logged, and the running config stays.
	fake.mu.Lock()
	fake.refuse = errors.New("section uplink changed: " + gateway.ErrRestartNeeded.Error())
	fake.mu.Unlock()
	write(strings.Replace(changed, "1883", "1884", 1))
	testkit.WaitFor(t, 10*time.Second, "the refusal logged", func() bool { return strings.Contains(logs.String(), "restart is needed") })
	if w2 := len(fake.applied()); w2 != 1 {
		t.Errorf("applied %d times", w2)
	}
}
