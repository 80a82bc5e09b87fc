package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hazgate/buffer"
	"hazgate/internal/gateway"
	"hazgate/internal/model"
	"hazgate/internal/testkit"
)

// TestCorruptBufferFile: a buffer file ruined by a power cut or a failing
// flash card must not stop the gateway or make it crash-loop. It moves the
// file aside (kept for forensics), starts on a fresh one, and tells the
// platform in an event that the records in the old file were not sent.
func TestCorruptBufferFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway three times")
	}
	ruin := map[string]func(t *testing.T, path string){
		"truncated": func(t *testing.T, path string) {
			// A file cut short by a power cut during its growth: the
			// header pages survive, the records' pages do not. (The file
			// grows in large sparse steps, so cutting a fraction of its
			// size may cut nothing that is in use.)
			writeRealBuffer(t, path)
			if err := os.Truncate(path, 3*4096+100); err != nil {
				t.Fatal(err)
			}
		},
		"zero-filled": func(t *testing.T, path string) {
			if err := os.WriteFile(path, make([]byte, 64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"random garbage": func(t *testing.T, path string) {
			junk := make([]byte, 64<<10)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range junk {
				junk[i] = byte(rng.UintN(256))
			}
			if err := os.WriteFile(path, junk, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, ruinFile := range ruin {
		t.Run(name, func(t *testing.T) {
			plant, b := plantAndBroker(t)
			dataDir := t.TempDir()
			path := filepath.Join(dataDir, gateway.BufferFile)
			ruinFile(t, path)
			ruined, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			events := testkit.CollectEvents(t, b, "hazgate/+/event")
			cfg := loadConfig(t, testkit.DemoConfigYAML(t, plant.Addr(), b.URL(), dataDir))
			g, err := gateway.New(cfg, gateway.Options{})
			if err != nil {
				t.Fatalf("the gateway refused to start on a %s buffer file: %v", name, err)
			}
			stop := testkit.RunInBackground(t, "gateway", g, 15*time.Second)

			waitFor(t, 10*time.Second, "an event saying the buffer file was moved aside", func() bool {
				_, ok := events.Find(map[string]any{"kind": string(model.Gap), "reason": "buffer file corrupt"})
				return ok
			})
			stop()
			// Numbering goes on above anything the ruined file handed out
			// (the platform would drop reused numbers as duplicates), and
			// the gap says which numbers were skipped.
			ev, _ := events.Find(map[string]any{"kind": string(model.Gap), "reason": "buffer file corrupt"})
			if gap, ok := ev["gap"].(map[string]any); !ok || gap["cause"] != "buffer file damaged" || gap["first_seq"] != 1.0 {
				t.Errorf("the gap event has no range of skipped numbers: %v", ev)
			} else if last, _ := gap["last_seq"].(float64); last < 1.7e15 || ev["seq"].(float64) <= last {
				t.Errorf("skipped 1..%.0f, the event itself is %v: want numbers from the clock floor on", last, ev["seq"])
			}

			moved, _ := filepath.Glob(path + ".corrupt-*")
			if len(moved) != 1 {
				t.Fatalf("want the ruined file moved aside once, found %v", moved)
			}
			kept, err := os.ReadFile(moved[0])
			if err != nil || string(kept) != string(ruined) {
				t.Errorf("the moved-aside file is not the ruined one byte for byte (err %v)", err)
			}
			// The fresh buffer works across a restart: no crash loop.
			g2, err := gateway.New(cfg, gateway.Options{})
			if err != nil {
				t.Fatalf("second start on the fresh buffer: %v", err)
			}
			ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel2()
			if err := g2.Run(ctx2); err != nil {
				t.Errorf("second run: %v", err)
			}
			if again, _ := filepath.Glob(path + ".corrupt-*"); len(again) != 1 {
				t.Errorf("the fresh buffer was treated as corrupt too: %v", again)
			}
		})
	}
}

// writeRealBuffer makes a buffer file with a few thousand records, as a
// gateway leaves it.
func writeRealBuffer(t *testing.T, path string) {
	t.Helper()
	buf, err := buffer.Open(path, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := 0; i < 20; i++ {
		samples := make([]model.Sample, 200)
		for j := range samples {
			samples[j] = model.Sample{Tag: "LT-101", Device: "plc", Value: float64(j), Time: now}
		}
		if err := buf.Append(context.Background(), nil, samples); err != nil {
			t.Fatal(err)
		}
	}
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
}
