package uplink

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"hazgate/docs/schema"
	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/internal/testkit"
)

// memSource is an in-memory Source: records of each stream numbered 1, 2,
// 3, ... (slice index = seq-1); Ack deletes them and is recorded, so tests
// can compare what was acknowledged with what the broker delivered.
type memSource struct {
	mu      sync.Mutex
	recs    [len(model.Streams)][]model.Record
	gone    [len(model.Streams)][]bool
	left    [len(model.Streams)]int // records not acknowledged
	acks    [len(model.Streams)][][2]uint64
	notify  chan struct{}
	readErr error
	keep    bool // Ack records but keep the records readable (a resend test)
}

func newMemSource() *memSource { return &memSource{notify: make(chan struct{}, 1)} }

func (m *memSource) Notify() <-chan struct{} { return m.notify }

func (m *memSource) Read(stream model.Stream, after uint64, max int) ([]model.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readErr != nil {
		return nil, m.readErr
	}
	var out []model.Record
	for i := int(after); i < len(m.recs[stream]) && len(out) < max; i++ {
		if !m.gone[stream][i] {
			out = append(out, m.recs[stream][i])
		}
	}
	return out, nil
}

func (m *memSource) Ack(stream model.Stream, first, last uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks[stream] = append(m.acks[stream], [2]uint64{first, last})
	if m.keep {
		return
	}
	for seq := first; seq <= last && seq <= uint64(len(m.recs[stream])); seq++ {
		if !m.gone[stream][seq-1] {
			m.gone[stream][seq-1] = true
			m.left[stream]--
		}
	}
}

func (m *memSource) add(stream model.Stream, r model.Record) uint64 {
	r.Stream = stream
	r.Seq = uint64(len(m.recs[stream]) + 1)
	m.recs[stream] = append(m.recs[stream], r)
	m.gone[stream] = append(m.gone[stream], false)
	m.left[stream]++
	return r.Seq
}

func (m *memSource) wake() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

var testTags = []string{"LT-101", "PT-201", "XX-999" /* not in the config */}

// addData appends n samples (every 7th bad) and notifies.
func (m *memSource) addData(n int) {
	m.mu.Lock()
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		k := len(m.recs[model.StreamData])
		s := model.Sample{Tag: testTags[k%len(testTags)], Device: "plc-1", Value: float64(k) / 100, Time: base.Add(time.Duration(k) * time.Millisecond)}
		if k%7 == 3 {
			s.Quality, s.Reason, s.Value = model.Bad, model.ReasonTimeout, 0
		}
		m.add(model.StreamData, model.Record{Sample: s})
	}
	m.mu.Unlock()
	m.wake()
}

func (m *memSource) addEvent(ev model.Event) uint64 {
	m.mu.Lock()
	seq := m.add(model.StreamEvent, model.Record{Event: ev})
	m.mu.Unlock()
	m.wake()
	return seq
}

func (m *memSource) unacked(stream model.Stream) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.left[stream]
}

func (m *memSource) count(stream model.Stream) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs[stream])
}

// ackedSeqs lists every sequence number passed to Ack.
func (m *memSource) ackedSeqs(stream model.Stream) []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []uint64
	for _, a := range m.acks[stream] {
		for s := a[0]; s <= a[1]; s++ {
			out = append(out, s)
		}
	}
	return out
}

func alarm(tag string, v, limit float64) model.Event {
	return model.Event{Kind: model.AlarmRaised, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Device: "plc-1", Tag: tag,
		Level: model.LevelHH, Value: model.Float(v), Limit: model.Float(limit), Message: tag + " high-high"}
}

