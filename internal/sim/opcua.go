package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"
)

// Tags of the simulated reactor R-301, served over OPC UA.
const (
	TT301 = "TT-301" // reactor temperature, °C (Double)
	PT301 = "PT-301" // reactor pressure, MPa (Double)
	XS301 = "XS-301" // agitator running, 1 = running (Boolean)
	HS301 = "HS-301" // agitator start command, writable (Boolean); the reactor does not act on it
)

// ReactorNamespace is the namespace index of the reactor's nodes: the
// first namespace the server adds after the standard one.
const ReactorNamespace = 1

// ReactorNode is the node id of a reactor tag, e.g. ns=1;s=R-301.TT-301.
func ReactorNode(tag string) string {
	return "ns=" + strconv.Itoa(ReactorNamespace) + ";s=R-301." + tag
}

// reactorTags lists the served tags in browse order.
var reactorTags = []string{TT301, PT301, XS301, HS301}

// ReactorOptions configure a Reactor.
type ReactorOptions struct {
	// Script runs the incident script (an exotherm after an agitator
	// trip); false keeps the reactor steady with noise.
	Script bool
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives the server's messages at debug level; nil discards.
	Logger *slog.Logger
}

// Reactor is the simulated batch reactor R-301 behind an OPC UA server
// (gopcua's server package: security None, anonymous login). It can be
// stopped and started again on the same port, which is how tests play a
// server restart. Its methods are safe for concurrent use.
type Reactor struct {
	opts ReactorOptions
	log  *slog.Logger

	mu        sync.Mutex
	started   time.Time
	overrides map[string]float64
	frozen    bool // subscriptions get no change notifications
	srv       *server.Server
	front     *front
	addr      string
	cancel    context.CancelFunc
	stop      chan struct{}
	done      chan struct{}
}

// ReactorValues are the reactor's process values at one moment.
type ReactorValues struct {
	Temperature float64 // °C
	Pressure    float64 // MPa
	Agitator    bool    // running
}

// NewReactor returns a reactor that is not yet serving; call Start.
func NewReactor(opts ReactorOptions) *Reactor {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reactor{opts: opts, log: log, overrides: map[string]float64{}, started: opts.Clock()}
}

// Start serves OPC UA on addr (host:port; port 0 picks a free port, see
// Endpoint). The script clock starts at NewReactor and keeps running
// across a Close and a later Start.
func (r *Reactor) Start(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("sim: reactor listen address %q: %w", addr, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return errors.New("sim: reactor already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sim: reactor: listen on %s: %w", addr, err)
	}
	public := ln.Addr().(*net.TCPAddr).Port
	// The gopcua server listens on a port of its own behind the front;
	// it does not expose its listener, so a free port is found first and
	// another is tried if someone takes it in between.
	for i := 0; ; i++ {
		backend, err := freePort(host)
		if err == nil {
			err = r.serveLocked(host, backend, public)
		}
		if err == nil {
			r.front = newFront(ln, net.JoinHostPort(host, strconv.Itoa(backend)))
			break
		}
		if i >= 9 || !errors.Is(err, syscall.EADDRINUSE) {
			_ = ln.Close()
			return fmt.Errorf("sim: reactor: %w", err)
		}
	}
	r.addr = net.JoinHostPort(host, strconv.Itoa(public))
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.follow(r.srv, r.stop, r.done)
	r.log.Info("simulated reactor serving OPC UA", "endpoint", "opc.tcp://"+r.addr)
	return nil
}

