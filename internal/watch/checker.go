// Package watch is the platform side of the uplink contract, as a tool: it
// checks every message of one or more gateways against the JSON Schemas
// (docs/schema), follows the sequence numbers of each stream as
// docs/uplink.md §4.2 tells a platform to, and prints what a dispatcher
// wants to see: readings, alarms, gaps, duplicates, gateway health.
//
// Checker holds the logic and needs no broker; Run feeds it from MQTT.
package watch

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"hazgate/docs/schema"
	"hazgate/uplink"
)

// Checker follows the messages of any number of gateways. Safe for
// concurrent use.
type Checker struct {
	schemas *schema.Set
	out     io.Writer
	samples bool // print one line per sample

	mu      sync.Mutex
	streams map[streamKey]*seqTrack
	report  Report
}

type streamKey struct{ gateway, stream string }

// Report counts what the Checker saw.
type Report struct {
	Messages   uint64 // every message received
	Invalid    uint64 // payloads that failed the schema (or the topic tree)
	Samples    uint64 // distinct samples (duplicates not counted)
	Events     uint64 // distinct events
	Alarms     uint64 // distinct alarm_raised events
	Duplicates uint64 // samples and events received more than once
	Statuses   uint64
	Replies    uint64
	// Missing are sequence numbers never received that no gap event
	// explains, per "gateway/stream"; filled by Finish.
	Missing map[string][]Range
	// KnownGaps are ranges the gateways reported dropping, per
	// "gateway/stream".
	KnownGaps map[string][]Range
	// SilentLoss are ranges a gateway's status says the broker
	// acknowledged during the watch that never arrived here, per
	// "gateway/stream"; filled by Finish.
	SilentLoss map[string]Range
}

// Range is an inclusive range of sequence numbers.
type Range struct{ First, Last uint64 }

func (r Range) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d..%d", r.First, r.Last)
}

// OK reports whether nothing is wrong: every payload valid and no
// unexplained gap.
func (r Report) OK() bool {
	return r.Invalid == 0 && len(r.Missing) == 0 && len(r.SilentLoss) == 0
}

// NewChecker prints to out (nil discards); with samples it prints every
// reading, otherwise one line per data message.
func NewChecker(out io.Writer, samples bool) (*Checker, error) {
	s, err := schema.Load()
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = io.Discard
	}
	return &Checker{
		schemas: s, out: out, samples: samples,
		streams: make(map[streamKey]*seqTrack),
		report:  Report{KnownGaps: map[string][]Range{}},
	}, nil
}

// Handle takes one message as received from the broker.
func (c *Checker) Handle(topic string, payload []byte, retained bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report.Messages++
	kind := schema.KindOfTopic(topic)
	if kind == "" {
		c.report.Invalid++
		c.printf("INVALID  %s: topic is not part of the contract\n", topic)
		return
	}
	if kind == schema.Command {
		// Another client commanding the gateway: shown, not judged; the
		// gateway's reply says whether it was valid.
		c.printf("COMMAND  %s\n", topic)
		return
	}
	payload, err := uplink.DecodePayload(payload)
	if err != nil {
		c.report.Invalid++
		c.printf("INVALID  %s: compressed payload: %v\n", topic, err)
		return
	}
	if err := c.schemas.Validate(kind, payload); err != nil {
		c.report.Invalid++
		c.printf("INVALID  %s: %s\n         payload: %.300s\n", topic, oneLine(err.Error()), payload)
		return
	}
	switch kind {
	case schema.Data:
		var m uplink.DataMessage
		if c.decode(topic, payload, &m) {
			c.data(&m)
		}
	case schema.Event:
		var m uplink.EventMessage
		if c.decode(topic, payload, &m) {
			c.event(&m)
		}
	case schema.Status:
		var m uplink.StatusMessage
		if c.decode(topic, payload, &m) {
			c.status(&m, retained)
		}
	case schema.Reply:
		c.report.Replies++
		c.printf("REPLY    %s %s\n", topic, payload)
	}
}

func (c *Checker) decode(topic string, payload []byte, v any) bool {
	if err := json.Unmarshal(payload, v); err != nil {
		c.report.Invalid++
		c.printf("INVALID  %s: %v\n", topic, err)
		return false
	}
	return true
}

func (c *Checker) track(gateway, stream string) *seqTrack {
	k := streamKey{gateway, stream}
	t := c.streams[k]
	if t == nil {
		t = newSeqTrack()
		c.streams[k] = t
	}
	return t
}

func (c *Checker) data(m *uplink.DataMessage) {
	t := c.track(m.Gateway, "data")
	var fresh, dup, bad int
	for i := range m.Samples {
		s := &m.Samples[i]
		if !t.add(s.Seq) {
			dup++
			continue
		}
		fresh++
		if s.Quality == "bad" {
			bad++
		}
		if c.samples {
			c.printf("READING  %s #%d %s %s %s\n", m.Gateway, s.Seq, s.Time, s.Tag, reading(s))
		}
	}
	c.report.Samples += uint64(fresh)
	c.report.Duplicates += uint64(dup)
	if dup > 0 {
		c.printf("DUPLICATE %s data: %d of %d samples in %d..%d already received (resent after a reconnection)\n", m.Gateway, dup, len(m.Samples), m.SeqFirst, m.SeqLast)
	}
	if !c.samples && fresh > 0 {
		replay := ""
		if m.Replay {
			replay = " (replayed backlog)"
		}
		c.printf("DATA     %s #%d..%d %d samples, %d bad%s\n", m.Gateway, m.SeqFirst, m.SeqLast, len(m.Samples), bad, replay)
	}
}

