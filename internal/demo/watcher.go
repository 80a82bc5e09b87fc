package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/model"
	"hazgate/uplink"
)

// watcher reads every message as it arrives at the broker and prints it
// the way a dispatcher reads an alarm list: one line per event and per
// status change, and a periodic summary of the telemetry. The payloads are
// parsed with the uplink contract's own types (docs/uplink.md).
type watcher struct {
	now  func() time.Time
	tags map[string]config.Tag
	// order is the config's tag order, for the values line.
	order []string

	mu       sync.Mutex // the broker calls handle from its goroutines
	out      io.Writer
	messages uint64 // data messages
	samples  uint64
	bad      uint64 // samples with bad quality
	badWhy   map[string]uint64
	data     seqTrack
	events   seqTrack
	active   map[activeKey]bool
	latest   map[string]uplink.SampleItem
	state    string // last status state printed
	closed   bool   // close was called: out belongs to the caller again
}

type activeKey struct{ tag, level string }

func newWatcher(out io.Writer, cfg *config.Config, now func() time.Time) *watcher {
	w := &watcher{
		now: now, out: out,
		tags:   make(map[string]config.Tag),
		active: make(map[activeKey]bool),
		latest: make(map[string]uplink.SampleItem),
		badWhy: make(map[string]uint64),
	}
	for _, d := range cfg.Devices {
		for _, t := range d.Tags {
			w.tags[t.Name] = t
			w.order = append(w.order, t.Name)
		}
	}
	return w
}

// handle takes one message from the broker.
func (w *watcher) handle(m broker.Message) {
	at := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		// The broker outlives the demo's output by a deferred close: a
		// late status (the offline message, a last will) must not write
		// to a writer the caller already reads.
		return
	}
	switch {
	case strings.HasSuffix(m.Topic, "/event"):
		var ev uplink.EventMessage
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			w.printf(at, "?????  unreadable event on %s: %v", m.Topic, err)
			return
		}
		w.events.add(ev.Seq, ev.Seq)
		w.track(&ev)
		w.printf(at, "%s", w.eventLine(&ev))
	case strings.HasSuffix(m.Topic, "/data"):
		var d uplink.DataMessage
		if err := json.Unmarshal(m.Payload, &d); err != nil {
			w.printf(at, "?????  unreadable data on %s: %v", m.Topic, err)
			return
		}
		w.messages++
		w.samples += uint64(len(d.Samples))
		w.data.add(d.SeqFirst, d.SeqLast)
		for _, s := range d.Samples {
			if s.Quality == model.Bad.String() {
				w.bad++
				// "sensor fault: signal below range (raw 2500.000)"
				// counts as "sensor fault".
				why, _, _ := strings.Cut(s.Reason, ":")
				w.badWhy[why]++
			}
			w.latest[s.Tag] = s
		}
	case strings.HasSuffix(m.Topic, "/status"):
		var s uplink.StatusMessage
		if err := json.Unmarshal(m.Payload, &s); err != nil {
			w.printf(at, "?????  unreadable status on %s: %v", m.Topic, err)
			return
		}
		// Heartbeats repeat the state; only a change is news.
		if s.State == w.state {
			return
		}
		w.state = s.State
		w.printf(at, "%s", statusLine(&s))
	}
}

// track keeps the set of active alarms and faults.
func (w *watcher) track(ev *uplink.EventMessage) {
	switch model.EventKind(ev.Kind) {
	case model.AlarmRaised:
		w.active[activeKey{ev.Tag, ev.Level}] = true
	case model.AlarmCleared:
		delete(w.active, activeKey{ev.Tag, ev.Level})
	case model.FaultRaised:
		w.active[activeKey{ev.Tag, "fault"}] = true
	case model.FaultCleared:
		delete(w.active, activeKey{ev.Tag, "fault"})
	}
}

func (w *watcher) printf(at time.Time, format string, args ...any) {
	fmt.Fprintf(w.out, "%s  "+format+"\n", append([]any{at.Format("15:04:05.000")}, args...)...)
}

