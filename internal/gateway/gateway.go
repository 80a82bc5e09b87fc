// Package gateway wires the stages together: one scheduler loop per
// device feeds the pipeline, which runs the rules and appends samples and
// events to the buffer; the uplink drains the buffer to the broker.
//
// Local work never waits on the network: the pipeline only waits for the
// local disk, and the uplink reads what the pipeline has made durable.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"hazgate/buffer"
	"hazgate/drivers"
	gpiodrv "hazgate/drivers/gpio"
	"hazgate/drivers/modbus"
	"hazgate/drivers/opcua"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/internal/scheduler"
	"hazgate/internal/version"
	"hazgate/internal/web"
	"hazgate/rules"
	"hazgate/rules/alarmout"
	"hazgate/rules/interlock"
	"hazgate/uplink"
)

// BufferFile is the name of the buffer inside the data directory.
const BufferFile = "buffer.db"

// Options tune a gateway beyond its config.
type Options struct {
	Logger *slog.Logger // nil = discard
	// DrainTimeout bounds how long an orderly stop waits for the uplink to
	// publish the final events. Zero means 3 s.
	DrainTimeout time.Duration
	// GPIOFake holds the lines of every device with gpio backend fake, so
	// that tests and the demo can play the field; nil = each such device
	// keeps a bank of its own.
	GPIOFake *gpiodrv.Fake
}

// Gateway is one running hazgate.
type Gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	opts     Options
	buf      *buffer.Buffer
	pipe     *pipeline
	up       *uplink.Uplink
	loops    []*scheduler.Loop
	drivers  []drivers.Driver
	movedTo  string                    // a corrupt buffer file moved aside at open
	started  atomic.Pointer[time.Time] // set by Run, read by Status from other goroutines
	closeBuf sync.Once
	buses    *modbus.Buses       // one owner per RTU line, shared by the devices on it
	clock    uplink.ClockMonitor // wall-clock jumps, reported as events and in health
	web      *web.Server         // status page, /metrics, /healthz; nil when disabled (web.go)
	rl       reloadState         // hot reload; guards cfg, loops and drivers (reload.go)

	alarmOuts *alarmout.Outputs // beacons and horns that follow the alarms (alarm_outputs.go)
	hist      *gatewayHistory   // local history of every sample; nil when disabled (history.go)
}

