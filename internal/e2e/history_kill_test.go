package e2e

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/history"
	"hazgate/internal/testkit"
)

// TestKilledGatewayHistory kills the gateway with SIGKILL several times at
// random moments in its work and checks the local history's stated
// policy (docs/history.md, Durability): every start opens history.db as
// it is (never moved aside as corrupt), and a kill loses at most about
// the last flush (1 s) of samples.
func TestKilledGatewayHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it (about 40 s)")
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	plant, b := plantAndBroker(t)
	coll := newCollector()
	coll.attach(t, b)
	dataDir := filepath.Join(dir, "data")
	cfgPath := testkit.WriteFile(t, dir, "gateway.yaml", testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), dataDir))

	var logs testkit.SyncBuffer
	testkit.LogOnFailure(t, "gateway output", &logs)
	type run struct{ start, kill time.Time }
	var runs []run
	const kills = 6
	for i := range kills {
		started := time.Now().UTC()
		cmd := startGateway(t, bin, cfgPath, &logs, "--log-level", "warn")
		before := coll.max("data")
		waitFor(t, 15*time.Second, fmt.Sprintf("data after start %d", i+1), func() bool { return coll.max("data") > before })
		// 3 s of work, then the kill lands at a different point of the
		// writer's 1 s flush each time
		time.Sleep(3*time.Second + time.Duration(i)*170*time.Millisecond)
		killed := time.Now().UTC()
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = cmd.Wait()
		runs = append(runs, run{started, killed})
	}

	if moved, _ := filepath.Glob(filepath.Join(dataDir, history.File+".corrupt-*")); len(moved) > 0 {
		t.Fatalf("a kill left history.db unreadable: %v", moved)
	}
	st, err := history.Open(filepath.Join(dataDir, history.File), history.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("history after %d kills: %v", kills, err)
	}
	defer st.Close()
	for i, r := range runs {
		// the newest record of the run is at most one flush (1 s) plus a
		// generous commit time on a loaded machine older than the kill
		var newest time.Time
		if err := st.Range("LT-101", r.start, r.kill, func(rec history.Record) error {
			newest = rec.Time
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if lost := r.kill.Sub(newest); newest.IsZero() || lost > 3*time.Second {
			t.Errorf("run %d (%s .. killed %s): newest LT-101 record %s, %s before the kill (allowed: 3 s)",
				i+1, r.start.Format(time.TimeOnly), r.kill.Format(time.TimeOnly), newest.Format(time.TimeOnly), lost)
		} else {
			t.Logf("run %d: history lost the last %s before the kill", i+1, lost.Round(time.Millisecond))
		}
	}
	t.Logf("history after %d kills: %+v", kills, st.Stats())
}
