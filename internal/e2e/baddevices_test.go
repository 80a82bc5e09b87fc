package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/broker"
	"hazgate/internal/testkit"
)

// flakyTags are the misbehaving device's tags and the registers they read:
// two requests of the same size (0+2 and 100+2), so that an answer taken
// for the other request would decode without complaint and only its value
// would show the mix-up.
var flakyTags = map[string]uint16{"F-A": 0, "F-B": 1, "F-C": 100, "F-D": 101}

// flakyValue is what the misbehaving device holds in register a: distinct
// for every register.
func flakyValue(a uint16) uint16 { return 1000 + a }

const (
	healthyTag   = "H-1"
	healthyValue = 4242
	// The healthy device must never have a bad sample: its timeout is
	// kept well away from what a loaded 2-CPU CI machine under -race can
	// stall a loopback answer for (80 ms was exceeded once).
	healthyInterval = 200 * time.Millisecond
	healthyTimeout  = 180 * time.Millisecond
	flakyTimeout    = 80 * time.Millisecond
)

// flakyDevice is a Modbus TCP device that answers well until the test
// makes it misbehave, then well again. It keeps its address across a
// restart.
type flakyDevice struct {
	t       *testing.T
	addr    string
	bad     atomic.Bool
	misdo   func(d *flakyDevice, c net.Conn, req modbustest.Request) error
	perConn sync.Map // net.Conn -> *atomic.Int64: requests seen on it

	mu    sync.Mutex
	srv   *modbustest.RawServer
	stale [][]byte // late replies not yet delivered (answers-late case)
}

func newFlakyDevice(t *testing.T, misdo func(d *flakyDevice, c net.Conn, req modbustest.Request) error) *flakyDevice {
	d := &flakyDevice{t: t, misdo: misdo}
	d.srv = modbustest.NewRawServer(t, d.handle)
	d.addr = d.srv.Addr
	return d
}

func (d *flakyDevice) handle(c net.Conn, req modbustest.Request) error {
	if d.bad.Load() && d.misdo != nil {
		return d.misdo(d, c, req)
	}
	d.mu.Lock()
	burst := d.stale
	d.stale = nil
	d.mu.Unlock()
	// A device that kept late replies queued (a Modbus gateway in front of
	// a slow serial line does) sends them all before the answer due now.
	_, _ = c.Write(append(slices.Concat(burst...), goodAnswer(req)...))
	return nil
}

func goodAnswer(req modbustest.Request) []byte {
	v := make([]uint16, req.Quantity())
	for i := range v {
		v[i] = flakyValue(req.Address() + uint16(i))
	}
	return req.Registers(v...)
}

// requestsOn counts the requests seen on c, this one included.
func (d *flakyDevice) requestsOn(c net.Conn) int64 {
	n, _ := d.perConn.LoadOrStore(c, new(atomic.Int64))
	return n.(*atomic.Int64).Add(1)
}

func (d *flakyDevice) connections() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.srv.Connections()
}

// stop closes the listener and every connection: the device is off.
func (d *flakyDevice) stop() {
	d.mu.Lock()
	srv := d.srv
	d.mu.Unlock()
	srv.Stop()
}

// restart listens again on the same address.
func (d *flakyDevice) restart() {
	srv := modbustest.NewRawServerOn(d.t, d.addr, d.handle)
	d.mu.Lock()
	d.srv = srv
	d.mu.Unlock()
}

// platformView is what the platform received, as the broker delivered it.
type platformView struct {
	mu      sync.Mutex
	samples map[string][]seenSample // tag -> samples in arrival order
	events  []seenEvent
}

type seenSample struct {
	Quality string
	Reason  string
	Value   *float64
	Time    time.Time
}

type seenEvent struct {
	Kind, Device, Tag, Reason string
}

func (v *platformView) handle(m broker.Message) {
	var p struct {
		Stream  string `json:"stream"`
		Kind    string `json:"kind"`
		Device  string `json:"device"`
		Tag     string `json:"tag"`
		Reason  string `json:"reason"`
		Samples []struct {
			Tag     string    `json:"tag"`
			Quality string    `json:"quality"`
			Reason  string    `json:"reason"`
			Value   *float64  `json:"value"`
			Time    time.Time `json:"time"`
		} `json:"samples"`
	}
	if json.Unmarshal(m.Payload, &p) != nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch p.Stream {
	case "data":
		for _, s := range p.Samples {
			v.samples[s.Tag] = append(v.samples[s.Tag], seenSample{s.Quality, s.Reason, s.Value, s.Time})
		}
	case "event":
		v.events = append(v.events, seenEvent{p.Kind, p.Device, p.Tag, p.Reason})
	}
}

