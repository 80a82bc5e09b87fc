package testkit

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"hazgate/configs"
)

var dataDirLine = regexp.MustCompile(`data_dir: \S+`)

// DemoConfigYAML is configs/demo.yaml pointed at the test's plant, broker
// and data directory, polling every 100 ms with an 80 ms timeout so a
// test sees plenty of samples. replace holds further old, new pairs of
// text to swap. Every old text must be in the file: when demo.yaml
// changes under a test, the test fails and says what to update instead
// of quietly running another configuration.
func DemoConfigYAML(t testing.TB, plantAddr, brokerURL, dataDir string, replace ...string) []byte {
	t.Helper()
	if len(replace)%2 != 0 {
		t.Fatalf("DemoConfigYAML: replace holds old, new pairs, got %d strings", len(replace))
	}
	pairs := append([]string{
		"127.0.0.1:15020", plantAddr,
		"tcp://127.0.0.1:1883", brokerURL,
		"interval: 500ms", "interval: 100ms",
		"timeout: 300ms", "timeout: 80ms",
	}, replace...)
	s := string(configs.DemoYAML())
	for i := 0; i < len(pairs); i += 2 {
		old, repl := pairs[i], pairs[i+1]
		if !strings.Contains(s, old) {
			t.Fatalf("configs/demo.yaml no longer contains %q; update this test", old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	s = dataDirLine.ReplaceAllString(s, fmt.Sprintf("data_dir: %q", dataDir))
	return []byte(s)
}
