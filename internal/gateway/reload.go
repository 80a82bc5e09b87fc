package gateway

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/internal/scheduler"
	"hazgate/rules"
	"hazgate/rules/interlock"
)

// Hot reload (docs/operator-guide.md, "Changing the config"): Reload
// applies a new, validated config to the running gateway.
//
// Decisions:
//   - A device whose config (tags included) is unchanged keeps its loop,
//     driver and connection: it polls on without a gap. A changed device is
//     stopped and started anew; a removed one is stopped; an added one is
//     started.
//   - The alarm and interlock engines are rebuilt for the new tag set and
//     swapped on the pipeline goroutine in one step; unchanged tags and
//     interlocks keep their state (active, acknowledged, latched, shelved,
//     tripped, bypassed). The swap commits a config_changed event with the
//     old and new hashes before any device changes.
//   - What cannot change live is refused as a whole, with ErrRestartNeeded
//     and the list of what changed, and the old config keeps running: the
//     gateway, buffer, uplink and web sections (the buffer is never
//     reopened, the broker session never silently rebuilt), the settings
//     of an RS-485 line that stays in use, the set of writable tags (the
//     interlock actuator's outputs), and a tripped or bypassed interlock
//     that would change or go away (reset it or end the bypass first).
//   - Devices keep their names as identity: a renamed device is a removed
//     one and an added one.

// ErrRestartNeeded refuses a reload that changes what only a restart can.
var ErrRestartNeeded = errors.New("a restart is needed to apply this change; the old config keeps running")

// ReloadResult says what a reload did, by device name.
type ReloadResult struct {
	OldHash, NewHash string // full SHA-256 of the files
	Unchanged        []string
	Changed          []string
	Added            []string
	Removed          []string
}

// Same reports whether the new config was the one already running.
func (r ReloadResult) Same() bool { return r.OldHash == r.NewHash }

