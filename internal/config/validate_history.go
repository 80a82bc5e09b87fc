package config

import "time"

// history checks the history section and fills in its defaults. Numbers
// take their default only when absent, so an explicit max_age: 0 keeps
// its meaning (no age limit).
func (v *validator) history(c *Config) {
	h := &c.History
	setDur := func(path string, d *Duration, def Duration) {
		if !v.present(path) {
			*d = def
		}
	}
	setDur("history.max_age", &h.MaxAge, DefaultHistoryMaxAge)
	setDur("history.downsample_after", &h.DownsampleAfter, DefaultHistoryDownsampleAfter)
	setDur("history.downsample_interval", &h.DownsampleInterval, DefaultHistoryDownsampleInterval)
	if !v.present("history.max_bytes") {
		h.MaxBytes = DefaultHistoryMaxBytes
	}
	if !h.On() {
		return
	}
	if h.MaxBytes < 1<<20 {
		v.report("history.max_bytes", "%s is too small (at least 1MiB; 30 days of 50 tags polled every second need about 300MB with the default downsampling)", h.MaxBytes)
	}
	if h.MaxAge < 0 {
		v.report("history.max_age", "%s is negative (0 means no age limit; SAWS Order 40 asks for at least 720h)", h.MaxAge)
	}
	if h.DownsampleAfter < 0 {
		v.report("history.downsample_after", "%s is negative (0 lets any sample be downsampled when the bytes run short)", h.DownsampleAfter)
	} else if h.MaxAge > 0 && h.DownsampleAfter >= h.MaxAge {
		if v.present("history.downsample_after") {
			v.report("history.downsample_after", "%s is not shorter than history.max_age %s (downsampling would never apply)", h.DownsampleAfter, h.MaxAge)
		} else {
			v.report("history.max_age", "%s is not longer than history.downsample_after (default %s): set a shorter downsample_after", h.MaxAge, h.DownsampleAfter)
		}
	}
	switch iv := h.DownsampleInterval; {
	case iv < Duration(time.Second):
		v.report("history.downsample_interval", "%s is too short (at least 1s)", iv)
	case iv > Duration(24*time.Hour):
		v.report("history.downsample_interval", "%s is too long (at most 24h)", iv)
	case Duration(time.Hour)%iv != 0 && iv%Duration(time.Hour) != 0:
		v.report("history.downsample_interval", "%s does not divide an hour or a whole number of hours (use e.g. 10s, 1m, 5m, 15m, 1h)", iv)
	}
}