// count is the number of events of kind for tag ("" for any tag).
func (v *platformView) count(kind, tag string) int {
	n := 0
	for _, e := range v.events {
		if e.Kind == kind && (tag == "" || e.Tag == tag) {
			n++
		}
	}
	return n
}

// goodSince reports whether tag has a good sample acquired after t.
func (v *platformView) goodSince(tag string, t time.Time) bool {
	for _, s := range v.samples[tag] {
		if s.Quality == "good" && s.Time.After(t) {
			return true
		}
	}
	return false
}

// TestBadDevices runs the whole gateway with a healthy device and one that
// misbehaves for a while in one way, then behaves again. At the broker,
// as the platform sees it: only the misbehaving device's tags go bad, with
// the reason of what it did, and they raise faults once the outage outlasts
// comm_loss_after; the healthy device keeps its interval with good values;
// the misbehaving device's tags are good again by themselves (faults
// cleared) without restarting the gateway; and no good sample ever carries
// another register's value.
func TestBadDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the gateway seven times, about 15 s in all")
	}
	write := func(c net.Conn, b []byte) error { _, err := c.Write(b); return err }
	cases := []badCase{
		{
			name:    "accepts and never answers",
			misdo:   func(*flakyDevice, net.Conn, modbustest.Request) error { return nil },
			reasons: `^(device down: )?timeout$`,
			first:   "timeout",
		},
		{
			// Each answer comes after the driver gave up; the device also
			// queues it and, once it is fast again, sends the whole queue
			// of stale replies ahead of the answer due: the first of them
			// must be refused (transaction id), not taken as the answer.
			name: "answers late then a burst of stale replies",
			misdo: func(d *flakyDevice, c net.Conn, req modbustest.Request) error {
				ans := goodAnswer(req)
				d.mu.Lock()
				d.stale = append(d.stale, ans)
				d.mu.Unlock()
				time.AfterFunc(2*flakyTimeout, func() { _, _ = c.Write(ans) })
				return nil
			},
			reasons:    `^(device down: )?(timeout|transaction id mismatch)$`,
			first:      "timeout",
			afterBurst: true,
		},
		{
			name: "answers garbage",
			misdo: func(_ *flakyDevice, c net.Conn, _ modbustest.Request) error {
				return write(c, []byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			},
			reasons: `^(device down: )?connection error: invalid response: malformed frame: protocol id 21584, want 0$`,
			first:   "connection error: invalid response: malformed frame: protocol id 21584, want 0",
		},
		{
			name: "exception 2",
			misdo: func(_ *flakyDevice, c net.Conn, req modbustest.Request) error {
				return write(c, req.Exception(2))
			},
			reasons: `^exception: 2 \(illegal data address\)$`,
			first:   "exception: 2 (illegal data address)",
		},
		{
			name: "exception 4",
			misdo: func(_ *flakyDevice, c net.Conn, req modbustest.Request) error {
				return write(c, req.Exception(4))
			},
			reasons: `^exception: 4 \(server device failure\)$`,
			first:   "exception: 4 (server device failure)",
		},
		{
			// A connection limit: every third request on a connection
			// finds it closed. A read is retried once on a new connection,
			// so this costs nothing.
			name: "closes the socket after 2 requests, repeatedly",
			misdo: func(d *flakyDevice, c net.Conn, req modbustest.Request) error {
				if d.requestsOn(c) > 2 {
					return modbustest.ErrClose
				}
				return write(c, goodAnswer(req))
			},
			minBad:   1500 * time.Millisecond,
			minConns: 6,
		},
		{
			name:    "restarts",
			begin:   func(d *flakyDevice) { d.stop() },
			end:     func(d *flakyDevice) { d.restart() },
			minBad:  2 * time.Second,
			reasons: `^(device down: )?(connection refused|connection error: (closed|reset) by device during (send|receive))$`,
			first:   "connection refused",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runBadDevice(t, tc)
		})
	}
}