func testConfig(brokers ...string) *config.Config {
	return &config.Config{
		Gateway: config.Gateway{ID: "gw-01", EnterpriseCode: "E3201001"},
		Uplink: config.Uplink{
			Brokers:        brokers,
			TopicPrefix:    "hazgate",
			Inflight:       32,
			BatchMax:       100,
			KeepAlive:      config.Duration(5 * time.Second),
			ConnectTimeout: config.Duration(2 * time.Second),
			Heartbeat:      config.Duration(time.Hour),
			ReconnectMax:   config.Duration(time.Second),
		},
		Devices: []config.Device{{Name: "plc-1", Protocol: config.ProtocolModbusTCP, Tags: []config.Tag{
			{Name: "LT-101", Description: "Tank T-101 level", Kind: config.KindLevel, Unit: "m", HazardSource: "HS-320100-01", Indicator: "LT101-LV"},
			{Name: "PT-201", Description: "Reactor R-2 pressure", Kind: config.KindPressure, Unit: "MPa", HazardSource: "HS-320100-02", Indicator: "PT201-PR"},
		}}},
	}
}

// runUplink starts Run and stops it at the end of the test; Run must
// return nil within 10 s of the cancel.
func runUplink(t testing.TB, opts Options, src Source) (*Uplink, func()) {
	t.Helper()
	u, err := New(opts, src)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u, testkit.RunInBackground(t, "uplink", u, 10*time.Second)
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startBroker(t testing.TB, addr string) *broker.Broker {
	t.Helper()
	var b *broker.Broker
	var err error
	// Rebinding a just-closed port can fail for a moment.
	for i := 0; i < 50; i++ {
		if b, err = broker.Start(addr, nil); err == nil {
			t.Cleanup(func() { _ = b.Close() })
			return b
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("start broker on %s: %v", addr, err)
	return nil
}

// collector records what a broker delivered on the gateway's topics.
type collector struct {
	mu       sync.Mutex
	order    [len(model.Streams)][]uint64 // sequence numbers in arrival order
	seen     [len(model.Streams)]map[uint64]bool
	dataMsgs []DataMessage
	events   []EventMessage
	statuses []StatusMessage
	replies  []ReplyMessage
	raw      []broker.Message
	errs     []string
	schemas  *schema.Set
}

func newCollector() *collector {
	schemas, err := schema.Load()
	if err != nil {
		panic(err) // the embedded schemas are part of the build
	}
	c := &collector{schemas: schemas}
	for i := range c.seen {
		c.seen[i] = make(map[uint64]bool)
	}
	return c
}

func (c *collector) subscribe(t testing.TB, b *broker.Broker) {
	t.Helper()
	if err := b.Subscribe("hazgate/gw-01/#", c.handle); err != nil {
		t.Fatal(err)
	}
	// Whatever else a test checks, every message it saw must have matched
	// the schema (docs/schema) and the Go structs.
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.errs[:min(5, len(c.errs))] {
			t.Errorf("invalid payload: %s", e)
		}
	})
}

func strictDecode(p []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(p))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func (c *collector) handle(m broker.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw = append(c.raw, m)
	p, err := DecodePayload(m.Payload)
	if err != nil {
		c.errs = append(c.errs, fmt.Sprintf("%s: %v", m.Topic, err))
		return
	}
	m.Payload = p
	// Every message the gateway sends must match the published schema.
	// Command topics carry what tests send, broken on purpose too.
	if kind := schema.KindOfTopic(m.Topic); kind != "" && kind != schema.Command {
		if err := c.schemas.Validate(kind, m.Payload); err != nil {
			c.errs = append(c.errs, fmt.Sprintf("schema: %v: %s", err, m.Payload[:min(len(m.Payload), 300)]))
		}
	}
	switch {
	case strings.Contains(m.Topic, "/cmd/"):
	case strings.HasSuffix(m.Topic, "/data"):
		var d DataMessage
		if err := strictDecode(m.Payload, &d); err != nil {
			c.errs = append(c.errs, fmt.Sprintf("data: %v", err))
			return
		}
		for _, s := range d.Samples {
			c.order[model.StreamData] = append(c.order[model.StreamData], s.Seq)
			c.seen[model.StreamData][s.Seq] = true
		}
		d.Samples = d.Samples[:min(len(d.Samples), 3)] // keep memory small
		c.dataMsgs = append(c.dataMsgs, d)
	case strings.HasSuffix(m.Topic, "/event"):
		var e EventMessage
		if err := strictDecode(m.Payload, &e); err != nil {
			c.errs = append(c.errs, fmt.Sprintf("event: %v", err))
			return
		}
		c.order[model.StreamEvent] = append(c.order[model.StreamEvent], e.Seq)
		c.seen[model.StreamEvent][e.Seq] = true
		c.events = append(c.events, e)
	case strings.HasSuffix(m.Topic, "/status"):
		var s StatusMessage
		if err := strictDecode(m.Payload, &s); err != nil {
			c.errs = append(c.errs, fmt.Sprintf("status: %v", err))
			return
		}
		c.statuses = append(c.statuses, s)
	case strings.HasSuffix(m.Topic, "/reply"):
		var r ReplyMessage
		if err := strictDecode(m.Payload, &r); err != nil {
			c.errs = append(c.errs, fmt.Sprintf("reply: %v", err))
			return
		}
		c.replies = append(c.replies, r)
	default:
		c.errs = append(c.errs, "unexpected topic "+m.Topic)
	}
}

func (c *collector) nSeen(stream model.Stream) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen[stream])
}