// serveLocked builds a fresh server (a gopcua server is not restartable)
// with the reactor's address space and starts it.
func (r *Reactor) serveLocked(host string, port, public int) error {
	srv := server.New(
		server.EndPoint(host, port), // the first is where it listens
		server.EndPoint(host, public),
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
		server.ServerName("hazgate simulated reactor R-301"),
		server.SetLogger(serverLog{r.log}),
	)
	ns := server.NewNodeNameSpace(srv, "urn:hazgate:sim:reactor")
	root, err := srv.Namespace(0)
	if err != nil {
		return err
	}
	// server.NewFolderNode panics in v0.8.0 (a NodeClass is no variant
	// type), so the folder is built by hand.
	folder := server.NewNode(ua.NewStringNodeID(ns.ID(), "R-301"), map[ua.AttributeID]*ua.DataValue{
		ua.AttributeIDNodeClass:   server.DataValueFromValue(uint32(ua.NodeClassObject)),
		ua.AttributeIDBrowseName:  server.DataValueFromValue(attrs.BrowseName("R-301")),
		ua.AttributeIDDisplayName: server.DataValueFromValue(attrs.DisplayName("R-301", "R-301")),
		ua.AttributeIDDataType:    server.DataValueFromValue(ua.NewNumericExpandedNodeID(0, id.FolderType)),
	}, nil, nil)
	ns.AddNode(folder)
	root.Objects().AddRef(folder, id.Organizes, true)
	for _, tag := range reactorTags {
		nid, err := ua.ParseNodeID(ReactorNode(tag))
		if err != nil {
			return err
		}
		access := byte(ua.AccessLevelTypeCurrentRead)
		var value server.ValueFunc = r.valueFunc(tag)
		if tag == HS301 {
			access |= byte(ua.AccessLevelTypeCurrentWrite)
			// The server replaces the value on a write; the reactor never
			// touches this node, so no goroutine of ours races with it.
			initial := &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant(false), SourceTimestamp: time.Now()}
			value = func() *ua.DataValue { return initial }
		}
		node := server.NewNode(nid, map[ua.AttributeID]*ua.DataValue{
			ua.AttributeIDNodeClass:       server.DataValueFromValue(uint32(ua.NodeClassVariable)),
			ua.AttributeIDBrowseName:      server.DataValueFromValue(attrs.BrowseName(tag)),
			ua.AttributeIDDisplayName:     server.DataValueFromValue(attrs.DisplayName(tag, tag)),
			ua.AttributeIDDataType:        server.DataValueFromValue(reactorType(tag)),
			ua.AttributeIDAccessLevel:     server.DataValueFromValue(access),
			ua.AttributeIDUserAccessLevel: server.DataValueFromValue(access),
		}, nil, value)
		ns.AddNode(node)
		folder.AddRef(node, id.HasComponent, true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		return err
	}
	r.srv, r.cancel = srv, cancel
	return nil
}

func reactorType(tag string) *ua.ExpandedNodeID {
	if tag == XS301 || tag == HS301 {
		return ua.NewNumericExpandedNodeID(0, id.Boolean)
	}
	return ua.NewNumericExpandedNodeID(0, id.Double)
}

// valueFunc serves a tag's current value, stamped with the time it was
// read (the source timestamp the gateway keeps).
func (r *Reactor) valueFunc(tag string) server.ValueFunc {
	return func() *ua.DataValue {
		v := r.Now()
		var val any
		switch tag {
		case TT301:
			val = v.Temperature
		case PT301:
			val = v.Pressure
		case XS301:
			val = v.Agitator
		}
		return &ua.DataValue{
			EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp,
			Value:           ua.MustVariant(val),
			SourceTimestamp: time.Now().UTC(),
		}
	}
}

// Endpoint is the URL to connect to, opc.tcp://127.0.0.1:PORT; empty
// before the first Start. It stays the same after Close, for a restart.
func (r *Reactor) Endpoint() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.addr == "" {
		return ""
	}
	return "opc.tcp://" + r.addr
}

// Addr is host:port of the endpoint.
func (r *Reactor) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// Close stops serving and drops every client, as if the server process
// died. Start may be called again, on the same address for a restart.
func (r *Reactor) Close() error {
	r.mu.Lock()
	srv, fr, cancel, stop, done := r.srv, r.front, r.cancel, r.stop, r.done
	r.srv, r.front, r.cancel, r.stop, r.done = nil, nil, nil, nil, nil
	r.mu.Unlock()
	if srv == nil {
		return nil
	}
	close(stop)
	<-done
	fr.close()
	// Cancel first: the server's Close waits up to 10 s for connection
	// goroutines that only the context stops (gopcua v0.8.0).
	cancel()
	if err := srv.Close(); err != nil {
		return fmt.Errorf("sim: stop reactor server: %w", err)
	}
	return nil
}

// Freeze stops (true) or resumes (false) the change notifications to the
// server's subscriptions, while reads and the connection go on: a server
// whose subscriptions have silently stopped publishing. New monitored
// items still get their first value.
func (r *Reactor) Freeze(frozen bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = frozen
}