func (r ReloadResult) String() string {
	if r.Same() {
		return "config unchanged"
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("devices added: %s; changed: %s; removed: %s; unchanged: %d",
		list(r.Added), list(r.Changed), list(r.Removed), len(r.Unchanged))
}

// reloadState is the part of the gateway a reload changes.
type reloadState struct {
	// mu guards Gateway.cfg, loops and drivers, and writers: Run's
	// goroutine replaces them on a reload, Status and the status page read
	// them from others.
	mu      sync.RWMutex
	writers map[string]drivers.Writer // writable tag -> its device's current driver

	requests chan reloadRequest
	quit     chan struct{} // closed when Run no longer takes requests
	quitOnce sync.Once
	runs     map[*scheduler.Loop]*loopRun // owned by Run's goroutine

	// lines are the settings of every RS-485 line opened so far, by bus
	// key: modbus.Buses keeps a line's first settings for good, even
	// after its last device went away. Owned by Run's goroutine.
	lines map[string]*config.Serial
}

type reloadRequest struct {
	cfg  *config.Config
	done chan reloadReply // buffered
}

type reloadReply struct {
	res ReloadResult
	err error
}

// loopRun is one device loop started by Run.
type loopRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (g *Gateway) initReload() {
	g.rl.requests = make(chan reloadRequest)
	g.rl.quit = make(chan struct{})
	g.rl.runs = map[*scheduler.Loop]*loopRun{}
	g.rl.lines = map[string]*config.Serial{}
	noteLines(g.rl.lines, g.cfg)
}

// noteLines adds the lines of cfg not yet in lines.
func noteLines(lines map[string]*config.Serial, cfg *config.Config) {
	for _, d := range cfg.Devices {
		if k := d.BusKey(); k != "" {
			if _, ok := lines[k]; !ok {
				lines[k] = d.Serial
			}
		}
	}
}

// current returns the config, loops and drivers in effect, loops and
// drivers in the order of cfg.Devices.
func (g *Gateway) current() (*config.Config, []*scheduler.Loop, []drivers.Driver) {
	g.rl.mu.RLock()
	defer g.rl.mu.RUnlock()
	return g.cfg, g.loops, g.drivers
}

// Reload applies cfg, which must come from config.Load (validated, with
// defaults), while Run runs. It returns once the change is in effect, or
// an error (ErrRestartNeeded among others) with the old config still
// running. A config identical to the running one changes nothing.
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config) (ReloadResult, error) {
	if cfg == nil {
		return ReloadResult{}, errors.New("reload: no config")
	}
	req := reloadRequest{cfg: cfg, done: make(chan reloadReply, 1)}
	select {
	case g.rl.requests <- req:
	case <-g.rl.quit:
		return ReloadResult{}, ErrNotRunning
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
	r := <-req.done // the reload is under way: it is not abandoned halfway
	return r.res, r.err
}

// startLoop runs l in a goroutine of its own, stopped by ctx or by a
// reload. Called on Run's goroutine.
func (g *Gateway) startLoop(ctx context.Context, l *scheduler.Loop) {
	lctx, cancel := context.WithCancel(ctx)
	r := &loopRun{cancel: cancel, done: make(chan struct{})}
	g.rl.runs[l] = r
	go func() {
		defer close(r.done)
		if err := l.Run(lctx); err != nil && !errors.Is(err, context.Canceled) {
			g.log.Error("device loop stopped", "err", err)
		}
	}()
}

// stopLoop stops l and waits until it has closed its driver.
func (g *Gateway) stopLoop(l *scheduler.Loop) {
	if r := g.rl.runs[l]; r != nil {
		r.cancel()
		<-r.done
		delete(g.rl.runs, l)
	}
}

// waitLoops waits for every loop, once their context is cancelled, and
// ends reloads.
func (g *Gateway) waitLoops() {
	g.rl.quitOnce.Do(func() { close(g.rl.quit) })
	for l, r := range g.rl.runs {
		<-r.done
		delete(g.rl.runs, l)
	}
}

// reload applies cfg on Run's goroutine; ctx is the loops' context.
func (g *Gateway) reload(ctx context.Context, cfg *config.Config) (ReloadResult, error) {
	old := g.cfg
	res := ReloadResult{OldHash: old.Hash(), NewHash: cfg.Hash()}
	if res.Same() && res.NewHash != "" {
		return res, nil
	}
	if why := restartNeeded(old, cfg, g.rl.lines); len(why) > 0 {
		return res, fmt.Errorf("%w: %s", ErrRestartNeeded, strings.Join(why, "; "))
	}

	oldDev := map[string]int{}
	for i, d := range old.Devices {
		oldDev[d.Name] = i
	}
	newDev := map[string]bool{}
	keepDev := map[string]bool{}
	for _, d := range cfg.Devices {
		newDev[d.Name] = true
		i, ok := oldDev[d.Name]
		switch {
		case !ok:
			res.Added = append(res.Added, d.Name)
		case reflect.DeepEqual(old.Devices[i], d):
			res.Unchanged = append(res.Unchanged, d.Name)
			keepDev[d.Name] = true
		default:
			res.Changed = append(res.Changed, d.Name)
		}
	}
	for _, d := range old.Devices {
		if !newDev[d.Name] {
			res.Removed = append(res.Removed, d.Name)
		}
	}

	// Everything that can fail comes before anything changes.
	newDrv := map[string]drivers.Driver{}
	closeNew := func() {
		for _, d := range newDrv {
			_ = d.Close()
		}
	}
	for _, d := range cfg.Devices {
		if keepDev[d.Name] {
			continue
		}
		drv, err := newDriver(d, g.buses, g.opts.GPIOFake, g.log)
		if err != nil {
			closeNew()
			return res, fmt.Errorf("device %s: %w", d.Name, err)
		}
		newDrv[d.Name] = drv
	}
	engine := rules.New(cfg)
	locks, err := interlock.New(cfg)
	if err != nil {
		closeNew()
		return res, fmt.Errorf("interlocks: %w", err)
	}
	sameTag := sameTags(old, cfg)
	sameIL := sameInterlocks(old, cfg)

	ev := model.Event{
		Kind: model.ConfigChanged, Time: time.Now().UTC(),
		OldConfigHash: shortHash16(res.OldHash), ConfigHash: shortHash16(res.NewHash),
		Message: fmt.Sprintf("config reloaded from %s (%s -> %s): %s", cfg.Path, shortHash(res.OldHash), shortHash(res.NewHash), res),
	}
	// The swap runs on the pipeline goroutine, between two batches of
	// samples; the event is durable when operate returns. A stop of the
	// gateway meanwhile does not abandon it halfway.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// swap: 0 not yet, 1 done by the pipeline, 2 given up by this side
	// (the pipeline did not take the request in time): whichever comes
	// first wins, so a late swap never follows a refusal.
	var swap atomic.Int32
	err = g.operate(octx, func(now time.Time) ([]model.Event, error) {
		for _, st := range g.pipe.locks.engine.Status() {
			if (st.Tripped || st.Bypassed) && !sameIL[st.Name] {
				what := "tripped"
				if st.Bypassed {
					what = "bypassed"
				}
				return nil, fmt.Errorf("interlock %s is %s and the new config changes or removes it: reset it (or end the bypass) first", st.Name, what)
			}
		}
		if !swap.CompareAndSwap(0, 1) {
			return nil, errors.New("reload given up")
		}
		engine.Carry(g.pipe.engine, func(tag string) bool { return sameTag[tag] })
		locks.Carry(g.pipe.locks.engine, func(name string) bool { return sameIL[name] })
		g.pipe.engine = engine
		g.pipe.locks.engine = locks
		return []model.Event{ev}, nil
	})
	if err != nil {
		if swap.CompareAndSwap(0, 2) || swap.Load() != 1 {
			closeNew()
			return res, err
		}
		// The engines are the new ones: the devices must follow. The
		// buffer failing stops the pipeline, and the gateway with it.
		g.log.Error("config_changed event not recorded", "err", err)
	}
	g.up.UpdateTags(cfg)

	// Devices: stop the changed and removed ones (each loop closes its
	// driver), then put the new set in place and start what is new.
	byName := map[string]*scheduler.Loop{}
	drvByName := map[string]drivers.Driver{}
	for i, d := range old.Devices {
		if keepDev[d.Name] {
			byName[d.Name], drvByName[d.Name] = g.loops[i], g.drivers[i]
			continue
		}
		g.stopLoop(g.loops[i])
	}
	var loops []*scheduler.Loop
	var drvs []drivers.Driver
	var start []*scheduler.Loop
	for _, d := range cfg.Devices {
		l, drv := byName[d.Name], drvByName[d.Name]
		if l == nil {
			drv = newDrv[d.Name]
			l = scheduler.New(drv, d, g.pipe, scheduler.Options{Logger: g.log})
			start = append(start, l)
		}
		loops, drvs = append(loops, l), append(drvs, drv)
	}
	writers := writersOf(cfg, drvs)
	g.rl.mu.Lock()
	g.cfg, g.loops, g.drivers, g.rl.writers = cfg, loops, drvs, writers
	g.rl.mu.Unlock()
	noteLines(g.rl.lines, cfg)
	for _, l := range start {
		g.startLoop(ctx, l)
	}
	return res, nil
}

// restartNeeded lists what differs between old and cfg that a reload
// cannot apply.
func restartNeeded(old, cfg *config.Config, lines map[string]*config.Serial) []string {
	var why []string
	for _, s := range []struct {
		name   string
		before any
		after  any
	}{
		{"gateway", old.Gateway, cfg.Gateway},
		{"buffer", old.Buffer, cfg.Buffer},
		{"uplink", old.Uplink, cfg.Uplink},
		{"web", old.Web, cfg.Web},
		{"history", old.History, cfg.History},                 // the history writer is opened once (history.go)
		{"alarm_outputs", old.AlarmOutputs, cfg.AlarmOutputs}, // the beacon goroutine holds its mapping (alarm_outputs.go)
	} {
		if !reflect.DeepEqual(s.before, s.after) {
			why = append(why, "section "+s.name+" changed")
		}
	}
	// An RS-485 line keeps the settings it was first opened with
	// (modbus.Buses).
	seen := map[string]bool{}
	for _, d := range cfg.Devices {
		k := d.BusKey()
		if before, ok := lines[k]; ok && k != "" && !seen[k] && !reflect.DeepEqual(before, d.Serial) {
			seen[k] = true
			why = append(why, fmt.Sprintf("the line settings of %s changed", k))
		}
	}
	if a, b := writableTags(old), writableTags(cfg); !slices.Equal(a, b) {
		why = append(why, fmt.Sprintf("the writable tags changed (%s -> %s)", strings.Join(a, ","), strings.Join(b, ",")))
	}
	return why
}

func writableTags(cfg *config.Config) []string {
	var w []string
	for _, d := range cfg.Devices {
		for _, t := range d.Tags {
			if t.Writable {
				w = append(w, t.Name)
			}
		}
	}
	slices.Sort(w)
	return w
}

// sameTags says which tags a reload leaves as they were: same config, on
// the same device with the same fault timing.
func sameTags(old, cfg *config.Config) map[string]bool {
	type placed struct {
		device   string
		commLoss config.Duration
		tag      config.Tag
	}
	before := map[string]placed{}
	for _, d := range old.Devices {
		for _, t := range d.Tags {
			before[t.Name] = placed{d.Name, d.CommLossAfter, t}
		}
	}
	same := map[string]bool{}
	for _, d := range cfg.Devices {
		for _, t := range d.Tags {
			if b, ok := before[t.Name]; ok && reflect.DeepEqual(b, placed{d.Name, d.CommLossAfter, t}) {
				same[t.Name] = true
			}
		}
	}
	return same
}

// sameInterlocks says which interlocks a reload leaves as they were.
func sameInterlocks(old, cfg *config.Config) map[string]bool {
	before := map[string]config.Interlock{}
	for _, il := range old.Interlocks {
		before[il.Name] = il
	}
	same := map[string]bool{}
	for _, il := range cfg.Interlocks {
		if b, ok := before[il.Name]; ok && reflect.DeepEqual(b, il) {
			same[il.Name] = true
		}
	}
	return same
}

// writersOf maps every writable tag to the driver of its device, when
// that driver can write.
func writersOf(cfg *config.Config, drvs []drivers.Driver) map[string]drivers.Writer {
	writers := map[string]drivers.Writer{}
	for i, dev := range cfg.Devices {
		w, ok := drvs[i].(drivers.Writer)
		if !ok {
			continue
		}
		for _, t := range dev.Tags {
			if t.Writable {
				writers[t.Name] = w
			}
		}
	}
	return writers
}

// tagWriter writes a tag through whichever driver its device has now: the
// interlock actuator keeps its writers across a reload that replaces a
// device's driver.
type tagWriter struct {
	g   *Gateway
	tag string
}

func (w tagWriter) Write(ctx context.Context, tag string, v float64) error {
	w.g.rl.mu.RLock()
	drv := w.g.rl.writers[w.tag]
	w.g.rl.mu.RUnlock()
	if drv == nil {
		return fmt.Errorf("no driver can write %s", w.tag)
	}
	return drv.Write(ctx, tag, v)
}
