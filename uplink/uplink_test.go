package uplink

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

var timeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// checkAckedWereSeen fails if any acknowledged record never reached the
// broker's subscriber: the one thing that would lose data for good.
func checkAckedWereSeen(t *testing.T, src *memSource, col *collector) {
	t.Helper()
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, st := range model.Streams {
		for _, seq := range src.ackedSeqs(st) {
			if !col.seen[st][seq] {
				t.Fatalf("%s seq %d was acknowledged to the buffer but the broker never delivered it", st, seq)
			}
		}
	}
}

// checkNoGaps fails unless the subscriber saw 1..n of stream.
func checkNoGaps(t *testing.T, col *collector, st model.Stream, n int) {
	t.Helper()
	col.mu.Lock()
	defer col.mu.Unlock()
	for seq := uint64(1); seq <= uint64(n); seq++ {
		if !col.seen[st][seq] {
			t.Fatalf("%s seq %d never arrived (of %d)", st, seq, n)
		}
	}
}

func TestDeliversEveryRecordInOrder(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	src := newMemSource()
	src.addData(2500)
	src.addEvent(alarm("LT-101", 18.7, 18.5))
	src.addEvent(model.Event{Kind: model.GatewayStarted, Time: t0, Message: "hazgate started"})

	u, _ := runUplink(t, Options{Config: testConfig(b.URL())}, src)
	eventually(t, 15*time.Second, "first batch acknowledged", func() bool {
		return src.unacked(model.StreamData) == 0 && src.unacked(model.StreamEvent) == 0
	})
	// Records that arrive while idle are sent on Notify, not on the poll.
	start := time.Now()
	src.addData(5)
	src.addEvent(alarm("PT-201", 2.5, 2.4))
	eventually(t, 5*time.Second, "records added later acknowledged", func() bool {
		return src.unacked(model.StreamData) == 0 && src.unacked(model.StreamEvent) == 0
	})
	if d := time.Since(start); d > pollInterval/2 {
		t.Errorf("new records took %s: Notify was not used", d)
	}

	nData, nEvent := src.count(model.StreamData), src.count(model.StreamEvent)
	checkAckedWereSeen(t, src, col)
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.errs) > 0 {
		t.Fatalf("payloads do not match the schema: %v", col.errs[:min(3, len(col.errs))])
	}
	// Without an outage every record arrives exactly once, in order.
	for _, st := range model.Streams {
		want := make([]uint64, map[model.Stream]int{model.StreamData: nData, model.StreamEvent: nEvent}[st])
		for i := range want {
			want[i] = uint64(i + 1)
		}
		if !slices.Equal(col.order[st], want) {
			t.Errorf("%s arrived as %v..., want 1..%d in order", st, col.order[st][:min(10, len(col.order[st]))], len(want))
		}
	}
	for _, d := range col.dataMsgs {
		if d.V != 1 || d.Gateway != "gw-01" || d.Enterprise != "E3201001" || d.Stream != "data" || !timeRE.MatchString(d.SentAt) {
			t.Fatalf("data header wrong: %+v", d)
		}
		if n := d.SeqLast - d.SeqFirst + 1; n > 100 || d.Samples[0].Seq != d.SeqFirst {
			t.Fatalf("data message %d..%d: more than batch_max or seq_first wrong", d.SeqFirst, d.SeqLast)
		}
		for _, s := range d.Samples {
			if !timeRE.MatchString(s.Time) {
				t.Fatalf("sample time %q", s.Time)
			}
			if (s.Quality == "bad") != (s.Value == nil) {
				t.Fatalf("sample %d: quality %s with value %v", s.Seq, s.Quality, s.Value)
			}
			switch s.Tag {
			case "LT-101":
				if s.Kind != "level" || s.Unit != "m" || s.HazardSource != "HS-320100-01" || s.Indicator != "LT101-LV" {
					t.Fatalf("metadata missing: %+v", s)
				}
			case "XX-999": // no longer configured: still sent, without metadata
				if s.Kind != "" || s.Unit != "" {
					t.Fatalf("unknown tag has metadata: %+v", s)
				}
			}
		}
	}
	if e := col.events[0]; e.Kind != "alarm_raised" || e.Tag != "LT-101" || e.Level != "hh" || *e.Value != 18.7 || *e.Limit != 18.5 || e.Unit != "m" || !timeRE.MatchString(e.Time) {
		t.Errorf("alarm event: %+v", e)
	}
	st := u.Stats()
	if !st.Connected || st.AckedRecords != uint64(nData+nEvent) || st.InFlight != 0 || st.Broker != b.URL() {
		t.Errorf("stats: %+v", st)
	}
}

func TestBrokerOutageLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("outage takes seconds")
	}
	b1 := startBroker(t, "127.0.0.1:0")
	addr := b1.Addr()
	col := newCollector()
	col.subscribe(t, b1)
	src := newMemSource()
	src.addData(30_000)
	src.addEvent(alarm("LT-101", 18.7, 18.5))

	u, _ := runUplink(t, Options{Config: testConfig(b1.URL())}, src)

	// The plant keeps producing through the outage.
	stopProducing := make(chan struct{})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		deadline := time.After(20 * time.Second)
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			case <-deadline:
				return
			case <-time.After(5 * time.Millisecond):
				src.addData(20)
				if i%50 == 0 {
					src.addEvent(alarm("PT-201", 2.5, 2.4))
				}
			}
		}
	}()

	eventually(t, 10*time.Second, "backlog flowing with a full window", func() bool {
		st := u.Stats()
		return st.AckedMsgs > 20 && st.InFlight >= 8
	})
	_ = b1.Close() // mid-stream, with publishes in flight
	eventually(t, 5*time.Second, "uplink notices the outage", func() bool { return !u.Connected() })
	time.Sleep(2 * time.Second)
	b2 := startBroker(t, addr)
	col.subscribe(t, b2)
	eventually(t, 15*time.Second, "reconnected", u.Connected)
	time.Sleep(500 * time.Millisecond)
	close(stopProducing)
	<-produced

	eventually(t, 30*time.Second, "everything acknowledged after the outage", func() bool {
		return src.unacked(model.StreamData) == 0 && src.unacked(model.StreamEvent) == 0
	})
	checkNoGaps(t, col, model.StreamData, src.count(model.StreamData))
	checkNoGaps(t, col, model.StreamEvent, src.count(model.StreamEvent))
	checkAckedWereSeen(t, src, col)
	if st := u.Stats(); st.Reconnects < 1 {
		t.Errorf("stats: %+v, want a reconnect", st)
	}
	t.Logf("data records %d, events %d, stats %+v", src.count(model.StreamData), src.count(model.StreamEvent), u.Stats())
}

func TestEventsOvertakeDataBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("100k records")
	}
	b := startBroker(t, "127.0.0.1:0")
	cfg := testConfig(b.URL())
	src := newMemSource()
	src.addData(100_000)
	var eventAddedAt, dataAtEvent int = -1, -1
	col := newCollector()
	if err := b.Subscribe("hazgate/gw-01/#", func(m broker.Message) {
		col.handle(m)
		if strings.HasSuffix(m.Topic, "/event") {
			col.mu.Lock()
			if dataAtEvent < 0 {
				dataAtEvent = len(col.dataMsgs)
			}
			col.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	runUplink(t, Options{Config: cfg}, src)
	eventually(t, 10*time.Second, "data backlog flowing", func() bool { return col.nData() >= 5 })
	col.mu.Lock()
	eventAddedAt = len(col.dataMsgs)
	col.mu.Unlock()
	src.addEvent(alarm("LT-101", 18.7, 18.5))
	// The handler counts the event (col.handle) before it notes
	// dataAtEvent, so wait for the note itself, under the same lock.
	eventually(t, 10*time.Second, "alarm delivered", func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		return dataAtEvent >= 0
	})

	col.mu.Lock()
	between := dataAtEvent - eventAddedAt
	atEvent := dataAtEvent
	col.mu.Unlock()
	t.Logf("data messages delivered while the alarm waited: %d (window %d, backlog 1000 messages)", between, cfg.Uplink.Inflight)
	if between > cfg.Uplink.Inflight+2 {
		t.Errorf("alarm waited behind %d data messages; at most one in-flight window (%d) allowed", between, cfg.Uplink.Inflight)
	}
	if atEvent >= 1000 {
		t.Errorf("alarm arrived after the whole backlog")
	}
}

func TestFailoverToNextBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "tcp://" + ln.Addr().String()
	_ = ln.Close() // a closed port: connection refused
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	src := newMemSource()
	src.addData(10)

	u, _ := runUplink(t, Options{Config: testConfig(dead, b.URL())}, src)
	eventually(t, 10*time.Second, "connected to the second broker", u.Connected)
	eventually(t, 5*time.Second, "records acknowledged", func() bool { return src.unacked(model.StreamData) == 0 })
	st := u.Stats()
	if st.Broker != b.URL() || st.ConnectFailures < 1 || st.LastError == "" {
		t.Errorf("stats %+v: want broker %s after a failure on %s", st, b.URL(), dead)
	}
	if s, ok := col.lastStatus(); !ok || s.State != StateOnline || s.Broker != b.URL() {
		t.Errorf("birth: %+v", s)
	}
}

