package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// TestDiskFullOnTmpfs puts the data directory on a small tmpfs (needs
// root; skipped where mounting is not allowed), runs the real binary with
// the broker away so the buffer must grow, and fills the file system. The
// gateway must not stop: the overfill interlock still closes the valve with
// the disk full; when space and the broker come back, the platform gets
// storage_fault and storage_restored events, and every sequence number of
// both streams (samples that could not be stored never got one).
func TestDiskFullOnTmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and fills it (about 30 s)")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", data).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): %v %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", data).Run() })

	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	addr := b.Addr()
	coll := newCollector()
	coll.attach(t, b)

	// The demo plant with its overfill interlock, plus a bulk device of 100
	// registers every 20 ms (~5000 samples/s) so the buffer grows fast.
	cfg := string(testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), data))
	var bulk strings.Builder
	fmt.Fprintf(&bulk, "devices:\n  - name: bulk\n    protocol: modbus-tcp\n    address: %s\n    interval: 20ms\n    timeout: 15ms\n    tags:\n", plant.Addr())
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&bulk, "      - {name: R-%03d, kind: count, area: holding, address: %d}\n", i, i)
	}
	if !strings.Contains(cfg, "\ndevices:\n") {
		t.Fatal("configs/demo.yaml no longer has a top-level devices list; update this test")
	}
	cfg = strings.Replace(cfg, "\ndevices:\n", "\n"+bulk.String(), 1)
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", []byte(cfg))

	var logs testkit.SyncBuffer
	cmd := exec.Command(bin, "run", "-c", cfgPath, "--log-level", "warn", "--log-repeat", "0")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("gateway output:\n%s", logs.String())
		}
	}()
	waitFor(t, 20*time.Second, "first data", func() bool { return coll.max("data") > 100 })

	b.Close() // the backlog must now live on the (filling) disk
	filler, err := os.Create(filepath.Join(data, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			break
		}
	}
	filler.Close()
	waitFor(t, 60*time.Second, "a failed buffer commit", func() bool {
		return strings.Contains(logs.String(), "buffer commit failed")
	})

	// The disk is full: the interlock must still act.
	if plant.Now()[sim.XV101] != 1 {
		t.Fatalf("XV-101 = %v before the overfill, want 1 (open)", plant.Now()[sim.XV101])
	}
	if err := plant.Set(sim.LT101, 19.0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "XV-101 closed by IL-101 with the disk full", func() bool { return plant.Now()[sim.XV101] == 0 })
	select {
	case err := <-exited:
		t.Fatalf("the gateway exited with the disk full: %v", err)
	default:
	}

	// Space and broker come back.
	if err := os.Remove(filepath.Join(data, "filler")); err != nil {
		t.Fatal(err)
	}
	b2 := testkit.StartBrokerOn(t, addr)
	coll.attach(t, b2)
	waitFor(t, 60*time.Second, "storage_fault and storage_restored at the platform", func() bool {
		return coll.kindCount("storage_fault") >= 1 && coll.kindCount("storage_restored") >= 1
	})
	before := coll.max("data")
	waitFor(t, 30*time.Second, "live data after the disk returned", func() bool { return coll.max("data") > before+1000 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("orderly stop after the disk-full spell: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no orderly stop within 20 s")
	}
	for _, stream := range []string{"data", "event"} {
		if m := coll.missing(stream); len(m) > 0 {
			t.Errorf("%s: %d sequence numbers never arrived: %s", stream, len(m), summarize(m))
		}
	}
	t.Logf("interlock_tripped events %d, storage_fault %d, storage_restored %d", coll.kindCount("interlock_tripped"), coll.kindCount("storage_fault"), coll.kindCount("storage_restored"))
}

// TestReadOnlyDataDirAtStart: a data directory on a read-only file system
// (an SD card the kernel remounted read-only after errors) stops the
// gateway at start with exit code 1 and a message naming the directory,
// the decision docs/operator-guide.md §7 records, rather than a gateway
// that claims to buffer what it cannot.
func TestReadOnlyDataDirAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", data).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): %v %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", data).Run() })
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), data))
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("exit: %v, want exit code 1\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the gateway ran on a read-only data directory\n%s", out.String())
	}
	if !strings.Contains(out.String(), data) || !strings.Contains(out.String(), "read-only") {
		t.Errorf("the message does not name the directory and the cause:\n%s", out.String())
	}
}
