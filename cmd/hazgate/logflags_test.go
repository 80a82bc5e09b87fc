package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogFlags: auto writes JSON under systemd and text elsewhere; the
// same message repeated is written once (with --log-repeat 0, every time);
// an unknown format is refused.
func TestLogFlags(t *testing.T) {
	logTo := func(t *testing.T, args ...string) string {
		t.Helper()
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var lf logFlags
		lf.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "log")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		log, err := lf.logger(f)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			log.Warn("device down", "device", "plc-1", "err", "i/o timeout")
		}
		lf.flush()
		f.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Setenv("JOURNAL_STREAM", "")
	t.Setenv("INVOCATION_ID", "")
	if out := logTo(t); !strings.HasPrefix(out, "time=") || strings.Count(out, "\n") != 2 || !strings.Contains(out, "repeated=3") {
		t.Errorf("auto outside systemd, repeats held back: want text, 2 lines (first, last with repeated=3):\n%s", out)
	}
	if out := logTo(t, "--log-repeat", "0"); strings.Count(out, "\n") != 5 {
		t.Errorf("--log-repeat 0: want every line:\n%s", out)
	}
	t.Setenv("INVOCATION_ID", "0123abcd")
	out := logTo(t)
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &rec); err != nil || rec["msg"] != "device down" || rec["level"] != "WARN" {
		t.Errorf("auto under systemd: want JSON: %v\n%s", err, out)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var lf logFlags
	lf.register(fs)
	_ = fs.Parse([]string{"--log-format", "xml"})
	if _, err := lf.logger(os.Stderr); err == nil {
		t.Error("--log-format xml accepted")
	}
}