func (c *collector) nData() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.dataMsgs)
}

func (c *collector) lastStatus() (StatusMessage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.statuses) == 0 {
		return StatusMessage{}, false
	}
	return c.statuses[len(c.statuses)-1], true
}

// retainedStatus returns the broker's retained status message (a new
// subscription receives it at once).
func retainedStatus(t testing.TB, b *broker.Broker) (StatusMessage, bool) {
	t.Helper()
	var mu sync.Mutex
	var got []broker.Message
	if err := b.Subscribe("hazgate/gw-01/status", func(m broker.Message) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range got {
		if m.Retained {
			var s StatusMessage
			if err := strictDecode(m.Payload, &s); err != nil {
				t.Fatalf("retained status does not decode: %v: %s", err, m.Payload)
			}
			return s, true
		}
	}
	return StatusMessage{}, false
}

// proxy is a TCP relay between the uplink and a broker; cut closes every
// connection abruptly and stops accepting, as a pulled cable would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
	// stalled holds back what the uplink sends, like a congested link:
	// publishes leave the gateway but never reach the broker.
	stalled atomic.Bool
	done    chan struct{}
	cutOnce sync.Once
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) URL() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(out, in, true)
		go p.pipe(in, out, false)
	}
}

func (p *proxy) pipe(dst, src net.Conn, upstream bool) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for upstream && p.stalled.Load() {
			time.Sleep(5 * time.Millisecond)
			select {
			case <-p.done:
				return
			default:
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) cut() {
	p.cutOnce.Do(func() { close(p.done) })
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// logBuffer is an io.Writer for slog that tests may read while the
// uplink writes.
type logBuffer struct {
	testkit.SyncBuffer
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var errTest = errors.New("test: buffer unreadable")

// mochiHook is a hook for a hand-built test broker, with its options.
type mochiHook struct {
	hook mochi.Hook
	opts any
}

// startMochi runs a mochi broker with hooks and one TCP listener on a free
// loopback port (tlsConf nil: plain TCP). It returns the listener's address
// and a function that stops the broker, which the test's cleanup calls too.
func startMochi(t *testing.T, id string, tlsConf *tls.Config, hooks ...mochiHook) (addr string, kill func()) {
	t.Helper()
	srv := mochi.New(&mochi.Options{Logger: discardLogger()})
	for _, h := range hooks {
		if err := srv.AddHook(h.hook, h.opts); err != nil {
			t.Fatal(err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: id, Address: "127.0.0.1:0", TLSConfig: tlsConf})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() { once.Do(func() { _ = srv.Close() }) } // mochi panics on a second Close
	t.Cleanup(kill)
	return l.Address(), kill
}
