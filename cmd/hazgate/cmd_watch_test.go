package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/testkit"
)

func dataPayload(first, last int) []byte {
	var s []string
	for q := first; q <= last; q++ {
		s = append(s, fmt.Sprintf(`{"seq":%d,"tag":"LT-101","value":1,"quality":"good","time":"2026-11-23T10:00:00.000Z"}`, q))
	}
	return fmt.Appendf(nil, `{"v":1,"gateway":"gw-9","enterprise":"E","stream":"data","seq_first":%d,"seq_last":%d,"sent_at":"2026-11-23T10:00:00.000Z","samples":[%s]}`,
		first, last, strings.Join(s, ","))
}

// TestWatchExitCodes: an integrator's acceptance script relies on 0 when
// every payload was valid and no sequence number is missing, 1 otherwise.
func TestWatchExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		payloads [][]byte
		code     int
		inStdout string
	}{
		{"contiguous", [][]byte{dataPayload(1, 3), dataPayload(4, 6), dataPayload(4, 5)}, exitOK, "2 duplicates"},
		{"gap", [][]byte{dataPayload(1, 3), dataPayload(7, 8)}, exitFailure, "GAP!     gw-9/data: never received and not reported as dropped: 4..6"},
		{"invalid", [][]byte{[]byte(`{"v":1}`)}, exitFailure, "INVALID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := broker.Start("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// A retained status reaches the watch as soon as it has
			// subscribed: the data is published only then.
			status := `{"v":1,"gateway":"gw-9","enterprise":"E","state":"offline","reason":"shutdown","time":"2026-11-23T10:00:00.000Z","version":"v1","started_at":"2026-11-23T09:00:00.000Z","uptime_s":3600}`
			if err := b.Publish("hazgate/gw-9/status", []byte(status), true, 1); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr testkit.SyncBuffer
			done := make(chan int, 1)
			go func() {
				done <- run([]string{"watch", "--broker", b.URL(), "--gateway", "gw-9", "--for", "4s"}, &stdout, &stderr)
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(stdout.String(), "STATUS   gw-9 offline") {
				if time.Now().After(deadline) {
					t.Fatalf("watch did not subscribe within 10 s: %s", stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, p := range c.payloads {
				if err := b.Publish("hazgate/gw-9/data", p, false, 1); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case code := <-done:
				if code != c.code || !strings.Contains(stdout.String(), c.inStdout) {
					t.Errorf("exit %d, want %d; stdout lacks %q?\nstdout:\n%s\nstderr:\n%s", code, c.code, c.inStdout, stdout.String(), stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("watch --for 4s did not stop")
			}
		})
	}
	var stderr testkit.SyncBuffer
	if code := cmdWatch(context.Background(), nil, &stderr, &stderr); code != exitUsage {
		t.Errorf("no --broker: exit %d, want %d", code, exitUsage)
	}
}