func TestBirthHeartbeatWillAndShutdown(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	p := startProxy(t, b.Addr())
	cfg := testConfig(p.URL())
	cfg.Uplink.Heartbeat = config.Duration(150 * time.Millisecond)
	health := func() Health {
		h := Health{ConfigHash: "0123456789abcdef", Clock: ClockHealth{State: "ok"}}
		h.Buffer.Records, h.Buffer.DataRecords = 7, 7
		h.Alarms.Count("hh", "red")
		return h
	}
	u, _ := runUplink(t, Options{Config: cfg, Health: health}, newMemSource())

	eventually(t, 10*time.Second, "connected", u.Connected)
	s, ok := retainedStatus(t, b)
	if !ok || s.State != StateOnline || s.Reason != "" || s.Gateway != "gw-01" || s.Broker != p.URL() ||
		!timeRE.MatchString(s.Time) || !timeRE.MatchString(s.StartedAt) || s.Version == "" {
		t.Fatalf("birth (retained): %+v", s)
	}

	eventually(t, 5*time.Second, "three heartbeats", func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		return len(col.statuses) >= 4
	})
	hb, _ := col.lastStatus()
	var h Health
	if err := strictDecode(hb.Health, &h); err != nil || h.Buffer.Records != 7 || h.Alarms.HH != 1 || h.Alarms.Red != 1 || !h.Broker.Connected || h.Broker.URL != p.URL() {
		t.Errorf("heartbeat health = %s (%v), want the Health() fields", hb.Health, err)
	}
	if hb.State != StateOnline {
		t.Errorf("heartbeat state %q", hb.State)
	}

	// A pulled cable: the broker must publish the will.
	p.cut()
	eventually(t, 10*time.Second, "retained will", func() bool {
		s, ok := retainedStatus(t, b)
		return ok && s.State == StateOffline && s.Reason == ReasonConnectionLost
	})
	eventually(t, 5*time.Second, "uplink notices", func() bool { return !u.Connected() })
}

func TestOrderlyShutdownLeavesShutdownStatus(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	u, stop := runUplink(t, Options{Config: testConfig(b.URL())}, newMemSource())
	eventually(t, 10*time.Second, "connected", u.Connected)
	eventually(t, 5*time.Second, "birth", func() bool { s, ok := col.lastStatus(); return ok && s.State == StateOnline })
	stop()
	s, ok := retainedStatus(t, b)
	if !ok || s.State != StateOffline || s.Reason != ReasonShutdown {
		t.Fatalf("retained status after shutdown: %+v", s)
	}
	// The DISCONNECT cancelled the will: nothing replaces "shutdown".
	time.Sleep(300 * time.Millisecond)
	if s, _ := retainedStatus(t, b); s.Reason != ReasonShutdown {
		t.Fatalf("retained status changed to %+v after shutdown", s)
	}
	if u.Connected() {
		t.Error("still connected after Run returned")
	}
}