// New opens the buffer and builds every stage from cfg, which must have
// been loaded by config.Load or config.Parse (validated, defaults applied).
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 3 * time.Second
	}
	g := &Gateway{cfg: cfg, log: log, opts: opts, buses: modbus.NewBuses(log)}
	g.initReload()
	if err := g.newWeb(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	if err := os.MkdirAll(cfg.Gateway.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("gateway: data directory: %w", err)
	}
	path := filepath.Join(cfg.Gateway.DataDir, BufferFile)
	buf, movedTo, err := buffer.OpenOrRecover(path, buffer.Options{
		MaxBytes: cfg.Buffer.MaxBytes.Int64(),
		MaxAge:   cfg.Buffer.MaxAge.D(),
		Logger:   log.With("stage", "buffer"),
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: open buffer: %w", err)
	}
	g.buf, g.movedTo = buf, movedTo

	for _, dev := range cfg.Devices {
		drv, err := newDriver(dev, g.buses, opts.GPIOFake, log)
		if err != nil {
			g.closeDrivers()
			_ = buf.Close()
			return nil, fmt.Errorf("gateway: device %s: %w", dev.Name, err)
		}
		g.drivers = append(g.drivers, drv)
	}
	g.pipe = newPipeline(rules.New(cfg), buf, log.With("stage", "pipeline"))
	if err := g.wireInterlocks(); err != nil {
		g.closeDrivers()
		_ = buf.Close()
		return nil, fmt.Errorf("gateway: interlocks: %w", err)
	}
	g.wireAlarmOutputs()
	for i, dev := range cfg.Devices {
		g.loops = append(g.loops, scheduler.New(g.drivers[i], dev, g.pipe, scheduler.Options{Logger: log}))
	}
	up, err := uplink.New(uplink.Options{Config: cfg, Logger: log.With("stage", "uplink"), Health: g.health, Commands: g.commandOptions()}, buf)
	if err != nil {
		g.closeDrivers()
		_ = buf.Close()
		return nil, fmt.Errorf("gateway: uplink: %w", err)
	}
	g.up = up
	if err := g.openHistory(); err != nil {
		g.closeDrivers()
		_ = buf.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return g, nil
}

func newDriver(dev config.Device, buses *modbus.Buses, fake *gpiodrv.Fake, log *slog.Logger) (drivers.Driver, error) {
	switch dev.Protocol {
	case config.ProtocolGPIO:
		return gpiodrv.New(dev, gpiodrv.Options{Fake: fake, Logger: log})
	case config.ProtocolModbusTCP:
		return modbus.NewTCP(dev, log)
	case config.ProtocolOPCUA:
		return opcua.New(dev, log.With("device", dev.Name)) // the Modbus drivers and the loops name the device themselves
	case config.ProtocolModbusRTU, config.ProtocolModbusRTUTCP:
		// RTU devices on one serial port or converter share one bus owner.
		bus, err := buses.For(dev)
		if err != nil {
			return nil, err
		}
		return modbus.NewRTU(dev, bus, log)
	}
	return nil, fmt.Errorf("protocol %q is not supported", dev.Protocol)
}

func (g *Gateway) closeDrivers() {
	for _, d := range g.drivers {
		_ = d.Close()
	}
}

// Run acquires, evaluates, buffers and forwards until ctx is done, then
// stops in order: acquisition first, then the pipeline (everything
// acquired is made durable), then the uplink after a short drain, and
// closes the buffer. It returns nil on an orderly stop.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.closeBuffer()
	now := time.Now()
	g.started.Store(&now)

	start := []model.Event{{
		Kind: model.GatewayStarted, Time: time.Now().UTC(),
		Message: fmt.Sprintf("gateway %s started, version %s, config %s", g.cfg.Gateway.ID, version.Version, shortHash(g.cfg.Hash())),
	}}
	if g.movedTo != "" {
		ev := model.Event{
			Kind: model.Gap, Time: time.Now().UTC(), Reason: "buffer file corrupt",
			Message: fmt.Sprintf("the buffer file was unreadable and was moved aside to %s; records in it were not sent", g.movedTo),
		}
		// One gap per stream over the numbers the fresh file skipped, so
		// that the platform's count of what it has (uplink.md §4.2) can
		// pass them; without a range there is only the message.
		gaps := 0
		for _, st := range model.Streams {
			first, last := g.buf.SkippedAtRecovery(st)
			if last < first || first == 0 {
				continue
			}
			e := ev
			e.Gap = &model.GapInfo{Stream: st.String(), Count: last - first + 1, FirstSeq: first, LastSeq: last, Cause: "buffer file damaged"}
			e.Message += fmt.Sprintf("; %s numbers %d..%d skipped", st, first, last)
			start = append(start, e)
			gaps++
		}
		if gaps == 0 {
			start = append(start, ev)
		}
	}
	if err := g.buf.Append(ctx, start, nil); err != nil {
		return fmt.Errorf("gateway: record start: %w", err)
	}

	clockCtx, stopClock := context.WithCancel(ctx)
	defer stopClock()
	g.clock.OnJump = g.recordClockJump
	go g.clock.Run(clockCtx)

	upCtx, stopUplink := context.WithCancel(context.Background())
	defer stopUplink()
	upDone := make(chan error, 1)
	go func() { upDone <- g.up.Run(upCtx) }()

	// History outlives the pipeline, to record its last commit.
	histCtx, stopHistory := context.WithCancel(context.Background())
	defer stopHistory()
	histDone := g.runHistory(histCtx)

	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- g.pipe.run(pipeCtx) }()

	// Interlock writes run beside the pipeline and outlive the device
	// loops, so that their outcome events are committed at shutdown.
	actCtx, stopActuator := context.WithCancel(context.Background())
	defer stopActuator()
	actDone := make(chan struct{})
	go func() { defer close(actDone); g.runActuator(actCtx) }()
	outsDone := make(chan struct{})
	go func() { defer close(outsDone); g.runAlarmOutputs(actCtx) }()

	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	for _, l := range g.loops {
		g.startLoop(loopCtx, l) // each stoppable alone by a reload (reload.go)
	}
	// The status page only reads; it stops first, before anything it shows.
	webCtx, stopWeb := context.WithCancel(context.Background())
	defer stopWeb()
	webDone := g.runWeb(webCtx)
	g.log.Info("gateway running", "gateway", g.cfg.Gateway.ID, "devices", len(g.loops), "data_dir", g.cfg.Gateway.DataDir)

	var runErr error
	for {
		select {
		case <-ctx.Done():
		case req := <-g.rl.requests:
			res, err := g.reload(loopCtx, req.cfg)
			req.done <- reloadReply{res, err}
			continue
		case err := <-pipeDone:
			// The pipeline only stops on its own when the buffer cannot be
			// written: nothing acquired could be kept, so stop loudly.
			runErr = fmt.Errorf("gateway: pipeline stopped: %w", err)
			pipeDone <- err
		case err := <-upDone:
			runErr = fmt.Errorf("gateway: uplink stopped: %w", err)
			upDone <- err
		}
		break
	}

	stopWeb()
	<-webDone
	stopLoops()
	g.waitLoops()
	stopActuator()
	<-actDone
	<-outsDone
	stopPipe()
	if err := <-pipeDone; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
		runErr = fmt.Errorf("gateway: pipeline: %w", err)
	}
	stopHistory()
	<-histDone
	stop := model.Event{Kind: model.GatewayStopped, Time: time.Now().UTC(), Message: fmt.Sprintf("gateway %s stopping", g.cfg.Gateway.ID)}
	appendCtx, cancelAppend := context.WithTimeout(context.Background(), 5*time.Second)
	if err := g.buf.Append(appendCtx, []model.Event{stop}, nil); err != nil {
		g.log.Error("record stop event", "err", err)
	}
	cancelAppend()
	g.drainEvents()
	stopUplink()
	if err := <-upDone; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
		runErr = fmt.Errorf("gateway: uplink: %w", err)
	}
	g.log.Info("gateway stopped", "gateway", g.cfg.Gateway.ID)
	return runErr
}

