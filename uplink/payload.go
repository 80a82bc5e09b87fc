package uplink

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// PayloadVersion is the "v" field of every message. It changes only when a
// field changes meaning or disappears; added fields keep the version.
const PayloadVersion = 1

// The structs below are the wire schema of docs/uplink.md, written as Go so
// that a platform written in Go (and our tests) can decode the messages
// with encoding/json. The gateway itself does not marshal them on the hot
// path: appendData and appendEvent write the same bytes directly, which is
// several times faster and allocation-free per sample. A test proves that
// both produce identical bytes.

// DataMessage is one message on <prefix>/<gateway>/data: consecutive
// samples of the data stream, seq_first..seq_last.
type DataMessage struct {
	V          int          `json:"v"`
	Gateway    string       `json:"gateway"`
	Enterprise string       `json:"enterprise"`
	Stream     string       `json:"stream"` // always "data"
	SeqFirst   uint64       `json:"seq_first"`
	SeqLast    uint64       `json:"seq_last"`
	SentAt     string       `json:"sent_at"`          // when the gateway built the message
	Replay     bool         `json:"replay,omitempty"` // re-sent backlog: a reconnection or a resend command
	Samples    []SampleItem `json:"samples"`
}

// SampleItem is one sample inside a DataMessage.
type SampleItem struct {
	Seq          uint64   `json:"seq"`
	Tag          string   `json:"tag"`
	HazardSource string   `json:"hazard_source,omitempty"`
	Indicator    string   `json:"indicator,omitempty"`
	Kind         string   `json:"kind,omitempty"`
	Unit         string   `json:"unit,omitempty"`
	Value        *float64 `json:"value,omitempty"` // absent when quality is bad
	Quality      string   `json:"quality"`
	Reason       string   `json:"reason,omitempty"`
	Time         string   `json:"time"` // acquisition time
}

// EventMessage is one message on <prefix>/<gateway>/event: exactly one
// record of the event stream.
type EventMessage struct {
	V            int         `json:"v"`
	Gateway      string      `json:"gateway"`
	Enterprise   string      `json:"enterprise"`
	Stream       string      `json:"stream"` // always "event"
	Seq          uint64      `json:"seq"`
	Kind         string      `json:"kind"`
	Time         string      `json:"time"` // when it happened
	Device       string      `json:"device,omitempty"`
	Tag          string      `json:"tag,omitempty"`
	Description  string      `json:"description,omitempty"`
	HazardSource string      `json:"hazard_source,omitempty"`
	Indicator    string      `json:"indicator,omitempty"`
	Level        string      `json:"level,omitempty"`
	Value        *float64    `json:"value,omitempty"`
	Limit        *float64    `json:"limit,omitempty"`
	Unit         string      `json:"unit,omitempty"`
	Reason       string      `json:"reason,omitempty"`
	Message      string      `json:"message"`
	Gap          *GapPayload `json:"gap,omitempty"`

	// Alarm management and interlocks (docs/uplink.md §3.2).
	Colour    string             `json:"colour,omitempty"`
	Priority  int                `json:"priority,omitempty"`
	State     string             `json:"state,omitempty"`
	Who       string             `json:"who,omitempty"`
	Interlock string             `json:"interlock,omitempty"`
	Values    map[string]float64 `json:"values,omitempty"`
	Until     string             `json:"until,omitempty"`

	// Config reload (config_changed).
	OldConfigHash string `json:"old_config_hash,omitempty"`
	ConfigHash    string `json:"config_hash,omitempty"`
}

