package uplink

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"hazgate/internal/model"
)

// forgetful acknowledges every publish and delivers none: a broker that
// dies between its PUBACK and the delivery, made deterministic.
type forgetful struct{ mochi.HookBase }

func (*forgetful) ID() string           { return "forgetful" }
func (*forgetful) Provides(b byte) bool { return b == mochi.OnPublish }
func (*forgetful) OnPublish(_ *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, packets.CodeSuccessIgnore
}

// startForgetfulBroker returns the broker's URL and a function that kills it.
func startForgetfulBroker(t *testing.T) (string, func()) {
	t.Helper()
	addr, kill := startMochi(t, "forgetful", nil, mochiHook{hook: new(auth.AllowHook)}, mochiHook{hook: new(forgetful)})
	return "tcp://" + addr, kill
}

// TestAcknowledgedThenLost: a broker acknowledges data and an alarm, and
// dies before delivering them. The gateway has deleted those records from
// its buffer, yet the platform gets them: the next connection carries the
// last acknowledged messages again, data marked as replayed. What comes
// after is sent once, unmarked.
func TestAcknowledgedThenLost(t *testing.T) {
	good := startBroker(t, "127.0.0.1:0")
	col := newCollector()
	col.subscribe(t, good)
	lossy, kill := startForgetfulBroker(t)
	src := newMemSource()
	u, _ := runUplink(t, Options{Config: testConfig(lossy, good.URL())}, src)
	eventually(t, 10*time.Second, "connected to the forgetful broker", u.Connected)

	src.addData(30)
	src.addEvent(alarm("LT-101", 18.7, 18.5))
	eventually(t, 10*time.Second, "all acknowledged", func() bool {
		return src.unacked(model.StreamData) == 0 && src.unacked(model.StreamEvent) == 0
	})
	if n := col.nSeen(model.StreamData) + col.nSeen(model.StreamEvent); n != 0 {
		t.Fatalf("the forgetful broker delivered %d records; the test proves nothing", n)
	}
	kill()
	eventually(t, 15*time.Second, "the lost records through the second broker", func() bool {
		return col.nSeen(model.StreamData) == 30 && col.nSeen(model.StreamEvent) == 1
	})
	src.addData(10)
	eventually(t, 10*time.Second, "fresh data", func() bool { return col.nSeen(model.StreamData) == 40 })
	checkNoGaps(t, col, model.StreamData, 40)
	if got := u.Stats().ResentRecords; got != 31 {
		t.Errorf("ResentRecords = %d, want 31", got)
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	for _, d := range col.dataMsgs {
		if fresh := d.SeqFirst > 30; d.Replay == fresh {
			t.Errorf("data %d..%d: replay=%v, want %v", d.SeqFirst, d.SeqLast, d.Replay, !fresh)
		}
	}
	if n := len(col.order[model.StreamData]); n != 40 {
		t.Errorf("%d data records delivered, want 40: the fresh ones once", n)
	}
}

// TestRecentAcksWindow: the resend tail keeps what was acknowledged within
// recentWindow of the newest acknowledgement, at most max messages and
// recentMaxRecords records (the newest message always), and gives back
// what was acknowledged since a time, in sequence order.
func TestRecentAcksWindow(t *testing.T) {
	msg := func(seq uint64) []model.Record { return []model.Record{{Seq: seq}} }
	r := recentAcks{max: 3}
	t0 := time.Now()
	var all time.Time
	r.add(t0, msg(1))
	r.add(t0.Add(time.Second), msg(3))
	r.add(t0.Add(time.Second), msg(2)) // PUBACKs out of order
	if got := firstSeqs(r.tail(all)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("tail %v, want [1 2 3]", got)
	}
	if got := firstSeqs(r.tail(t0.Add(time.Second))); !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("tail since t0+1s %v, want [2 3]", got)
	}
	r.add(t0.Add(1500*time.Millisecond), msg(4)) // over max: 1 goes
	if got := firstSeqs(r.tail(all)); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Errorf("tail %v, want [2 3 4]", got)
	}
	r.add(t0.Add(time.Second+recentWindow+time.Millisecond), msg(5)) // 2 and 3 too old
	if got := firstSeqs(r.tail(all)); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("tail %v, want [4 5]", got)
	}

	big := func(first uint64, n int) []model.Record {
		recs := make([]model.Record, n)
		for i := range recs {
			recs[i].Seq = first + uint64(i)
		}
		return recs
	}
	r = recentAcks{max: 100}
	r.add(t0, big(1, recentMaxRecords/2+1))
	r.add(t0, big(50000, recentMaxRecords/2+1)) // together over the cap
	if got := firstSeqs(r.tail(all)); !slices.Equal(got, []uint64{50000}) || r.records != recentMaxRecords/2+1 {
		t.Errorf("tail %v holding %d records, want only the newest message", got, r.records)
	}
	r.add(t0, big(90000, recentMaxRecords+1)) // alone over the cap: still kept
	if got := firstSeqs(r.tail(all)); !slices.Equal(got, []uint64{90000}) {
		t.Errorf("tail %v, want the newest message even when it is over the cap", got)
	}
}

