package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"hazgate/internal/history"
	"hazgate/internal/model"
)

// HistoryFile is the name of the local history inside the data directory.
const HistoryFile = history.File

// gatewayHistory is the local record of every durable sample: its store,
// and the writer that takes copies from the pipeline's committer.
type gatewayHistory struct {
	store   *history.Store
	writer  *history.Writer
	movedTo string // a corrupt history file moved aside at open
	close   sync.Once
}

// openHistory opens history.db when the config keeps history, and has the
// pipeline hand it every committed batch. A damaged file is moved aside:
// the record of the past must not stop the monitoring of the present.
func (g *Gateway) openHistory() error {
	h := g.cfg.History
	if !h.On() {
		return nil
	}
	path := filepath.Join(g.cfg.Gateway.DataDir, HistoryFile)
	st, movedTo, err := history.OpenOrRecover(path, history.Options{
		MaxAge:             h.MaxAge.D(),
		MaxBytes:           h.MaxBytes.Int64(),
		DownsampleAfter:    h.DownsampleAfter.D(),
		DownsampleInterval: h.DownsampleInterval.D(),
		Logger:             g.log.With("stage", "history"),
	})
	if err != nil {
		return fmt.Errorf("open history: %w", err)
	}
	g.hist = &gatewayHistory{store: st, writer: history.NewWriter(st), movedTo: movedTo}
	// Offer copies and never waits: a slow history disk drops history
	// writes (counted), it never holds up the committer.
	g.pipe.toHistory = func(samples []model.Sample) { g.hist.writer.Offer(samples) }
	return nil
}

// runHistory writes what the pipeline offers until ctx is done; the
// returned channel is closed when the writer has written what was queued.
func (g *Gateway) runHistory(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if g.hist == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		g.hist.writer.Run(ctx)
	}()
	return done
}

func (g *Gateway) closeHistory() {
	if g.hist == nil {
		return
	}
	g.hist.close.Do(func() {
		if err := g.hist.store.Close(); err != nil {
			g.log.Error("close history", "err", err)
		}
	})
}

// HistoryStats are the history's counters for the status page and tests.
type HistoryStats struct {
	Enabled bool
	Store   history.Stats
	Writer  history.WriterStats
}

// History returns the history's counters; safe from any goroutine.
func (g *Gateway) History() HistoryStats {
	if g.hist == nil {
		return HistoryStats{}
	}
	return HistoryStats{Enabled: true, Store: g.hist.store.Stats(), Writer: g.hist.writer.Stats()}
}

// historyReader is the status page's way into the history: it reads the
// store at request time and says so when history is off.
type historyReader struct{ g *Gateway }

func (r historyReader) Range(tag string, from, to time.Time, fn func(history.Record) error) error {
	if r.g.hist == nil {
		return history.ErrDisabled
	}
	return r.g.hist.store.Range(tag, from, to, fn)
}

func (r historyReader) Tags() ([]string, error) {
	if r.g.hist == nil {
		return nil, history.ErrDisabled
	}
	return r.g.hist.store.Tags()
}