// GapPayload says which records the gateway's buffer dropped.
type GapPayload struct {
	Stream   string `json:"stream"`
	Count    uint64 `json:"count"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Cause    string `json:"cause"`
}

// StatusMessage is the retained message on <prefix>/<gateway>/status.
type StatusMessage struct {
	V          int             `json:"v"`
	Gateway    string          `json:"gateway"`
	Enterprise string          `json:"enterprise"`
	State      string          `json:"state"` // online | offline
	Reason     string          `json:"reason,omitempty"`
	Time       string          `json:"time"`
	Version    string          `json:"version"`
	StartedAt  string          `json:"started_at"`
	UptimeS    int64           `json:"uptime_s"`
	Broker     string          `json:"broker,omitempty"`
	Health     json.RawMessage `json:"health,omitempty"`
}

// Status states and offline reasons.
const (
	StateOnline          = "online"
	StateOffline         = "offline"
	ReasonConnectionLost = "connection lost"
	ReasonShutdown       = "shutdown"
)

// timeLayout is RFC 3339 in UTC with exactly three fractional digits.
const timeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime renders t as the contract's time format.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, timeLayout)
	return append(b, '"')
}

// tagMeta is what the config says about a tag, pre-encoded as JSON
// members so that each sample costs one copy instead of four escapes.
type tagMeta struct {
	unit string
	// sample: ,"tag":..,"hazard_source":..,"indicator":..,"kind":..,"unit":..
	sample []byte
	// event: ,"tag":..,"description":..,"hazard_source":..,"indicator":..
	event []byte
}

// encoder builds message payloads for one gateway.
type encoder struct {
	gateway, enterprise string
	head                []byte // {"v":1,"gateway":..,"enterprise":..
	// tags is replaced whole when a reloaded config changes the tags
	// (UpdateTags, reload.go), while the session goroutine encodes.
	tags atomic.Pointer[map[string]*tagMeta]
}

func newEncoder(cfg *config.Config) *encoder {
	e := &encoder{
		gateway:    cfg.Gateway.ID,
		enterprise: cfg.Gateway.EnterpriseCode,
	}
	e.head = append(e.head, `{"v":`...)
	e.head = strconv.AppendInt(e.head, PayloadVersion, 10)
	e.head = append(e.head, `,"gateway":`...)
	e.head = appendString(e.head, e.gateway)
	e.head = append(e.head, `,"enterprise":`...)
	e.head = appendString(e.head, e.enterprise)
	e.setTags(cfg)
	return e
}

func newTagMeta(name, description, kind, unit, hazard, indicator string) *tagMeta {
	m := &tagMeta{unit: unit}
	m.sample = appendMember(m.sample, "tag", name, false)
	m.sample = appendMember(m.sample, "hazard_source", hazard, true)
	m.sample = appendMember(m.sample, "indicator", indicator, true)
	m.sample = appendMember(m.sample, "kind", kind, true)
	m.sample = appendMember(m.sample, "unit", unit, true)
	m.event = appendMember(m.event, "tag", name, true)
	m.event = appendMember(m.event, "description", description, true)
	m.event = appendMember(m.event, "hazard_source", hazard, true)
	m.event = appendMember(m.event, "indicator", indicator, true)
	return m
}

// meta returns the tag's metadata; a tag that is no longer configured is
// still sent, with its name only.
func (e *encoder) meta(tag string) *tagMeta {
	if m, ok := (*e.tags.Load())[tag]; ok {
		return m
	}
	return newTagMeta(tag, "", "", "", "", "")
}

// appendData encodes recs (data stream, in order, at least one) as one
// data message.
func (e *encoder) appendData(b []byte, recs []model.Record, sentAt time.Time) []byte {
	return e.appendDataReplay(b, recs, sentAt, false)
}

// appendDataReplay is appendData with the replay marker: true when the
// records were handed to a connection before (docs/uplink.md §4.1).
func (e *encoder) appendDataReplay(b []byte, recs []model.Record, sentAt time.Time, replay bool) []byte {
	b = append(b, e.head...)
	b = append(b, `,"stream":"data","seq_first":`...)
	b = strconv.AppendUint(b, recs[0].Seq, 10)
	b = append(b, `,"seq_last":`...)
	b = strconv.AppendUint(b, recs[len(recs)-1].Seq, 10)
	b = append(b, `,"sent_at":`...)
	b = appendTime(b, sentAt)
	if replay {
		b = append(b, `,"replay":true`...)
	}
	b = append(b, `,"samples":[`...)
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		s := &recs[i].Sample
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, recs[i].Seq, 10)
		b = append(b, e.meta(s.Tag).sample...)
		q, reason := s.Quality, s.Reason
		if q != model.Bad {
			if isFinite(s.Value) {
				b = append(b, `,"value":`...)
				b = appendFloat(b, s.Value)
			} else {
				// JSON has no NaN or Inf: such a value is no value.
				q, reason = model.Bad, "not a finite number"
			}
		}
		b = append(b, `,"quality":"`...)
		b = append(b, q.String()...)
		b = append(b, '"')
		b = appendMember(b, "reason", reason, true)
		b = append(b, `,"time":`...)
		b = appendTime(b, s.Time)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendEvent encodes one event record as one event message.
func (e *encoder) appendEvent(b []byte, r *model.Record) []byte {
	ev := &r.Event
	b = append(b, e.head...)
	b = append(b, `,"stream":"event","seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = appendMember(b, "kind", string(ev.Kind), false)
	b = append(b, `,"time":`...)
	b = appendTime(b, ev.Time)
	b = appendMember(b, "device", ev.Device, true)
	unit := ""
	if ev.Tag != "" {
		m := e.meta(ev.Tag)
		b = append(b, m.event...)
		unit = m.unit
	}
	b = appendMember(b, "level", ev.Level, true)
	if ev.Value != nil && isFinite(*ev.Value) {
		b = append(b, `,"value":`...)
		b = appendFloat(b, *ev.Value)
	}
	if ev.Limit != nil && isFinite(*ev.Limit) {
		b = append(b, `,"limit":`...)
		b = appendFloat(b, *ev.Limit)
	}
	b = appendMember(b, "unit", unit, true)
	b = appendMember(b, "reason", ev.Reason, true)
	b = appendMember(b, "message", ev.Message, false)
	if g := ev.Gap; g != nil {
		b = append(b, `,"gap":{"stream":`...)
		b = appendString(b, g.Stream)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, g.Count, 10)
		b = append(b, `,"first_seq":`...)
		b = strconv.AppendUint(b, g.FirstSeq, 10)
		b = append(b, `,"last_seq":`...)
		b = strconv.AppendUint(b, g.LastSeq, 10)
		if !g.From.IsZero() {
			b = append(b, `,"from":`...)
			b = appendTime(b, g.From)
		}
		if !g.To.IsZero() {
			b = append(b, `,"to":`...)
			b = appendTime(b, g.To)
		}
		b = appendMember(b, "cause", g.Cause, false)
		b = append(b, '}')
	}
	b = appendMember(b, "colour", ev.Colour, true)
	if ev.Priority != 0 {
		b = append(b, `,"priority":`...)
		b = strconv.AppendInt(b, int64(ev.Priority), 10)
	}
	b = appendMember(b, "state", ev.State, true)
	b = appendMember(b, "who", ev.Who, true)
	b = appendMember(b, "interlock", ev.Interlock, true)
	if len(ev.Values) > 0 {
		// Sorted keys, as encoding/json writes a map; no NaN or Inf.
		keys := make([]string, 0, len(ev.Values))
		for k, v := range ev.Values {
			if isFinite(v) {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			slices.Sort(keys)
			b = append(b, `,"values":{`...)
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k)
				b = append(b, ':')
				b = appendFloat(b, ev.Values[k])
			}
			b = append(b, '}')
		}
	}
	if ev.Until != nil && !ev.Until.IsZero() {
		b = append(b, `,"until":`...)
		b = appendTime(b, *ev.Until)
	}
	b = appendMember(b, "old_config_hash", ev.OldConfigHash, true)
	b = appendMember(b, "config_hash", ev.ConfigHash, true)
	return append(b, '}')
}

// status builds a status message; health may be nil.
func (e *encoder) status(state, reason string, now, started time.Time, broker string, health json.RawMessage, version string) StatusMessage {
	return StatusMessage{
		V: PayloadVersion, Gateway: e.gateway, Enterprise: e.enterprise,
		State: state, Reason: reason, Time: FormatTime(now), Version: version,
		StartedAt: FormatTime(started), UptimeS: int64(now.Sub(started) / time.Second),
		Broker: broker, Health: health,
	}
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendMember appends ,"key":"value"; with omitEmpty an empty value
// appends nothing.
func appendMember(b []byte, key, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendFloat formats a finite float exactly as encoding/json does, so
// that the platform sees the shortest text that reads back to the same
// float64.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping as encoding/json does
// with HTML escaping off (so "<" stays "<"): quotes, backslashes, control
// characters, invalid UTF-8 (as U+FFFD), U+2028 and U+2029.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