// Set fixes a tag (TT-301, PT-301, XS-301 as 0/1) until Release.
func (r *Reactor) Set(tag string, v float64) error {
	if tag != TT301 && tag != PT301 && tag != XS301 {
		return fmt.Errorf("sim: no settable tag %q in the reactor", tag)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overrides[tag] = v
	return nil
}

// Release gives a tag back to the script.
func (r *Reactor) Release(tag string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.overrides, tag)
}

// Now returns the values the reactor serves at this moment.
func (r *Reactor) Now() ReactorValues {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := reactorAt(r.opts.Clock().Sub(r.started), r.opts.Script)
	if x, ok := r.overrides[TT301]; ok {
		v.Temperature = x
	}
	if x, ok := r.overrides[PT301]; ok {
		v.Pressure = x
	}
	if x, ok := r.overrides[XS301]; ok {
		v.Agitator = x != 0
	}
	return v
}

// follow tells the server's subscriptions that the values changed, every
// updateEvery, until stop is closed.
func (r *Reactor) follow(srv *server.Server, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	// The server's clock too: gopcua's server reports a node to its
	// subscriptions only when told, and clients watch the clock as a
	// heartbeat.
	ids := []*ua.NodeID{ua.NewNumericNodeID(0, id.Server_ServerStatus_CurrentTime)}
	for _, tag := range []string{TT301, PT301, XS301} {
		nid, _ := ua.ParseNodeID(ReactorNode(tag))
		ids = append(ids, nid)
	}
	tick := time.NewTicker(updateEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			r.mu.Lock()
			frozen := r.frozen
			r.mu.Unlock()
			if frozen {
				continue
			}
			for _, nid := range ids {
				srv.ChangeNotification(nid)
			}
		}
	}
}

// Reactor script, repeating every Period like the tank farm's:
//
//	0-60 s   steady: 80 °C, 0.25 MPa, agitator running
//	60 s     the agitator trips (XS-301 = 0)
//	60-75 s  no mixing: a hot spot drives the temperature up 1.4 °C/s to
//	         101 °C and the pressure with it (H 90 °C at 67.1 s, HH 100 °C
//	         at 74.3 s in configs/demo.yaml)
//	75 s     the agitator restarts; temperature and pressure fall back
//	         with a 4 s time constant
func reactorAt(since time.Duration, script bool) ReactorValues {
	const baseT, baseP = 80.0, 0.25
	t := math.Mod(since.Seconds(), Period.Seconds())
	step := uint64(since / updateEvery)
	v := ReactorValues{Temperature: baseT, Pressure: baseP, Agitator: true}
	if script {
		switch {
		case t >= 60 && t < 75:
			v.Agitator = false
			v.Temperature = baseT + 1.4*(t-60)
		case t >= 75:
			v.Temperature = baseT + 21*math.Exp(-(t-75)/4)
		}
	}
	// Pressure follows the vapour pressure of the batch, roughly linear
	// here: +0.01 MPa per °C above 80.
	v.Pressure = baseP + 0.01*(v.Temperature-baseT)
	v.Temperature += noise(301, step, 0.1)
	v.Pressure += noise(302, step, 0.001)
	return v
}

// serverLog passes gopcua server messages (printf style) to slog at debug.
type serverLog struct{ l *slog.Logger }

func (s serverLog) Debug(msg string, args ...any) { s.l.Debug(fmt.Sprintf(msg, args...)) }
func (s serverLog) Info(msg string, args ...any)  { s.l.Debug(fmt.Sprintf(msg, args...)) }
func (s serverLog) Warn(msg string, args ...any)  { s.l.Debug(fmt.Sprintf(msg, args...)) }
func (s serverLog) Error(msg string, args ...any) { s.l.Debug(fmt.Sprintf(msg, args...)) }

// ReactorIncidents lists what the reactor's script does, in order.
func ReactorIncidents() []Incident {
	return []Incident{
		{60 * time.Second, "R-301 agitator trips (XS-301 = 0): TT-301 climbs through H (90 °C) and HH (100 °C), PT-301 with it"},
		{75 * time.Second, "R-301 agitator restarts: temperature and pressure fall back to 80 °C, 0.25 MPa"},
	}
}
