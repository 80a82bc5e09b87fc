package buffer

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hazgate/internal/model"
)

// killChildEnv switches the test binary into the appending child of
// TestKill9; its value is the buffer path.
const killChildEnv = "HAZGATE_BUFFER_KILL_CHILD"

// TestKillChild is not a test of its own: it is the child process that
// TestKill9 starts and kills. It appends forever (bounded to 30 s) and,
// after each Append returns, prints the last seq it committed:
//
//	data <last seq>
//	event <seq>
//	ack <first> <last>   (printed before the Ack, which may or may not land)
//
// Every sample's Value and every event's Value is its expected seq, so the
// parent can tell a reused or shifted seq from a correct one.
func TestKillChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("child process of TestKill9")
	}
	b, err := Open(path, Options{})
	if err != nil {
		fmt.Printf("open-error %v\n", err)
		os.Exit(3)
	}
	st := b.Stats()
	nextData, nextEvent := st.Data.NextSeq, st.Event.NextSeq
	ackedTo := st.Data.OldestSeq
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		n := 20 + i%80
		samples := mkSamples(n, float64(nextData), t0)
		var events []model.Event
		if i%5 == 0 {
			e := mkEvent("child alarm", t0)
			e.Value = model.Float(float64(nextEvent))
			events = append(events, e)
		}
		if err := b.Append(context.Background(), events, samples); err != nil {
			fmt.Printf("append-error %v\n", err)
			os.Exit(4)
		}
		nextData += uint64(n)
		fmt.Printf("data %d\n", nextData-1)
		if len(events) > 0 {
			fmt.Printf("event %d\n", nextEvent)
			nextEvent++
		}
		if i%10 == 9 && nextData > 500 && ackedTo < nextData-500 {
			// Ack an old slice, as the uplink would, to have deletes in
			// flight when the kill comes.
			first, last := max(ackedTo, 1), nextData-400
			fmt.Printf("ack %d %d\n", first, last)
			b.Ack(model.StreamData, first, last)
			ackedTo = last + 1
		}
	}
	os.Exit(0)
}

type ackedRange struct{ first, last uint64 }

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "buf.db")
	var (
		committedData  = map[uint64]bool{} // last seqs of committed data appends
		committedEvent = map[uint64]bool{}
		acked          []ackedRange
		prevNextData   uint64 = 1
		prevNextEvent  uint64 = 1
	)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	const rounds = 6
	for round := range rounds {
		lines := runAndKill(t, path, time.Duration(20+rng.IntN(250))*time.Millisecond)
		var firstData uint64
		for _, ln := range lines {
			f := strings.Fields(ln)
			num := func(i int) uint64 {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatalf("child line %q: %v", ln, err)
				}
				return v
			}
			switch {
			case len(f) == 2 && f[0] == "data":
				committedData[num(1)] = true
				if firstData == 0 {
					firstData = num(1)
				}
			case len(f) == 2 && f[0] == "event":
				committedEvent[num(1)] = true
				if num(1) < prevNextEvent {
					t.Fatalf("round %d: event seq %d reused (next was %d)", round, num(1), prevNextEvent)
				}
			case len(f) == 3 && f[0] == "ack":
				acked = append(acked, ackedRange{num(1), num(2)})
			default:
				t.Fatalf("round %d: child said %q", round, ln)
			}
		}
		if firstData != 0 && firstData < prevNextData {
			t.Fatalf("round %d: data seq %d reused (next was %d)", round, firstData, prevNextData)
		}

		// Reopen and check that everything reported is there.
		b, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		data := readAll(t, b, model.StreamData)
		present := make(map[uint64]bool, len(data))
		var maxData uint64
		for _, r := range data {
			if r.Sample.Value != float64(r.Seq) {
				t.Fatalf("round %d: data seq %d holds value %v: seq reused or shifted", round, r.Seq, r.Sample.Value)
			}
			present[r.Seq] = true
			maxData = max(maxData, r.Seq)
		}
		isAcked := func(seq uint64) bool {
			for _, a := range acked {
				if seq >= a.first && seq <= a.last {
					return true
				}
			}
			return false
		}
		missing := 0
		for seq := range committedData {
			if !present[seq] && !isAcked(seq) {
				missing++
				t.Errorf("round %d: committed data seq %d lost", round, seq)
			}
		}
		// Every seq up to the highest committed one that was not acked
		// must be there: Append returns after all of its records commit.
		var maxCommitted uint64
		for seq := range committedData {
			maxCommitted = max(maxCommitted, seq)
		}
		for seq := uint64(1); seq <= maxCommitted; seq++ {
			if !present[seq] && !isAcked(seq) {
				missing++
				if missing < 5 {
					t.Errorf("round %d: data seq %d (below committed %d) lost", round, seq, maxCommitted)
				}
			}
		}
		events := readAll(t, b, model.StreamEvent)
		evPresent := map[uint64]bool{}
		for _, r := range events {
			if r.Event.Value == nil || *r.Event.Value != float64(r.Seq) {
				t.Fatalf("round %d: event seq %d holds %+v", round, r.Seq, r.Event)
			}
			evPresent[r.Seq] = true
		}
		for seq := range committedEvent {
			if !evPresent[seq] {
				t.Errorf("round %d: committed event seq %d lost", round, seq)
			}
		}
		st := b.Stats()
		if st.Data.NextSeq <= maxData || st.Data.NextSeq <= maxCommitted || st.Data.NextSeq < prevNextData {
			t.Fatalf("round %d: next data seq %d, stored up to %d, committed up to %d, before %d", round, st.Data.NextSeq, maxData, maxCommitted, prevNextData)
		}
		if st.Data.Records != uint64(len(data)) || st.Event.Records != uint64(len(events)) {
			t.Fatalf("round %d: meta counts %d/%d, stored %d/%d", round, st.Data.Records, st.Event.Records, len(data), len(events))
		}
		prevNextData, prevNextEvent = st.Data.NextSeq, st.Event.NextSeq
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d lines from the child, %d data records stored (up to %d), next %d", round, len(lines), len(data), maxData, prevNextData)
		if t.Failed() {
			return
		}
	}
	if len(committedData) < rounds {
		t.Fatalf("the child committed only %d appends in %d rounds: the test proved little", len(committedData), rounds)
	}
}

// runAndKill starts the child, waits until it has committed at least once
// and then for delay, kills it with SIGKILL and returns the complete lines
// it printed.
func runAndKill(t *testing.T, path string, delay time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		lines []string
	)
	first := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			once.Do(func() { close(first) })
		}
	}()
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child committed nothing within 20s")
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("child output did not end after SIGKILL")
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v (%v)", cmd.ProcessState, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return lines
}
