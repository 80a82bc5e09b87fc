package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"

	"hazgate/internal/broker"
)

// collector is the platform side of a test: it records every sequence
// number the broker acknowledged, per stream, to prove that none is missing.
type collector struct {
	mu     sync.Mutex
	seen   map[string]map[uint64]int // stream -> seq -> times seen
	kinds  map[string]int            // event kind -> count
	status []string                  // status states in arrival order
	order  map[string][]uint64       // stream -> seqs in arrival order
}

func newCollector() *collector {
	return &collector{
		seen:  map[string]map[uint64]int{"data": {}, "event": {}},
		kinds: map[string]int{},
		order: map[string][]uint64{},
	}
}

// attach subscribes the collector inside b, which may be a broker that
// replaced an earlier one on the same address.
func (c *collector) attach(t *testing.T, b *broker.Broker) {
	t.Helper()
	for _, f := range []string{"hazgate/+/data", "hazgate/+/event", "hazgate/+/status"} {
		if err := b.Subscribe(f, c.handle(t)); err != nil {
			t.Fatalf("subscribe %s: %v", f, err)
		}
	}
}

func (c *collector) handle(t *testing.T) func(broker.Message) {
	return func(m broker.Message) {
		var p struct {
			Stream   string `json:"stream"`
			Seq      uint64 `json:"seq"`
			SeqFirst uint64 `json:"seq_first"`
			SeqLast  uint64 `json:"seq_last"`
			Kind     string `json:"kind"`
			State    string `json:"state"`
			Samples  []struct {
				Seq uint64 `json:"seq"`
			} `json:"samples"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Errorf("%s: payload is not JSON: %v: %s", m.Topic, err, m.Payload)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch p.Stream {
		case "data":
			if len(p.Samples) != int(p.SeqLast-p.SeqFirst+1) && p.SeqLast >= p.SeqFirst {
				// A batch may skip seqs only where the buffer dropped
				// records; these tests never fill the buffer.
				t.Errorf("data message %d..%d carries %d samples", p.SeqFirst, p.SeqLast, len(p.Samples))
			}
			for _, s := range p.Samples {
				c.seen["data"][s.Seq]++
				c.order["data"] = append(c.order["data"], s.Seq)
			}
		case "event":
			c.seen["event"][p.Seq]++
			c.order["event"] = append(c.order["event"], p.Seq)
			c.kinds[p.Kind]++
		default:
			if p.State != "" {
				c.status = append(c.status, p.State)
			}
		}
	}
}

// max is the highest seq seen on stream.
func (c *collector) max(stream string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m uint64
	for s := range c.seen[stream] {
		m = max(m, s)
	}
	return m
}

func (c *collector) kindCount(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kinds[kind]
}

// missing lists the seqs between 1 and the highest seen that never arrived.
func (c *collector) missing(stream string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var top uint64
	for s := range c.seen[stream] {
		top = max(top, s)
	}
	var out []uint64
	for s := uint64(1); s <= top; s++ {
		if c.seen[stream][s] == 0 {
			out = append(out, s)
		}
	}
	return out
}

// duplicates counts seqs that arrived more than once (allowed: delivery is
// at least once).
func (c *collector) duplicates(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.seen[stream] {
		if k > 1 {
			n += k - 1
		}
	}
	return n
}

// outOfOrder reports the first place where a seq arrived after a higher one
// without that being a resend: on one connection the order must hold, and
// after a reconnect the gateway starts again from its oldest unacknowledged
// record, which is a restart of the order, not a reordering.
func (c *collector) outOfOrder(stream string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq := c.order[stream]
	delivered := map[uint64]bool{}
	for i, s := range seq {
		if i > 0 && s < seq[i-1] && !delivered[s] {
			// a lower seq that was never seen before arrived after a higher one
			return fmt.Errorf("%s seq %d arrived for the first time after %d", stream, s, seq[i-1])
		}
		delivered[s] = true
	}
	return nil
}

func summarize(s []uint64) string {
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) > 10 {
		return fmt.Sprintf("%v ... (%d in all)", s[:10], len(s))
	}
	return fmt.Sprint(s)
}