// eventLine renders one event as "KIND  LEVEL  SUBJECT  text  [seq N]".
func (w *watcher) eventLine(ev *uplink.EventMessage) string {
	kind, level, subject, text := strings.ToUpper(ev.Kind), "", ev.Tag, ev.Message
	english, local := splitDescription(ev.Description)
	if english == "" {
		english = ev.Tag
	}
	unit := ev.Unit
	gas := w.tags[ev.Tag].Kind == config.KindGas
	switch model.EventKind(ev.Kind) {
	case model.AlarmRaised, model.AlarmCleared:
		level = strings.ToUpper(ev.Level)
		if ev.Value == nil || ev.Limit == nil {
			break // keep the gateway's own message
		}
		low := ev.Level == model.LevelL || ev.Level == model.LevelLL
		raised := ev.Kind == string(model.AlarmRaised)
		switch {
		case w.digital(ev.Tag):
			// A switch alarms when on (h: 1) or off (l: 0): "1 >= 1" says
			// nothing, its state does.
			state := "off"
			if *ev.Value >= 0.5 {
				state = "on"
			}
			kind, text = "ALARM", english+" "+state
			if !raised {
				kind, text = "CLEAR", text+" again"
			}
		case raised:
			kind = "ALARM"
			op := ">="
			if low {
				op = "<="
			}
			text = fmt.Sprintf("%s %s %s %s", english, quantity(*ev.Value, unit), op, quantity(*ev.Limit, unit))
		default:
			kind = "CLEAR"
			dir := "below"
			if low {
				dir = "above"
			}
			text = fmt.Sprintf("%s %s, back %s %s", english, quantity(*ev.Value, unit), dir, quantity(*ev.Limit, unit))
		}
		if gas {
			// GB/T 50493 names the two levels; say which one this is.
			switch {
			case ev.Level == model.LevelH && raised:
				text += ", first gas alarm (一级报警)"
			case ev.Level == model.LevelHH && raised:
				text += ", second gas alarm (二级报警)"
			case ev.Level == model.LevelH:
				text += ", first gas alarm over (一级报警解除)"
			case ev.Level == model.LevelHH:
				text += ", second gas alarm over (二级报警解除)"
			}
		}
		if local != "" {
			text += "  (" + local + ")"
		}
	case model.FaultRaised:
		kind = "FAULT"
		text = fmt.Sprintf("%s: %s", english, ev.Reason)
		if local != "" {
			text += "  (" + local + ")"
		}
	case model.FaultCleared:
		kind, level = "CLEAR", "FAULT"
		text = english + " good again"
		if ev.Value != nil {
			text += ": " + quantity(*ev.Value, unit)
		}
		if ev.Reason != "" {
			text += ", after " + ev.Reason
		}
	case model.CommLost:
		kind, level, subject = "COMM", "LOST", ev.Device
	case model.CommRestored:
		kind, level, subject = "COMM", "OK", ev.Device
	case model.Gap:
		kind = "GAP"
		if g := ev.Gap; g != nil {
			subject = g.Stream
			text = fmt.Sprintf("%d %s records dropped (seq %d..%d, %s .. %s): %s", g.Count, g.Stream, g.FirstSeq, g.LastSeq, g.From, g.To, g.Cause)
		}
	case model.GatewayStarted:
		kind, subject = "START", ev.Gateway
	case model.GatewayStopped:
		kind, subject = "STOP", ev.Gateway
	}
	return fmt.Sprintf("%-5s  %-5s  %-8s  %s   [seq %d]", kind, level, subject, text, ev.Seq)
}

// digital says whether a tag is a switch or valve state (0/1).
func (w *watcher) digital(tag string) bool {
	t, ok := w.tags[tag]
	return ok && (t.Kind == config.KindDigital || t.Type == config.TypeBool || t.Type == config.TypeBit)
}

func statusLine(s *uplink.StatusMessage) string {
	text := fmt.Sprintf("version %s", s.Version)
	if s.Broker != "" {
		text += ", broker " + s.Broker
	}
	if s.Reason != "" {
		text = s.Reason
	}
	return fmt.Sprintf("%-5s  %-5s  %-8s  %s", "STATE", strings.ToUpper(s.State), s.Gateway, text)
}