// badCase is one way for a device to misbehave and what the platform must
// see of it.
type badCase struct {
	name       string
	misdo      func(d *flakyDevice, c net.Conn, req modbustest.Request) error // answers while bad
	begin, end func(d *flakyDevice)                                           // instead of setting the device bad and good again
	minBad     time.Duration                                                  // misbehave at least this long
	reasons    string                                                         // every bad sample's and fault's reason matches this; "" = no bad sample allowed
	first      string                                                         // the reason of the first failed poll, which must be seen as is
	minConns   int64                                                          // new connections the device must have seen by the end
	afterBurst bool                                                           // stale replies must all have been delivered by the end
}

func runBadDevice(t *testing.T, tc badCase) {
	misdo, begin, end, minBad, reasons, first := tc.misdo, tc.begin, tc.end, tc.minBad, tc.reasons, tc.first
	noFaults := reasons == "" // the misbehaviour must not cost a single sample
	healthy := modbustest.NewServer(t)
	healthy.SetHolding(0, healthyValue)
	flaky := newFlakyDevice(t, misdo)
	b := testkit.StartBroker(t)

	var tagLines strings.Builder
	for _, name := range slices.Sorted(maps.Keys(flakyTags)) {
		fmt.Fprintf(&tagLines, "      - {name: %s, kind: count, area: holding, address: %d}\n", name, flakyTags[name])
	}
	yaml := fmt.Sprintf(`gateway: {id: bad-gw, enterprise_code: TEST01, data_dir: %q}
uplink: {brokers: [%q]}
devices:
  - name: healthy
    protocol: modbus-tcp
    address: %s
    interval: %s
    timeout: %s
    tags:
      - {name: %s, kind: count, area: holding, address: 0}
  - name: flaky
    protocol: modbus-tcp
    address: %s
    interval: 100ms
    timeout: %s
    comm_loss_after: 600ms
    backoff_max: 300ms
    tags:
%s`, t.TempDir(), b.URL(), healthy.Addr, healthyInterval, healthyTimeout, healthyTag, flaky.addr, flakyTimeout, tagLines.String())
	cfg := loadConfig(t, []byte(yaml))

	view := &platformView{samples: map[string][]seenSample{}}
	if err := b.Subscribe("hazgate/bad-gw/#", view.handle); err != nil {
		t.Fatal(err)
	}
	_, stop := runGateway(t, cfg)

	locked := func(f func() bool) func() bool {
		return func() bool { view.mu.Lock(); defer view.mu.Unlock(); return f() }
	}
	allFlaky := func(f func(tag string) bool) bool {
		for tag := range flakyTags {
			if !f(tag) {
				return false
			}
		}
		return true
	}
	// wait is waitFor without stopping the test: when the device's tags do
	// not do what they should, what the platform received is still checked
	// below, which says more than a timeout.
	wait := func(what string, cond func() bool) bool {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Errorf("timed out after 10s waiting for %s", what)
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
		return true
	}
	start := time.Now()
	waitFor(t, 10*time.Second, "good samples of both devices", locked(func() bool {
		return view.goodSince(healthyTag, start) && allFlaky(func(tag string) bool { return view.goodSince(tag, start) })
	}))

	// Misbehave.
	badAt := time.Now()
	conns0 := flaky.connections()
	if begin != nil {
		begin(flaky)
	} else {
		flaky.bad.Store(true)
	}
	ok := true
	if noFaults {
		time.Sleep(minBad) // the length of the misbehaviour, not a synchronisation
	} else {
		ok = wait("bad samples with reason "+first+" and a fault for every tag of the bad device", locked(func() bool {
			return allFlaky(func(tag string) bool {
				if view.count("fault_raised", tag) == 0 {
					return false
				}
				for _, s := range view.samples[tag] {
					if s.Reason == first {
						return true
					}
				}
				return false
			})
		}))
		if rest := minBad - time.Since(badAt); ok && rest > 0 {
			time.Sleep(rest) // the length of the misbehaviour, not a synchronisation
		}
	}

	// Behave again.
	goodAt := time.Now()
	if end != nil {
		end(flaky)
	} else {
		flaky.bad.Store(false)
	}
	ok = ok && wait("the bad device's tags good again, faults cleared", locked(func() bool {
		return allFlaky(func(tag string) bool {
			ss := view.samples[tag]
			return view.goodSince(tag, goodAt) && ss[len(ss)-1].Quality == "good" &&
				view.count("fault_cleared", tag) == view.count("fault_raised", tag)
		})
	}))
	recovered := time.Now()
	if ok {
		time.Sleep(500 * time.Millisecond) // observe the recovered device for a while
	}
	stop()

	view.mu.Lock()
	defer view.mu.Unlock()
	if tc.minConns > 0 {
		if n := flaky.connections() - conns0; n < tc.minConns {
			t.Errorf("the device saw %d new connections while misbehaving, want at least %d", n, tc.minConns)
		}
	}
	if tc.afterBurst {
		flaky.mu.Lock()
		if len(flaky.stale) > 0 {
			t.Errorf("%d stale replies were never sent", len(flaky.stale))
		}
		flaky.mu.Unlock()
	}

	// (b) the healthy device: good values at its interval, no fault.
	hs := view.samples[healthyTag]
	var times []time.Time
	for _, s := range hs {
		if s.Quality != "good" || s.Value == nil || *s.Value != healthyValue {
			t.Errorf("healthy device: sample at %s is %s %q value %s", s.Time.Format("15:04:05.000"), s.Quality, s.Reason, valueText(s.Value))
			continue
		}
		times = append(times, s.Time)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var maxGap time.Duration
	var gapAt time.Time
	for i := 1; i < len(times); i++ {
		if g := times[i].Sub(times[i-1]); g > maxGap {
			maxGap, gapAt = g, times[i-1]
		}
	}
	if limit := 4 * healthyInterval; maxGap > limit {
		t.Errorf("healthy device: %s without a good sample after %s (limit %s)", maxGap, gapAt.Format("15:04:05.000"), limit)
	}
	if len(times) < int(time.Since(start)/healthyInterval)/2 {
		t.Errorf("healthy device: only %d good samples in %s", len(times), time.Since(start).Round(time.Millisecond))
	}
	if n := view.count("fault_raised", healthyTag); n > 0 {
		t.Errorf("healthy device: %d fault events", n)
	}

	// (a), (c), (d) the misbehaving device.
	reasonRE := regexp.MustCompile(reasons)
	seen := map[string]int{}
	for tag, reg := range flakyTags {
		wrong := 0 // samples of tag reported wrong; the first few are shown
		errorf := func(format string, args ...any) {
			if wrong++; wrong <= 3 {
				t.Errorf(format, args...)
			}
		}
		for _, s := range view.samples[tag] {
			at := s.Time.Format("15:04:05.000")
			switch {
			case s.Quality == "good":
				if s.Value == nil || *s.Value != float64(flakyValue(reg)) {
					errorf("%s at %s: value %s, but register %d holds %d: an answer was taken for another request", tag, at, valueText(s.Value), reg, flakyValue(reg))
				}
			case s.Time.Before(badAt):
				errorf("%s at %s: %s %q before the device misbehaved", tag, at, s.Quality, s.Reason)
			case s.Time.After(recovered):
				errorf("%s at %s: %s %q after the device had recovered", tag, at, s.Quality, s.Reason)
			case reasons == "":
				errorf("%s at %s: %s %q: the misbehaviour should have cost no sample", tag, at, s.Quality, s.Reason)
			case !reasonRE.MatchString(s.Reason):
				errorf("%s at %s: %s with reason %q, want %s", tag, at, s.Quality, s.Reason, reasonRE)
			default:
				seen[s.Reason]++
			}
		}
		if wrong > 3 {
			t.Errorf("%s: %d wrong samples in all", tag, wrong)
		}
	}
	for _, e := range view.events {
		switch {
		case e.Kind == "fault_raised" && reasons == "":
			t.Errorf("fault_raised for %s (%s): the misbehaviour should have cost nothing", e.Tag, e.Reason)
		case e.Kind == "fault_raised" && !reasonRE.MatchString(e.Reason):
			t.Errorf("fault_raised for %s with reason %q, want %s", e.Tag, e.Reason, reasonRE)
		}
	}
	t.Logf("bad device: reasons %v; faults raised %d, cleared %d; recovered %s after behaving again; healthy device: %d good samples, longest gap %s",
		seen, view.count("fault_raised", ""), view.count("fault_cleared", ""), recovered.Sub(goodAt).Round(time.Millisecond), len(times), maxGap.Round(time.Millisecond))
}

func valueText(v *float64) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprint(*v)
}