func reading(s *uplink.SampleItem) string {
	var b strings.Builder
	if s.Value != nil {
		fmt.Fprintf(&b, "= %g", *s.Value)
		if s.Unit != "" {
			b.WriteString(" " + s.Unit)
		}
		b.WriteString(" ")
	}
	b.WriteString(s.Quality)
	if s.Reason != "" {
		b.WriteString(" (" + s.Reason + ")")
	}
	return b.String()
}

func (c *Checker) event(m *uplink.EventMessage) {
	t := c.track(m.Gateway, "event")
	if !t.add(m.Seq) {
		c.report.Duplicates++
		c.printf("DUPLICATE %s event #%d %s (resent after a reconnection)\n", m.Gateway, m.Seq, m.Kind)
		return
	}
	c.report.Events++
	label := "EVENT   "
	switch m.Kind {
	case "alarm_raised":
		c.report.Alarms++
		label = "ALARM   "
	case "alarm_cleared":
		label = "CLEARED "
	case "gap":
		label = "GAP     "
	}
	c.printf("%s %s #%d %s %s: %s\n", label, m.Gateway, m.Seq, m.Time, m.Kind, m.Message)
	if g := m.Gap; g != nil {
		r := Range{g.FirstSeq, g.LastSeq}
		c.track(m.Gateway, g.Stream).explain(r)
		key := m.Gateway + "/" + g.Stream
		c.report.KnownGaps[key] = append(c.report.KnownGaps[key], r)
		c.printf("         known loss: %s records %s (%d, %s)\n", g.Stream, r, g.Count, g.Cause)
	}
}

func (c *Checker) status(m *uplink.StatusMessage, retained bool) {
	c.report.Statuses++
	var b strings.Builder
	fmt.Fprintf(&b, "STATUS   %s %s", m.Gateway, m.State)
	if m.Reason != "" {
		fmt.Fprintf(&b, " (%s)", m.Reason)
	}
	if retained {
		b.WriteString(" [retained]")
	}
	fmt.Fprintf(&b, " at %s, version %s, up %ds", m.Time, m.Version, m.UptimeS)
	var h uplink.Health
	if len(m.Health) > 0 && json.Unmarshal(m.Health, &h) == nil {
		a := h.Alarms
		if m.State == "online" {
			c.track(m.Gateway, "data").claim(claimedAcked(h.Buffer.DataNextSeq, h.Buffer.DataRecords))
			c.track(m.Gateway, "event").claim(claimedAcked(h.Buffer.EventNextSeq, h.Buffer.EventRecords))
		}
		fmt.Fprintf(&b, ", buffer %d records, %d dropped, alarms %d (red %d orange %d yellow %d blue %d; hh %d h %d l %d ll %d roc %d dev %d fault %d), clock %s",
			h.Buffer.Records, h.Buffer.Dropped, a.Active, a.Red, a.Orange, a.Yellow, a.Blue, a.HH, a.H, a.L, a.LL, a.Rate, a.Dev, a.Fault, h.Clock.State)
		for _, d := range h.Devices {
			fmt.Fprintf(&b, "; %s %s", d.Name, d.State)
			if d.Failures > 0 {
				fmt.Fprintf(&b, " (%d failures: %s)", d.Failures, d.LastError)
			}
		}
	}
	c.printf("%s\n", b.String())
}

// claimedAcked is the highest sequence number a status message says has
// left the buffer: next-1 minus what still waits. Records dropped by the
// limits make it lower than the truth, never higher, so it cannot raise a
// false alarm.
func claimedAcked(next, waiting uint64) uint64 {
	if next == 0 || next-1 < waiting {
		return 0
	}
	return next - 1 - waiting
}

// Counts returns the counters so far (Missing is filled only by Finish).
func (c *Checker) Counts() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report
}

// Finish computes the unexplained gaps, prints a summary and returns the
// report. Call it once, after the last Handle.
func (c *Checker) Finish() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]streamKey, 0, len(c.streams))
	for k := range c.streams {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].gateway+"/"+keys[i].stream < keys[j].gateway+"/"+keys[j].stream
	})
	r := c.report
	r.Missing = map[string][]Range{}
	r.SilentLoss = map[string]Range{}
	for _, k := range keys {
		t := c.streams[k]
		name := k.gateway + "/" + k.stream
		if miss := t.missing(); len(miss) > 0 {
			r.Missing[name] = miss
			c.printf("GAP!     %s: never received and not reported as dropped: %s\n", name, summarize(miss))
		}
		if loss, ok := t.silentLoss(); ok {
			r.SilentLoss[name] = loss
			c.printf("LOST!    %s: the gateway says the broker acknowledged %s, never received here: a broker ACL that drops? (docs/uplink.md §1)\n", name, loss)
		}
		if t.received > 0 {
			c.printf("SUMMARY  %s: %d..%d, %d received, %d duplicates\n", name, t.low, t.high, t.received, t.dups)
		}
	}
	c.printf("SUMMARY  %d messages, %d invalid, %d samples, %d events (%d alarms), %d duplicates, %d unexplained gaps, %d streams with silent loss\n",
		r.Messages, r.Invalid, r.Samples, r.Events, r.Alarms, r.Duplicates, len(r.Missing), len(r.SilentLoss))
	return r
}

func (c *Checker) printf(format string, args ...any) { fmt.Fprintf(c.out, format, args...) }

func summarize(rs []Range) string {
	var parts []string
	for i, r := range rs {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more ranges", len(rs)-10))
			break
		}
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