// drainEvents gives the uplink a short time to deliver the events still
// buffered (the stop event above all), so the platform learns of an
// orderly stop at once rather than at the next start.
func (g *Gateway) drainEvents() {
	deadline := time.Now().Add(g.opts.DrainTimeout)
	for time.Now().Before(deadline) {
		if !g.up.Connected() || g.buf.Stats().Event.Records == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordClockJump reports a step of the wall clock as an event. Records
// keep their sequence order; only their acquisition times around the jump
// are off, which the dispatcher must know.
func (g *Gateway) recordClockJump(j uplink.ClockJump) {
	g.buf.ClockStepped(j.Offset)
	ev := model.Event{
		Kind: model.EventKind("clock_jump"), Time: j.At.UTC(), Reason: "wall clock stepped",
		Message: fmt.Sprintf("the gateway's wall clock jumped by %+.3f s against its monotonic clock; acquisition times around %s are off by that much", j.Offset.Seconds(), uplink.FormatTime(j.At)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.buf.Append(ctx, []model.Event{ev}, nil); err != nil {
		g.log.Error("record clock jump", "err", err)
	}
}

func (g *Gateway) closeBuffer() {
	g.closeBuf.Do(func() {
		if err := g.buf.Close(); err != nil {
			g.log.Error("close buffer", "err", err)
		}
		g.closeHistory()
	})
}

// Status is a snapshot of the gateway for the demo and the status message.
type Status struct {
	Uptime    time.Duration
	Connected bool
	Buffer    buffer.Stats
	Active    []rules.ActiveAlarm
	Devices   []DeviceStatus

	Interlocks []interlock.Status // tripped, bypassed (with who, why, until)
}

// DeviceStatus is one device loop's state.
type DeviceStatus struct {
	Name  string
	Stats scheduler.LoopStats
}

// Status returns a snapshot; safe to call from any goroutine.
func (g *Gateway) Status() Status {
	cfg, loops, _ := g.current()
	s := Status{
		Connected: g.up.Connected(),
		Buffer:    g.buf.Stats(),
		Active:    g.pipe.active(),

		Interlocks: g.pipe.interlockStatus(),
	}
	if started := g.started.Load(); started != nil {
		s.Uptime = time.Since(*started)
	}
	for i, l := range loops {
		s.Devices = append(s.Devices, DeviceStatus{Name: cfg.Devices[i].Name, Stats: l.Stats()})
	}
	return s
}

// health is the "health" object of each online status message
// (docs/uplink.md §3.3); the uplink adds the broker part.
func (g *Gateway) health() uplink.Health {
	st := g.buf.Stats()
	cfg, loops, _ := g.current()
	h := uplink.Health{
		ConfigHash: shortHash16(cfg.Hash()),
		Devices:    make([]uplink.DeviceHealth, 0, len(loops)),
		Buffer: uplink.BufferHealth{
			Records:      st.Event.Records + st.Data.Records,
			EventRecords: st.Event.Records,
			DataRecords:  st.Data.Records,
			Bytes:        st.Bytes,
			Dropped:      st.Dropped,
			DataNextSeq:  st.Data.NextSeq,
			EventNextSeq: st.Event.NextSeq,
		},
		Clock: g.clock.Health(),
	}
	var oldest time.Time
	for _, t := range []time.Time{st.Event.OldestTime, st.Data.OldestTime} {
		if !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	if !oldest.IsZero() {
		age := max(time.Since(oldest).Seconds(), 0)
		h.Buffer.OldestAgeS = &age
	}
	for i, l := range loops {
		ls := l.Stats()
		d := uplink.DeviceHealth{
			Name: cfg.Devices[i].Name, State: string(ls.State), Polls: ls.Polls,
			Failures: ls.Failures, TotalFailures: ls.TotalFailures, Overruns: ls.Overruns,
			LastError: ls.LastError,
		}
		if !ls.LastGoodPoll.IsZero() {
			d.LastGoodPoll = uplink.FormatTime(ls.LastGoodPoll)
		}
		h.Devices = append(h.Devices, d)
	}
	for _, a := range g.pipe.active() {
		h.Alarms.Count(a.Level, a.Colour)
	}
	return h
}

// shortHash16 is the first 16 hex digits of the config hash: enough to
// tell two configs apart on a dispatcher's screen.
func shortHash16(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
