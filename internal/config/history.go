package config

import "time"

// Defaults of the history section.
const (
	DefaultHistoryMaxAge             = Duration(720 * time.Hour) // 30 days: SAWS Order 40
	DefaultHistoryMaxBytes           = ByteSize(1 << 30)
	DefaultHistoryDownsampleAfter    = Duration(24 * time.Hour)
	DefaultHistoryDownsampleInterval = Duration(time.Minute)
)

// History is the local record of every sample (internal/history): kept
// after delivery for the retention period, exported with `hazgate history
// export`, drawn as a trend on the status page.
type History struct {
	Enabled            *bool    `yaml:"enabled"`             // default true
	MaxAge             Duration `yaml:"max_age"`             // default 720h (30 days); 0 = no age limit
	MaxBytes           ByteSize `yaml:"max_bytes"`           // default 1GiB; at least 1MiB
	DownsampleAfter    Duration `yaml:"downsample_after"`    // default 24h; shorter than max_age
	DownsampleInterval Duration `yaml:"downsample_interval"` // default 1m; 1s..downsample_after
}

// On says whether history is kept.
func (h History) On() bool { return h.Enabled == nil || *h.Enabled }
