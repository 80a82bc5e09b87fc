package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hazgate/internal/testkit"
)

// TestValidateExitCodes: an integrator's script relies on 0 for a valid
// file and 2 for an invalid one, with every problem on stderr.
func TestValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "plant.yaml")
	if err := os.WriteFile(bad, []byte("gateway:\n  id: gw-1\n  enterprise_code: E1\n  colour: red\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr []string
	}{
		{"example is valid", []string{"validate", "../../configs/example.yaml"}, exitOK, "valid", nil},
		{"demo is valid", []string{"validate", "../../configs/demo.yaml"}, exitOK, "valid", nil},
		{"invalid names file, line and field", []string{"validate", bad}, exitUsage, "", []string{
			bad + ":4:3: gateway.colour: unknown field",
			bad + ":1:1: devices: missing",
		}},
		{"one bad among good fails", []string{"validate", "../../configs/demo.yaml", bad}, exitUsage, "demo.yaml: valid", nil},
		{"missing file", []string{"validate", filepath.Join(dir, "nope.yaml")}, exitUsage, "", []string{"nope.yaml"}},
		{"no file", []string{"validate"}, exitUsage, "", []string{"name at least one"}},
		{"run refuses an invalid file", []string{"run", "-c", bad}, exitUsage, "", []string{"gateway.colour: unknown field", "nothing started"}},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", []string{"unknown command"}},
		{"version", []string{"version"}, exitOK, "hazgate ", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(c.args, &out, &errOut)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), c.inStdout) {
				t.Errorf("stdout %q lacks %q", out.String(), c.inStdout)
			}
			for _, want := range c.inStderr {
				if !strings.Contains(errOut.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
				}
			}
		})
	}
}

// TestDemoRunsAndStops runs the demo briefly on free ports: the command a
// newcomer types first must start and stop by itself.
func TestDemoRunsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 3 s")
	}
	var out, errOut testkit.SyncBuffer
	code := run([]string{"demo", "--for", "3s", "--mqtt-listen", "127.0.0.1:0", "--plant-listen", "127.0.0.1:0", "--reactor-listen", "127.0.0.1:0"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("demo exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"ONLINE", "START", "OFFLINE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunUnusableDataDir: a data directory that cannot be made stops the
// gateway at once with exit 1 and a message naming it (docs/operator-guide.md
// §7): no half-started gateway that claims to buffer what it cannot.
func TestRunUnusableDataDir(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	demo, err := os.ReadFile("../../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "data_dir: ./demo-data"
	if !bytes.Contains(demo, []byte(anchor)) {
		t.Fatalf("configs/demo.yaml no longer contains %q; update this test", anchor)
	}
	dataDir := filepath.Join(blocker, "data")
	cfg := filepath.Join(dir, "plant.yaml")
	if err := os.WriteFile(cfg, bytes.Replace(demo, []byte(anchor), []byte("data_dir: "+dataDir), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"run", "-c", cfg, "--log-level", "error"}, &out, &errOut)
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(errOut.String(), blocker) || !strings.Contains(errOut.String(), "data directory") {
		t.Errorf("stderr does not name the data directory:\n%s", errOut.String())
	}
}