// summary prints what arrived since the start.
func (w *watcher) summary() {
	at := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "summary: %d samples in %d messages", w.samples, w.messages)
	if w.bad > 0 {
		fmt.Fprintf(&b, " (%d bad: %s)", w.bad, countsByName(w.badWhy))
	}
	fmt.Fprintf(&b, ", data seq %s, events %d (seq %s)", w.data.span(), w.events.count, w.events.span())
	for _, p := range []struct {
		name string
		t    *seqTrack
	}{{"data", &w.data}, {"event", &w.events}} {
		if p.t.missing > 0 || p.t.repeated > 0 {
			fmt.Fprintf(&b, ", %s seq missing %d, repeated %d", p.name, p.t.missing, p.t.repeated)
		}
	}
	keys := make([]activeKey, 0, len(w.active))
	for k := range w.active {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].tag != keys[j].tag {
			return keys[i].tag < keys[j].tag
		}
		return keys[i].level < keys[j].level
	})
	b.WriteString(", active: ")
	if len(keys) == 0 {
		b.WriteString("none")
	}
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.tag + " " + k.level)
	}
	w.printf(at, "%s", b.String())

	if len(w.latest) == 0 {
		return
	}
	b.Reset()
	b.WriteString("latest:")
	for _, tag := range w.order {
		s, ok := w.latest[tag]
		if !ok {
			continue
		}
		b.WriteString("  " + tag + " ")
		switch {
		case s.Value == nil:
			b.WriteString(s.Quality)
		case w.digital(tag):
			b.WriteString(strconv.FormatFloat(*s.Value, 'f', -1, 64))
		default:
			b.WriteString(quantity(*s.Value, s.Unit))
		}
	}
	w.printf(at, "%s", b.String())
}

// countsByName renders {"timeout": 3, "sensor fault": 30} as
// "30 sensor fault, 3 timeout", largest first.
func countsByName(m map[string]uint64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		if n == "" {
			n = "no reason given"
		}
		parts[i] = fmt.Sprintf("%d %s", m[n], n)
	}
	return strings.Join(parts, ", ")
}

// seqTrack follows one stream's sequence numbers: the platform's view of
// at-least-once delivery (repeats are fine, holes are not).
type seqTrack struct {
	seen        bool
	first, last uint64
	count       uint64 // records received, repeats included
	missing     uint64 // sequence numbers skipped
	repeated    uint64 // records received again
}

func (s *seqTrack) add(first, last uint64) {
	if last < first {
		return
	}
	s.count += last - first + 1
	if !s.seen {
		s.seen, s.first, s.last = true, first, last
		return
	}
	switch {
	case first > s.last+1:
		s.missing += first - s.last - 1
	case first <= s.last:
		s.repeated += min(last, s.last) - first + 1
	}
	s.first = min(s.first, first)
	s.last = max(s.last, last)
}

func (s *seqTrack) span() string {
	if !s.seen {
		return "none"
	}
	return fmt.Sprintf("%d..%d", s.first, s.last)
}

// splitDescription splits "T-101 level / T-101 储罐液位" into its English and
// local halves.
func splitDescription(d string) (english, local string) {
	english, local, _ = strings.Cut(d, " / ")
	return strings.TrimSpace(english), strings.TrimSpace(local)
}

// quantity formats a value with at most two decimals and its unit.
func quantity(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// close prints line (if any) as the watcher's last and stops it writing
// to out.
func (w *watcher) close(line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if line != "" {
		fmt.Fprintln(w.out, line)
	}
	w.closed = true
}

// waitOffline waits up to timeout for the gateway's offline status to be
// printed: the gateway publishes it just before it stops, and the broker
// hands it to the watcher on a goroutine of its own, so it may still be on
// its way when the gateway's Run returns.
func (w *watcher) waitOffline(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		offline := w.state == uplink.StateOffline
		w.mu.Unlock()
		if offline || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