// publishLog is an MQTT client that only records what is published and
// completes every publish at once.
type publishLog struct {
	mqtt.Client // nil: only Publish is called
	mu          sync.Mutex
	data        []DataMessage
}

func (p *publishLog) Publish(topic string, _ byte, _ bool, payload any) mqtt.Token {
	if strings.HasSuffix(topic, "/data") {
		var d DataMessage
		if b, err := DecodePayload(payload.([]byte)); err == nil && json.Unmarshal(b, &d) == nil {
			p.mu.Lock()
			p.data = append(p.data, d)
			p.mu.Unlock()
		}
	}
	return &mqtt.DummyToken{}
}

// TestResendKeepsOrder: PUBACKs came out of order before the loss, so the
// tail holds 11..20 (at or below the resume point, 20) and 31..40 (above
// it: 21..30 were never acknowledged and are still in the buffer). On the
// next connection the messages leave in ascending order: 11..20 again,
// 21..30 for the first time, then 31..40 again.
func TestResendKeepsOrder(t *testing.T) {
	src := newMemSource()
	src.addData(40)
	src.Ack(model.StreamData, 1, 20)
	src.Ack(model.StreamData, 31, 40)
	u, err := New(Options{Config: testConfig("tcp://127.0.0.1:1")}, src)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := src.Read(model.StreamData, 0, 100) // 21..30: what is left
	if len(all) != 10 {
		t.Fatalf("%d records left in the source, want 10", len(all))
	}
	tenFrom := func(first uint64) []model.Record {
		recs := make([]model.Record, 10)
		for i := range recs {
			recs[i] = model.Record{Stream: model.StreamData, Seq: first + uint64(i), Sample: all[0].Sample}
		}
		return recs
	}
	now := time.Now()
	u.recent[model.StreamData].add(now, tenFrom(31)) // out of order
	u.recent[model.StreamData].add(now, tenFrom(11))
	u.lastAck, u.resendDue = now, true
	acked := [len(model.Streams)]uint64{model.StreamData: 20}

	log := &publishLog{}
	s := &session{u: u, c: &conn{client: log}, acked: &acked, next: acked,
		completions: make(chan *flight, u.inflight), stop: make(chan struct{})}
	defer func() { close(s.stop); s.waiters.Wait() }()
	s.resendRecent()
	if err := s.fill(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range log.data {
		got = append(got, fmt.Sprintf("%d..%d replay=%v", d.SeqFirst, d.SeqLast, d.Replay))
	}
	want := []string{"11..20 replay=true", "21..30 replay=false", "31..40 replay=true"}
	if !slices.Equal(got, want) {
		t.Errorf("published %q, want %q", got, want)
	}
	if n := u.Stats().ResentRecords; n != 20 {
		t.Errorf("ResentRecords = %d, want 20", n)
	}
}

func firstSeqs(msgs [][]model.Record) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m[0].Seq)
	}
	return out
}
