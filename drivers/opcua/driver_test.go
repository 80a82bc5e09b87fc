package opcua

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

type tagSpec struct {
	name, node string
	subscribe  bool
	writable   bool
}

func device(endpoint string, interval time.Duration, tags ...tagSpec) config.Device {
	d := config.Device{
		Name: "R-301", Protocol: config.ProtocolOPCUA, Address: endpoint,
		Interval: config.Duration(interval), Timeout: config.Duration(interval / 2),
		CommLossAfter: config.Duration(10 * interval), BackoffMax: config.Duration(4 * interval),
	}
	for _, ts := range tags {
		tag := config.Tag{Name: ts.name, Kind: config.KindTemperature, Node: ts.node, Writable: ts.writable}
		if ts.subscribe {
			tag.OPCUA = &config.TagOPCUA{Subscribe: true, SamplingInterval: config.Duration(interval / 2), QueueSize: 1}
		}
		d.Tags = append(d.Tags, tag)
	}
	return d
}

func newDriver(t *testing.T, dev config.Device) *Driver {
	t.Helper()
	d, err := New(dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// pollUntil polls every interval until ok accepts the samples, for at most
// limit; it returns the last samples and error.
func pollUntil(t *testing.T, d *Driver, interval, limit time.Duration, ok func([]model.Sample, error) bool) ([]model.Sample, error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		s, err := d.Poll(ctx)
		<-ctx.Done() // keep the interval, like the scheduler
		cancel()
		if ok(s, err) || time.Now().After(deadline) {
			return s, err
		}
	}
}

func allGood(s []model.Sample, err error) bool {
	if err != nil || len(s) == 0 {
		return false
	}
	for _, x := range s {
		if x.Quality != model.Good {
			return false
		}
	}
	return true
}

func byTag(s []model.Sample) map[string]model.Sample {
	m := map[string]model.Sample{}
	for _, x := range s {
		m[x.Tag] = x
	}
	return m
}

// TestPollReactor reads the reactor by polling: values as the reactor
// serves them, its source timestamps, and an unknown node that is bad on
// its own without spoiling the others.
func TestPollReactor(t *testing.T) {
	r := testkit.StartReactor(t, sim.ReactorOptions{})
	const interval = 200 * time.Millisecond
	d := newDriver(t, device(r.Endpoint(), interval,
		tagSpec{name: "TT-301", node: sim.ReactorNode(sim.TT301)},
		tagSpec{name: "PT-301", node: sim.ReactorNode(sim.PT301)},
		tagSpec{name: "XS-301", node: sim.ReactorNode(sim.XS301)},
		tagSpec{name: "GONE", node: "ns=1;s=R-301.NoSuchTag"},
	))
	if err := r.Set(sim.TT301, 85.5); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC()
	s, err := pollUntil(t, d, interval, 15*time.Second, func(s []model.Sample, err error) bool {
		return err == nil && len(s) == 4 && s[0].Quality == model.Good
	})
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	m := byTag(s)
	if got := m["TT-301"]; got.Quality != model.Good || got.Value != 85.5 {
		t.Errorf("TT-301 = %+v, want good 85.5", got)
	}
	if got := m["PT-301"]; got.Quality != model.Good || got.Value < 0.2 || got.Value > 0.4 {
		t.Errorf("PT-301 = %+v, want good about 0.3", got)
	}
	if got := m["XS-301"]; got.Quality != model.Good || got.Value != 1 {
		t.Errorf("XS-301 = %+v, want good 1 (running)", got)
	}
	gone := m["GONE"]
	if gone.Quality != model.Bad || !strings.Contains(gone.Reason, "BadNodeIDUnknown") {
		t.Errorf("unknown node = %+v, want bad BadNodeIDUnknown", gone)
	}
	// The reactor stamps each value when it serves it: the sample keeps
	// that source time, which lies between the test's clock readings.
	if tt := m["TT-301"].Time; tt.Before(before.Add(-time.Second)) || tt.After(time.Now().Add(time.Second)) || tt.Location() != time.UTC {
		t.Errorf("TT-301 time %v, want the source timestamp (recent, UTC)", tt)
	}
}

// TestPollServerDown: no server is a device failure with every tag bad,
// and the driver connects once the server is there.
func TestPollServerDown(t *testing.T) {
	r := testkit.StartReactor(t, sim.ReactorOptions{})
	ep := r.Endpoint()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	const interval = 200 * time.Millisecond
	d := newDriver(t, device(ep, interval, tagSpec{name: "TT-301", node: sim.ReactorNode(sim.TT301)}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s, err := d.Poll(ctx)
	cancel()
	if err == nil || len(s) != 1 || s[0].Quality != model.Bad || !strings.Contains(s[0].Reason, model.ReasonConnection) {
		t.Fatalf("poll without a server = %+v, %v; want bad %q and an error", s, err, model.ReasonConnection)
	}
	if !strings.Contains(err.Error(), ep) {
		t.Errorf("error %q does not name the endpoint %s", err, ep)
	}
	if err := r.Start(r.Addr()); err != nil {
		t.Fatal(err)
	}
	if s, err := pollUntil(t, d, interval, 15*time.Second, allGood); !allGood(s, err) {
		t.Fatalf("after the server started: %+v, %v", s, err)
	}
}

// TestSubscriptionSurvivesRestart: subscribed tags deliver values through
// Poll; after the server is stopped and started again on the same port,
// the session, the subscription and every monitored item are rebuilt and
// every subscribed tag updates again within 10 s (gopcua #813 is the
// failure this guards against).
func TestSubscriptionSurvivesRestart(t *testing.T) {
	t0 := time.Now()
	r := testkit.StartReactor(t, sim.ReactorOptions{})
	const interval = 200 * time.Millisecond
	d := newDriver(t, device(r.Endpoint(), interval,
		tagSpec{name: "TT-301", node: sim.ReactorNode(sim.TT301), subscribe: true},
		tagSpec{name: "PT-301", node: sim.ReactorNode(sim.PT301), subscribe: true},
		tagSpec{name: "XS-301", node: sim.ReactorNode(sim.XS301), subscribe: true},
	))
	if err := r.Set(sim.TT301, 81); err != nil {
		t.Fatal(err)
	}
	valueIs := func(want float64) func([]model.Sample, error) bool {
		return func(s []model.Sample, err error) bool {
			return allGood(s, err) && byTag(s)["TT-301"].Value == want
		}
	}
	if s, err := pollUntil(t, d, interval, 15*time.Second, valueIs(81)); !valueIs(81)(s, err) {
		t.Fatalf("subscribed tags never became good with TT-301 = 81: %+v, %v", s, err)
	}
	t.Logf("subscribed tags good after %v", time.Since(t0).Round(time.Millisecond))
	// A change reaches the gateway through the subscription.
	if err := r.Set(sim.TT301, 82); err != nil {
		t.Fatal(err)
	}
	if s, err := pollUntil(t, d, interval, 10*time.Second, valueIs(82)); !valueIs(82)(s, err) {
		t.Fatalf("TT-301 = 82 never arrived: %+v, %v", s, err)
	}

	t.Logf("stopping the server at %v", time.Since(t0).Round(time.Millisecond))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// The driver notices: a poll fails and every tag is bad.
	s, err := pollUntil(t, d, interval, 10*time.Second, func(_ []model.Sample, err error) bool { return err != nil })
	if err == nil {
		t.Fatal("polls kept succeeding with the server stopped")
	}
	for _, x := range s {
		if x.Quality != model.Bad {
			t.Errorf("with the server down %s = %+v, want bad", x.Tag, x)
		}
	}
	t.Logf("a poll failed %v after the server stopped: %v", time.Since(stopped).Round(time.Millisecond), err)
	if err := r.Set(sim.TT301, 83); err != nil {
		t.Fatal(err)
	}
	// The clock starts when the server serves again: building gopcua's
	// address space takes seconds on a loaded machine, and is not the
	// gateway's time.
	if err := r.Start(r.Addr()); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	// Every subscribed tag updates again: good, with a time after the
	// restart, and TT-301 with the value set while the server was down.
	fresh := func(s []model.Sample, err error) bool {
		if !valueIs(83)(s, err) {
			return false
		}
		for _, x := range s {
			if x.Time.Before(restarted) {
				return false
			}
		}
		return true
	}
	s, err = pollUntil(t, d, interval, 10*time.Second, fresh)
	if !fresh(s, err) {
		t.Fatalf("10 s after the restart the subscribed tags are %+v, %v; want all good, updated after the restart", s, err)
	}
	t.Logf("every subscribed tag updated %v after the restart (test at %v)", time.Since(restarted).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}

// TestSilentServer: a server that accepts the connection and never
// answers holds up neither Poll (it returns by its deadline, every tag
// bad) nor Close (the connect in the background is abandoned).
func TestSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	d := newDriver(t, device("opc.tcp://"+ln.Addr().String(), 300*time.Millisecond, tagSpec{name: "TT-301", node: "ns=1;s=R-301.TT-301"}))
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		s, err := d.Poll(ctx)
		took := time.Since(start)
		cancel()
		if err == nil || len(s) != 1 || s[0].Quality != model.Bad {
			t.Fatalf("poll of a silent server: %+v, %v", s, err)
		}
		if took > 2*time.Second {
			t.Errorf("poll took %v with a 300ms deadline", took)
		}
	}
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a connect in progress", took)
	}
}

// TestWriteReactor: a writable Boolean node is written in its own type and
// read back; a value the type cannot hold and a tag not marked writable
// are refused before anything is sent.
func TestWriteReactor(t *testing.T) {
	r := testkit.StartReactor(t, sim.ReactorOptions{})
	d := newDriver(t, device(r.Endpoint(), 200*time.Millisecond,
		tagSpec{name: "HS-301", node: sim.ReactorNode(sim.HS301), writable: true},
		tagSpec{name: "TT-301", node: sim.ReactorNode(sim.TT301)},
	))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Write(ctx, "HS-301", 1); err != nil {
		t.Fatalf("write HS-301 = 1: %v", err)
	}
	s, err := d.Poll(ctx)
	if err != nil || byTag(s)["HS-301"].Value != 1 {
		t.Fatalf("after the write: %+v, %v", s, err)
	}
	if err := d.Write(ctx, "HS-301", 2); err == nil || !strings.Contains(err.Error(), "not 0 or 1") {
		t.Errorf("write 2 to a Boolean: %v", err)
	}
	if err := d.Write(ctx, "TT-301", 50); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("write to a tag not marked writable: %v", err)
	}
	if err := d.Write(ctx, "NOPE", 1); err == nil {
		t.Error("write to an unknown tag succeeded")
	}
}

