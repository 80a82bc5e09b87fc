// Package web serves the gateway's local HTTP endpoints: the status page
// at / (Chinese and English), /metrics in the Prometheus text format and
// /healthz for a watchdog. It reads the gateway only through a Snapshot
// taken at request time, so a page or a scrape never holds a lock of the
// acquisition path for longer than a copy. Operator actions (acknowledge,
// shelve, reset, bypass; operate.go) go to the gateway through an
// Operator, which records each as an event.
package web

import (
	"time"

	"hazgate/buffer"
	"hazgate/internal/model"
	"hazgate/internal/scheduler"
	"hazgate/rules"
	"hazgate/rules/interlock"
	"hazgate/uplink"
)

// Snapshot is what the pages show: one consistent-enough look at the
// gateway (each part is copied under its own lock).
type Snapshot struct {
	Now        time.Time
	GatewayID  string
	Version    string
	ConfigHash string
	Uptime     time.Duration
	Uplink     uplink.Stats // Connected is the broker state
	Buffer     buffer.Stats
	Devices    []Device
	Active     []rules.ActiveAlarm // every alarm not in the normal state
	Interlocks []interlock.Status
	Commit     Commit
	History    *HistoryStats // nil when the gateway keeps no history (history.go)
}

// Device is one device loop and its tags.
type Device struct {
	Name     string
	Protocol string
	Address  string
	Interval time.Duration
	Timeout  time.Duration
	Stats    scheduler.LoopStats
	Tags     []Tag
}

// Tag is one configured tag with its newest durable sample.
type Tag struct {
	Name        string
	Description string
	Unit        string
	Kind        string
	Digital     bool
	Sample      model.Sample // zero until the first commit holding this tag
	HasSample   bool
}

// Commit is the outcome of the pipeline's last buffer commit.
type Commit struct {
	At  time.Time // zero before the first
	Err error     // nil when it was durable
}

// Source takes a snapshot; it must be safe to call from any goroutine.
type Source func() Snapshot
