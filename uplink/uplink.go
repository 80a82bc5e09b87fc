// Package uplink forwards buffered records to the platform's MQTT broker
// (MQTT 3.1.1, QoS 1) and tells the buffer which ones the broker
// acknowledged. docs/uplink.md is the contract it implements.
//
// The rule everything here serves: a record is acknowledged to the buffer
// only when a PUBACK for it arrived on the very connection it was sent on.
// paho can complete a publish token when a connection is re-established
// without proof of delivery, so the uplink never lets paho reconnect: each
// connection attempt gets a new client with a fresh memory store, and after
// any loss everything in flight is forgotten and sent again from the oldest
// unacknowledged record. The platform drops the duplicates by sequence
// number.
//
// Besides data, events and status, the uplink answers remote commands
// when the config enables them (command.go: HMAC-signed, time-windowed,
// nonces never accepted twice, every command recorded as an event), puts
// health into status messages (health.go), and can hold partial batches
// (batch_interval), gzip data payloads and pace a backlog (replay_rate).
package uplink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/internal/version"
)

// Source is the buffer as the uplink sees it.
type Source interface {
	// Read returns up to max records of stream with Seq > after, in order.
	Read(stream model.Stream, after uint64, max int) ([]model.Record, error)
	// Ack tells that the broker acknowledged first..last (inclusive).
	Ack(stream model.Stream, first, last uint64)
	// Notify receives after each commit that added records.
	Notify() <-chan struct{}
}

// Options configure an Uplink.
type Options struct {
	Config *config.Config // uplink section, gateway identity, tags for metadata
	Logger *slog.Logger   // nil discards
	// Health, when set, gives the "health" object of online status
	// messages; the uplink fills its Broker part.
	Health func() Health
	// Commands wire remote commands; used only when the config has
	// uplink.commands.
	Commands CommandOptions
}

// Stats are counters since New.
type Stats struct {
	Connected        bool
	Broker           string // current or last broker, without credentials
	PublishedMsgs    uint64 // data and event messages handed to the connection
	PublishedRecords uint64
	AckedMsgs        uint64 // messages the broker acknowledged
	AckedRecords     uint64
	Reconnects       uint64 // connections lost or given up after having been up
	ConnectFailures  uint64
	InFlight         int    // publishes awaiting PUBACK now
	ResentRecords    uint64 // acknowledged records sent again after a lost connection (recent.go)
	LastError        string
	LastErrorAt      time.Time
}

// Defaults for zero values in the uplink config (the config loader sets the
// same; they are repeated so that a Config built in code works too).
const (
	defaultTopicPrefix    = "hazgate"
	defaultKeepAlive      = 30 * time.Second
	defaultConnectTimeout = 10 * time.Second
	defaultInflight       = 32
	defaultBatchMax       = 100
	defaultHeartbeat      = 60 * time.Second
	defaultReconnectMax   = 30 * time.Second

	// reconnectMin is the first back-off after a failure.
	reconnectMin = 250 * time.Millisecond
	// pollInterval wakes the publisher when no notification came: a safety
	// net, not the normal path.
	pollInterval = time.Second
	// shutdownGrace is how long an orderly shutdown waits for PUBACKs of
	// what is in flight, and then for the offline status to be acknowledged.
	shutdownGrace = 2 * time.Second
)