// startAuthBroker runs a mochi broker that only lets gw-01 in with password.
func startAuthBroker(t *testing.T, password string) string {
	t.Helper()
	addr, _ := startMochi(t, "auth", nil, mochiHook{hook: new(auth.Hook), opts: &auth.Options{Ledger: &auth.Ledger{Auth: auth.AuthRules{
		{Username: "gw-01", Password: auth.RString(password), Allow: true},
	}}}})
	return "tcp://" + addr
}

func TestPasswordReachesBrokerAndNeverTheLog(t *testing.T) {
	const secret = "s3cret-Pa55"
	url := startAuthBroker(t, secret)
	pwFile := filepath.Join(t.TempDir(), "mqtt.pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(t.TempDir(), "wrong.pw")
	if err := os.WriteFile(wrongFile, []byte("not-"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HAZGATE_TEST_MQTT_PASSWORD", secret)

	cases := []struct {
		name    string
		set     func(*config.Uplink)
		connect bool
	}{
		{"file with trailing newline", func(c *config.Uplink) { c.PasswordFile = pwFile }, true},
		{"environment", func(c *config.Uplink) { c.PasswordEnv = "HAZGATE_TEST_MQTT_PASSWORD" }, true},
		{"wrong password", func(c *config.Uplink) { c.PasswordFile = wrongFile }, false},
		{"no password", func(c *config.Uplink) {}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs logBuffer
			cfg := testConfig(url)
			cfg.Uplink.Username = "gw-01"
			c.set(&cfg.Uplink)
			src := newMemSource()
			src.addData(3)
			u, stop := runUplink(t, Options{Config: cfg, Logger: logs.logger()}, src)
			if c.connect {
				eventually(t, 10*time.Second, "records acknowledged", func() bool { return src.unacked(model.StreamData) == 0 })
			} else {
				eventually(t, 10*time.Second, "refusal", func() bool { return u.Stats().ConnectFailures >= 2 })
				if u.Connected() || u.Stats().AckedMsgs != 0 {
					t.Fatalf("connected with a bad password: %+v", u.Stats())
				}
			}
			stop()
			out := logs.String()
			if strings.Contains(out, secret) {
				t.Fatalf("password in the log:\n%s", out)
			}
			if !strings.Contains(out, url) {
				t.Fatalf("log does not name the broker %s:\n%s", url, out)
			}
		})
	}
}

func TestCredentialsInBrokerURLAreNotLogged(t *testing.T) {
	var logs logBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	u, stop := runUplink(t, Options{Config: testConfig("tcp://gw:url-Secret-9@" + addr), Logger: logs.logger()}, newMemSource())
	eventually(t, 10*time.Second, "a failed attempt", func() bool { return u.Stats().ConnectFailures >= 1 })
	stop()
	if out := logs.String(); strings.Contains(out, "url-Secret-9") || !strings.Contains(out, "tcp://"+addr) {
		t.Fatalf("log leaks the password or misses the broker:\n%s", out)
	}
	if s := u.Stats(); strings.Contains(s.LastError, "url-Secret-9") {
		t.Fatalf("stats leak the password: %s", s.LastError)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		set  func(*config.Config)
		want string
	}{
		{"no brokers", func(c *config.Config) { c.Uplink.Brokers = nil }, "brokers is empty"},
		{"bad scheme", func(c *config.Config) { c.Uplink.Brokers = []string{"http://u:hidden-pw@h:1883"} }, "scheme"},
		{"no port", func(c *config.Config) { c.Uplink.Brokers = []string{"tcp://h"} }, "host:port"},
		{"no gateway id", func(c *config.Config) { c.Gateway.ID = "" }, "gateway.id"},
		{"missing password file", func(c *config.Config) { c.Uplink.PasswordFile = filepath.Join(dir, "nope") }, "password_file"},
		{"unset env", func(c *config.Config) { c.Uplink.PasswordEnv = "HAZGATE_TEST_SURELY_UNSET" }, "not set"},
		{"cert without key", func(c *config.Config) {
			c.Uplink.Brokers = []string{"ssl://h:8883"}
			c.Uplink.TLS.CertFile = filepath.Join(dir, "c.pem")
		}, "go together"},
		{"bad CA file", func(c *config.Config) {
			c.Uplink.Brokers = []string{"tls://h:8883"}
			c.Uplink.TLS.CAFile = filepath.Join(dir, "ca.pem")
			_ = os.WriteFile(c.Uplink.TLS.CAFile, []byte("not pem"), 0o600)
		}, "no PEM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig("tcp://127.0.0.1:1883")
			c.set(cfg)
			_, err := New(Options{Config: cfg}, newMemSource())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hidden-pw") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestReadErrorDoesNotSpinOrDrop(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	src := newMemSource()
	src.addData(50)
	src.mu.Lock()
	src.readErr = errTest
	src.mu.Unlock()
	u, _ := runUplink(t, Options{Config: testConfig(b.URL())}, src)
	eventually(t, 10*time.Second, "error noted", func() bool { return strings.Contains(u.Stats().LastError, errTest.Error()) })
	if u.Stats().PublishedMsgs != 0 {
		t.Fatal("published despite read errors")
	}
	src.mu.Lock()
	src.readErr = nil
	src.mu.Unlock()
	eventually(t, 5*time.Second, "recovered on the poll timer", func() bool { return src.unacked(model.StreamData) == 0 })
}

// BenchmarkThroughput measures records per second from the in-memory
// source through the embedded broker (batch 100, in-flight 32).
func BenchmarkThroughput(b *testing.B) {
	br := startBroker(b, "127.0.0.1:0")
	src := newMemSource()
	u, stop := runUplink(b, Options{Config: testConfig(br.URL())}, src)
	eventually(b, 10*time.Second, "connected", u.Connected)
	b.ResetTimer()
	start := time.Now()
	src.addData(b.N)
	eventually(b, 10*time.Minute, "all acknowledged", func() bool { return src.unacked(model.StreamData) == 0 })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	stop()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestLostInFlightIsResent stalls the link so that a whole window of
// publishes leaves the gateway without reaching the broker, then cuts it.
// None of them may be acknowledged to the buffer, and all of them must be
// sent again on the next connection (here: the second broker URL).
func TestLostInFlightIsResent(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, b)
	p := startProxy(t, b.Addr())
	src := newMemSource()
	src.addData(20_000)
	src.addEvent(alarm("LT-101", 18.7, 18.5))
	cfg := testConfig(p.URL(), b.URL())
	u, _ := runUplink(t, Options{Config: cfg}, src)

	eventually(t, 10*time.Second, "backlog flowing", func() bool { return u.Stats().AckedMsgs > 5 })
	p.stalled.Store(true)
	eventually(t, 10*time.Second, "a full window stuck", func() bool { return u.Stats().InFlight == cfg.Uplink.Inflight })
	time.Sleep(100 * time.Millisecond)
	before := u.Stats()
	if before.InFlight != cfg.Uplink.Inflight {
		t.Fatalf("window not full while stalled: %+v", before)
	}
	src.addEvent(alarm("PT-201", 2.5, 2.4)) // waits for the window, then the next connection
	p.cut()

	eventually(t, 20*time.Second, "everything acknowledged on the second broker", func() bool {
		return src.unacked(model.StreamData) == 0 && src.unacked(model.StreamEvent) == 0
	})
	checkAckedWereSeen(t, src, col)
	checkNoGaps(t, col, model.StreamData, src.count(model.StreamData))
	checkNoGaps(t, col, model.StreamEvent, src.count(model.StreamEvent))
	if st := u.Stats(); st.Broker != b.URL() || st.PublishedMsgs < before.PublishedMsgs+uint64(cfg.Uplink.Inflight) {
		t.Errorf("stats after the cut %+v (before %+v): want the lost window sent again to %s", st, before, b.URL())
	}
}
