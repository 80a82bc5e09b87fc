package gateway

import (
	"sync"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/uplink"
)

// latestValues keeps the newest durable sample of every tag and the outcome
// of the last buffer commit, for the status page and /healthz. The
// committer writes it once per commit; readers copy out under the lock.
type latestValues struct {
	mu       sync.Mutex
	byTag    map[string]model.Sample
	commitAt time.Time // end of the last commit that had records
	err      error     // of that commit; nil when it was durable
	commits  uint64
}

// note records a commit of samples that ended with err. Only durable
// samples become the latest values: the page shows what the buffer holds.
func (l *latestValues) note(samples []model.Sample, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.commitAt, l.err = time.Now(), err
	l.commits++
	if err != nil {
		return
	}
	if l.byTag == nil {
		l.byTag = make(map[string]model.Sample)
	}
	for _, s := range samples {
		if old, ok := l.byTag[s.Tag]; !ok || !s.Time.Before(old.Time) {
			l.byTag[s.Tag] = s
		}
	}
}

// Alive reports whether the pipeline, which runs the rules and the
// interlocks, has turned within the last few seconds: what the systemd
// watchdog (internal/sdnotify) pings for. A stuck disk does not make it
// false (the pipeline goes on without it); a stuck pipeline does.
func (g *Gateway) Alive() bool {
	beat := g.pipe.beat.Load()
	return beat != 0 && time.Since(time.Unix(0, beat)) < aliveWithin
}

// aliveWithin is many ticks (tickEvery) long, so that a loaded machine
// does not trip the watchdog, and far shorter than a sensible WatchdogSec.
const aliveWithin = 5 * time.Second

// CommitStatus is the outcome of the pipeline's last buffer commit.
type CommitStatus struct {
	At      time.Time // zero before the first commit with records
	Err     error     // nil when the last commit was durable
	Commits uint64    // commits with records since start
}

// Latest returns the newest durable sample of every tag that has one, and
// the outcome of the last commit. Safe to call from any goroutine.
func (g *Gateway) Latest() (map[string]model.Sample, CommitStatus) {
	l := &g.pipe.latest
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]model.Sample, len(l.byTag))
	for k, v := range l.byTag {
		out[k] = v
	}
	return out, CommitStatus{At: l.commitAt, Err: l.err, Commits: l.commits}
}

// UplinkStats returns the uplink's counters. Safe from any goroutine.
func (g *Gateway) UplinkStats() uplink.Stats { return g.up.Stats() }

// Config is the configuration the gateway runs with (the newest one
// after a reload). Do not modify it.
func (g *Gateway) Config() *config.Config { cfg, _, _ := g.current(); return cfg }
