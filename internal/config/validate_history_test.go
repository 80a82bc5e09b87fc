package config

import (
	"strings"
	"testing"
	"time"
)

func TestHistoryDefaults(t *testing.T) {
	cfg, err := Parse("plant.yaml", []byte(webBase))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.History
	if !h.On() || h.MaxAge != DefaultHistoryMaxAge || h.MaxBytes != DefaultHistoryMaxBytes ||
		h.DownsampleAfter != DefaultHistoryDownsampleAfter || h.DownsampleInterval != DefaultHistoryDownsampleInterval {
		t.Fatalf("defaults: %+v", h)
	}
	if h.MaxAge.D() != 30*24*time.Hour {
		t.Fatalf("the default keeps %s, not the 30 days SAWS Order 40 asks for", h.MaxAge)
	}
	cfg, err = Parse("plant.yaml", []byte(webBase+"history:\n  max_age: 0\n  max_bytes: 4GiB\n  downsample_after: 168h\n  downsample_interval: 5m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.History; h.MaxAge != 0 || h.MaxBytes != 4<<30 || h.DownsampleAfter.D() != 168*time.Hour || h.DownsampleInterval.D() != 5*time.Minute {
		t.Fatalf("explicit values: %+v", h)
	}
	cfg, err = Parse("plant.yaml", []byte(webBase+"history:\n  enabled: false\n  max_bytes: 1KiB\n"))
	if err != nil {
		t.Fatalf("a disabled history is not checked further: %v", err)
	}
	if cfg.History.On() {
		t.Fatal("enabled: false is on")
	}
}

func TestHistoryProblems(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"history:\n  max_bytes: 512KiB\n", "plant.yaml:13:14: history.max_bytes: 512KiB is too small (at least 1MiB"},
		{"history:\n  max_age: -1h\n", "plant.yaml:13:12: history.max_age: -1h0m0s is negative (0 means no age limit; SAWS Order 40 asks for at least 720h)"},
		{"history:\n  max_age: 24h\n", "plant.yaml:13:12: history.max_age: 24h0m0s is not longer than history.downsample_after (default 24h0m0s): set a shorter downsample_after"},
		{"history:\n  max_age: 48h\n  downsample_after: 72h\n", "plant.yaml:14:21: history.downsample_after: 72h0m0s is not shorter than history.max_age 48h0m0s (downsampling would never apply)"},
		{"history:\n  downsample_after: -5m\n", "plant.yaml:13:21: history.downsample_after: -5m0s is negative"},
		{"history:\n  downsample_interval: 500ms\n", "plant.yaml:13:24: history.downsample_interval: 500ms is too short (at least 1s)"},
		{"history:\n  downsample_interval: 48h\n", "plant.yaml:13:24: history.downsample_interval: 48h0m0s is too long (at most 24h)"},
		{"history:\n  downsample_interval: 7m\n", "plant.yaml:13:24: history.downsample_interval: 7m0s does not divide an hour"},
		{"history:\n  keep: forever\n", "plant.yaml:13:3: history.keep"},
	} {
		got := strings.Join(problems(t, webBase+tt.src), "\n")
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q:\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}
