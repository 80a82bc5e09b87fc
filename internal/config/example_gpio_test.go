package config

import (
	"os"
	"strings"
	"testing"
)

// TestExampleGPIOBlocksAreValid uncomments the GPIO example blocks of
// configs/example.yaml the way an integrator would (the "# " after the
// indentation goes; "# # text" stays a comment) and validates the result:
// a commented example is never parsed otherwise, so it would rot unseen.
func TestExampleGPIOBlocksAreValid(t *testing.T) {
	src, err := os.ReadFile("../../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "# ---- GPIO example: begin ----", "# ---- GPIO example: end ----"
	lines := strings.Split(string(src), "\n")
	blocks, in := 0, false
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case begin:
			if in {
				t.Fatalf("example.yaml:%d: a begin inside a GPIO block", i+1)
			}
			in = true
			blocks++
			continue
		case end:
			in = false
			continue
		}
		if !in {
			continue
		}
		body := strings.TrimLeft(l, " ")
		if !strings.HasPrefix(body, "# ") && body != "#" {
			t.Fatalf("example.yaml:%d: %q in a GPIO block is not commented out", i+1, l)
		}
		lines[i] = l[:len(l)-len(body)] + strings.TrimPrefix(strings.TrimPrefix(body, "#"), " ")
	}
	if in || blocks != 3 {
		t.Fatalf("example.yaml: %d GPIO blocks (open at the end: %v), want 3 closed ones", blocks, in)
	}
	cfg, err := Parse("example.yaml (GPIO uncommented)", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("the GPIO example does not validate once uncommented:\n%v", err)
	}
	tags := cfg.TagByName()
	for _, c := range []struct {
		tag      string
		dir      string
		writable bool
	}{{"GSA-201", GPIOIn, false}, {"XA-901", GPIOOut, true}, {"XY-901", GPIOOut, true}} {
		tg := tags[c.tag]
		if tg == nil || tg.GPIO == nil || tg.GPIO.Direction != c.dir || tg.Writable != c.writable {
			t.Errorf("%s = %+v, want a GPIO %s line, writable %v", c.tag, tg, c.dir, c.writable)
		}
	}
	if xy := tags["XY-901"]; xy != nil && xy.GPIO != nil && (xy.GPIO.Initial == nil || *xy.GPIO.Initial != 1) {
		t.Errorf("XY-901 initial = %v, want 1 (held energised: de-energise to trip)", xy.GPIO.Initial)
	}
	if len(cfg.Interlocks) != 3 || cfg.Interlocks[2].Name != "IL-103" {
		t.Errorf("interlocks %d, want IL-103 third", len(cfg.Interlocks))
	}
	if len(cfg.AlarmOutputs) != 1 || cfg.AlarmOutputs[0].Tag != "XA-901" {
		t.Errorf("alarm_outputs = %+v, want the XA-901 beacon", cfg.AlarmOutputs)
	}
}
