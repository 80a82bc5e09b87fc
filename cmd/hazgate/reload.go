package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/gateway"
)

// defaultReloadPoll is how often `hazgate run` looks at its config file.
const defaultReloadPoll = 2 * time.Second

// reloader is the running gateway as the config watcher sees it.
type reloader interface {
	Reload(ctx context.Context, cfg *config.Config) (gateway.ReloadResult, error)
}

// configWatcher reloads the config of a running gateway on SIGHUP and when
// the file's content changes.
//
// The file is read every poll interval and hashed; no inotify, so an
// editor that replaces the file, a config management tool that writes it
// in place and a file on a network mount all work alike. A change is
// loaded only once the content has stayed the same over one interval, so
// a half-written file is not read; SIGHUP loads at once (the operator says
// the file is complete). A file that is invalid, or that only a restart
// can apply, is refused with every problem logged, and is not tried again
// until it changes or SIGHUP asks.
type configWatcher struct {
	path  string
	g     reloader
	log   *slog.Logger
	every time.Duration    // 0: SIGHUP only
	hup   <-chan os.Signal //

	running string // hash of the config in effect
	refused string // hash of the last content refused
	pending string // hash of a changed content seen once, waiting to settle
}

func (w *configWatcher) run(ctx context.Context) {
	var tick <-chan time.Time
	if w.every > 0 {
		t := time.NewTicker(w.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.hup:
			w.log.Info("SIGHUP: reloading the config", "file", w.path)
			w.pending = ""
			w.load(ctx, true)
		case <-tick:
			w.poll(ctx)
		}
	}
}

// poll loads the file when its content changed and has settled.
func (w *configWatcher) poll(ctx context.Context) {
	data, err := os.ReadFile(w.path)
	if err != nil {
		// Being replaced, or gone for a moment: the next poll looks again,
		// and the running config stays.
		w.log.Debug("config file not readable", "file", w.path, "err", err)
		return
	}
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	switch {
	case h == w.running || h == w.refused:
		w.pending = ""
	case h != w.pending:
		w.pending = h // changed: load once it stays like this for an interval
	default:
		w.pending = ""
		w.log.Info("config file changed: reloading", "file", w.path)
		w.load(ctx, false)
	}
}

// load reads, validates and applies the file.
func (w *configWatcher) load(ctx context.Context, asked bool) {
	cfg, err := config.Load(w.path)
	if err != nil {
		var cerrs *config.Errors
		if errors.As(err, &cerrs) {
			// One line per problem, as `hazgate validate` prints them.
			for _, p := range cerrs.List {
				w.log.Error(p.String())
			}
			if len(cerrs.List) == 1 && cerrs.List[0].Line == 0 {
				// Unreadable (moved away, permissions): not the content's fault.
				w.log.Error("config reload refused: the file cannot be read; the running config stays", "file", w.path)
				return
			}
		}
		w.log.Error("config reload refused: the file is not valid; the running config stays", "file", w.path)
		if data, rerr := os.ReadFile(w.path); rerr == nil {
			sum := sha256.Sum256(data)
			w.refused = hex.EncodeToString(sum[:])
		}
		return
	}
	if cfg.Hash() == w.running {
		if asked {
			w.log.Info("config unchanged", "file", w.path, "config_hash", short(cfg.Hash()))
		}
		return
	}
	res, err := w.g.Reload(ctx, cfg)
	if err != nil {
		w.refused = cfg.Hash()
		w.log.Error("config reload refused; the running config stays", "file", w.path, "err", err)
		return
	}
	w.running, w.refused = cfg.Hash(), ""
	w.log.Info("config reloaded", "file", w.path, "old_config_hash", short(res.OldHash), "config_hash", short(res.NewHash),
		"added", res.Added, "changed", res.Changed, "removed", res.Removed, "unchanged", len(res.Unchanged))
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}