// Uplink publishes records from a Source to an MQTT broker.
type Uplink struct {
	log      *slog.Logger
	health   func() Health
	src      Source
	enc      *encoder
	brokers  []*url.URL
	clientID string
	username string
	password string
	tls      *tls.Config

	keepAlive, connectTimeout time.Duration
	heartbeat, reconnectMax   time.Duration
	ackTimeout                time.Duration
	inflight, batchMax        int
	batchInterval             time.Duration // a partial data batch waits this long to fill; 0 = not at all
	compress                  *compressor   // data payloads compressed; nil = plain JSON
	replayRate                float64       // backlog samples per second; 0 = unlimited

	topicData, topicEvent, topicStatus string
	topicCmd, topicReply               string // topicCmd is the filter cmd/+
	startedAt                          time.Time

	cmd   *commander  // nil: commands off
	cmdIn chan cmdMsg // from paho's goroutine to the session's
	// sent is, per stream, the highest sequence number ever handed to a
	// connection: anything at or below it that goes out again is marked
	// as replayed. Only Run's goroutine touches it.
	sent [len(model.Streams)]uint64
	// recent is, per stream, the tail of messages acknowledged last, sent
	// again after a lost connection (recent.go); resendDue says a
	// connection was lost since. Only Run's goroutine touches them.
	recent    [len(model.Streams)]recentAcks
	lastAck   time.Time // the newest PUBACK, of either stream
	resendDue bool

	running   atomic.Bool
	connected atomic.Bool
	mu        sync.Mutex // guards stats
	stats     Stats
}