func TestConvert(t *testing.T) {
	like := func(v any) *ua.Variant { return ua.MustVariant(v) }
	good := []struct {
		v    float64
		like any
		want any
	}{
		{1, false, true}, {0, true, false}, {-5, int16(0), int16(-5)}, {65535, uint16(0), uint16(65535)},
		{85.5, float64(0), 85.5}, {85.5, float32(0), float32(85.5)}, {4e9, uint32(0), uint32(4e9)},
	}
	for _, c := range good {
		got, err := convert(c.v, like(c.like))
		if err != nil || got.Value() != c.want {
			t.Errorf("convert(%v, %T) = %v, %v; want %v", c.v, c.like, got, err, c.want)
		}
	}
	bad := []struct {
		v    float64
		like any
	}{{0.5, false}, {1.5, int16(0)}, {40000, int16(0)}, {-1, uint8(0)}, {1, "text"}}
	for _, c := range bad {
		if got, err := convert(c.v, like(c.like)); err == nil {
			t.Errorf("convert(%v, %T) = %v, want an error", c.v, c.like, got)
		}
	}
}

// TestSilentSubscription: a subscription that stops publishing while the
// session still answers reads (gopcua pauses its publish loop on some
// errors without a word) is noticed by the heartbeat and rebuilt, so the
// subscribed tags do not keep a stale value as if it were good.
func TestSilentSubscription(t *testing.T) {
	r := testkit.StartReactor(t, sim.ReactorOptions{})
	const interval = 200 * time.Millisecond
	d := newDriver(t, device(r.Endpoint(), interval,
		tagSpec{name: "TT-301", node: sim.ReactorNode(sim.TT301), subscribe: true},
	))
	if err := r.Set(sim.TT301, 81); err != nil {
		t.Fatal(err)
	}
	is := func(want float64) func([]model.Sample, error) bool {
		return func(s []model.Sample, err error) bool { return allGood(s, err) && s[0].Value == want }
	}
	if s, err := pollUntil(t, d, interval, 15*time.Second, is(81)); !is(81)(s, err) {
		t.Fatalf("%+v, %v", s, err)
	}
	time.Sleep(time.Second) // let the heartbeat arm
	r.Freeze(true)
	if err := r.Set(sim.TT301, 95); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	s, err := pollUntil(t, d, interval, 30*time.Second, is(95))
	if !is(95)(s, err) {
		t.Fatalf("30 s after the subscription went silent TT-301 = %+v, %v; want the new value 95", s, err)
	}
	t.Logf("silent subscription rebuilt, new value after %v (heartbeat timeout %v)", time.Since(frozen).Round(time.Millisecond), d.heartbeatTimeout())
}