// New checks the uplink config, reads the password and TLS material, and
// returns an Uplink that is not connected yet.
func New(opts Options, src Source) (*Uplink, error) {
	cfg := opts.Config
	if cfg == nil {
		return nil, errors.New("uplink: no config")
	}
	if src == nil {
		return nil, errors.New("uplink: no source")
	}
	if cfg.Gateway.ID == "" {
		return nil, errors.New("uplink: gateway.id is empty")
	}
	uc := cfg.Uplink
	if len(uc.Brokers) == 0 {
		return nil, errors.New("uplink: uplink.brokers is empty")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	comp, err := newCompressor(uc.Compression)
	if err != nil {
		return nil, err
	}
	u := &Uplink{
		log:            log.With("component", "uplink"),
		health:         opts.Health,
		src:            src,
		enc:            newEncoder(cfg),
		clientID:       or(uc.ClientID, cfg.Gateway.ID),
		username:       uc.Username,
		keepAlive:      orDur(uc.KeepAlive, defaultKeepAlive),
		connectTimeout: orDur(uc.ConnectTimeout, defaultConnectTimeout),
		heartbeat:      orDur(uc.Heartbeat, defaultHeartbeat),
		reconnectMax:   orDur(uc.ReconnectMax, defaultReconnectMax),
		inflight:       orInt(uc.Inflight, defaultInflight),
		batchMax:       orInt(uc.BatchMax, defaultBatchMax),
		batchInterval:  max(time.Duration(uc.BatchInterval), 0),
		compress:       comp,
		replayRate:     float64(max(uc.ReplayRate, 0)),
		startedAt:      time.Now(),
	}
	// A broker that keeps the connection but never acknowledges a publish
	// is as good as gone; keep-alive would not notice it.
	u.ackTimeout = max(2*u.keepAlive, u.connectTimeout, 10*time.Second)
	for i := range u.recent {
		u.recent[i].max = u.inflight
	}
	prefix := strings.TrimSuffix(or(uc.TopicPrefix, defaultTopicPrefix), "/")
	base := prefix + "/" + cfg.Gateway.ID + "/"
	u.topicData, u.topicEvent, u.topicStatus = base+"data", base+"event", base+"status"
	u.topicCmd, u.topicReply = base+"cmd/+", base+"reply"
	if uc.Commands != nil {
		c, err := newCommander(cfg, opts.Commands)
		if err != nil {
			return nil, err
		}
		u.cmd = c
		u.cmdIn = make(chan cmdMsg, cmdQueue)
	}

	needTLS := false
	for i, raw := range uc.Brokers {
		b, err := url.Parse(raw)
		if err != nil {
			// url's error repeats the URL, password and all: don't wrap it.
			return nil, fmt.Errorf("uplink: brokers[%d] is not a URL", i)
		}
		switch b.Scheme {
		case "tcp", "mqtt":
		case "ssl", "tls":
			needTLS = true
		default:
			return nil, fmt.Errorf("uplink: brokers[%d] %s: scheme must be tcp, mqtt, ssl or tls", i, redact(b))
		}
		if b.Host == "" || b.Port() == "" {
			return nil, fmt.Errorf("uplink: brokers[%d] %s: needs host:port", i, redact(b))
		}
		u.brokers = append(u.brokers, b)
	}
	pw, err := readPassword(uc)
	if err != nil {
		return nil, err
	}
	u.password = pw
	if needTLS {
		if u.tls, err = tlsConfig(uc.TLS); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// readPassword takes the password from the file or the environment.
func readPassword(uc config.Uplink) (string, error) {
	switch {
	case uc.PasswordFile != "":
		b, err := os.ReadFile(uc.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("uplink: password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case uc.PasswordEnv != "":
		pw, ok := os.LookupEnv(uc.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("uplink: password_env: environment variable %s is not set", uc.PasswordEnv)
		}
		return pw, nil
	}
	return "", nil
}

// Connected reports whether a broker connection is up now.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// Stats returns a snapshot of the counters.
func (u *Uplink) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	s.Connected = u.connected.Load()
	return s
}

func (u *Uplink) noteError(err error) {
	u.mu.Lock()
	u.stats.LastError = err.Error()
	u.stats.LastErrorAt = time.Now()
	u.mu.Unlock()
}

// Run connects and publishes until ctx is done. Before it returns it has
// tried to publish a retained offline status with reason "shutdown" and
// has disconnected. It returns nil after ctx ends; an error only when it
// cannot run at all.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return errors.New("uplink: Run is already running")
	}
	defer u.running.Store(false)

	// acked[s] is the highest sequence number of stream s up to which the
	// broker acknowledged every message we sent: the next connection
	// starts reading after it. It starts at 0: the oldest record in the
	// buffer. It only ever moves on PUBACKs, so no record is skipped.
	var acked [len(model.Streams)]uint64
	failures := 0
	for {
		for _, b := range u.brokers {
			if ctx.Err() != nil {
				return nil
			}
			conn, err := u.connect(ctx, b)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				u.mu.Lock()
				u.stats.ConnectFailures++
				u.mu.Unlock()
				u.noteError(err)
				u.log.Warn("broker connection failed", "broker", redact(b), "err", err)
				continue
			}
			progress := u.serve(ctx, conn, &acked)
			if ctx.Err() != nil {
				return nil
			}
			u.mu.Lock()
			u.stats.Reconnects++
			u.mu.Unlock()
			if progress {
				failures = 0
			}
			break // start again from the first (preferred) broker
		}
		failures++
		wait := backoff(failures, u.reconnectMax)
		u.log.Info("reconnecting", "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait before round n (1-based) of connection attempts:
// doubling from reconnectMin up to limit, with half of it random so that
// many gateways restarted together do not reconnect in step.
func backoff(n int, limit time.Duration) time.Duration {
	d := limit
	if n < 30 {
		d = min(reconnectMin<<(n-1), limit)
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// statusPayload encodes a status message, with Health() fields when set.
func (u *Uplink) statusPayload(state, reason, broker string, now time.Time) []byte {
	var health json.RawMessage
	if u.health != nil && state == StateOnline {
		hv := u.health()
		st := u.Stats()
		hv.Broker = BrokerHealth{
			Connected: st.Connected, URL: broker, Reconnects: st.Reconnects,
			ConnectFailures: st.ConnectFailures, InFlight: st.InFlight,
		}
		if hv.Devices == nil {
			hv.Devices = []DeviceHealth{}
		}
		h, err := json.Marshal(hv)
		if err != nil {
			u.log.Warn("health fields do not encode", "err", err)
		} else {
			health = h
		}
	}
	m := u.enc.status(state, reason, now, u.startedAt, broker, health, version.Version)
	b, err := json.Marshal(m)
	if err != nil { // cannot happen: every field is a plain value
		panic(fmt.Sprintf("uplink: status does not encode: %v", err))
	}
	return b
}

// redact renders a broker URL without user info, for logs and status.
func redact(b *url.URL) string {
	c := *b
	c.User = nil
	return c.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func orDur(d config.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}
