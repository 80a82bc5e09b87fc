// Package model holds the value types that every stage of the gateway
// passes along: samples from drivers, events from rules, and the buffered
// records that the uplink publishes. It depends on nothing else in hazgate,
// so every package may import it.
package model

import (
	"fmt"
	"time"
)

// Quality says whether a sample's value can be trusted.
type Quality uint8

const (
	// Good: the device answered and the value decoded.
	Good Quality = iota
	// Bad: no value could be had; Sample.Reason says why.
	Bad
	// Uncertain: a value was read but should not be trusted blindly
	// (for example outside the engineering range).
	Uncertain
)

func (q Quality) String() string {
	switch q {
	case Good:
		return "good"
	case Bad:
		return "bad"
	case Uncertain:
		return "uncertain"
	}
	return fmt.Sprintf("quality(%d)", uint8(q))
}

// ParseQuality is the inverse of Quality.String.
func ParseQuality(s string) (Quality, error) {
	switch s {
	case "good":
		return Good, nil
	case "bad":
		return Bad, nil
	case "uncertain":
		return Uncertain, nil
	}
	return Bad, fmt.Errorf("unknown quality %q", s)
}

// Reasons for bad quality. Drivers may add detail after a colon, e.g.
// "exception: 2 (illegal data address)".
const (
	ReasonTimeout             = "timeout"
	ReasonConnRefused         = "connection refused"
	ReasonConnection          = "connection error"
	ReasonException           = "exception"
	ReasonDecode              = "decode error"
	ReasonDeviceDown          = "device down"
	ReasonOutOfRange          = "out of range"
	ReasonSensorFault         = "sensor fault"
	ReasonNotPolled           = "not polled"
	ReasonTransactionMismatch = "transaction id mismatch"
)

// Sample is one acquired value of one tag.
type Sample struct {
	Tag     string    // tag name (位号), unique in a gateway
	Device  string    // name of the device it came from
	Value   float64   // engineering value after scaling; 0/1 for digital tags
	Quality Quality   //
	Reason  string    // empty when Good
	Time    time.Time // acquisition time, UTC
}

// Stream names one ordered sequence of buffered records. Each stream has
// its own sequence numbers.
type Stream uint8

const (
	// StreamEvent carries alarms, faults and gateway events. It is always
	// published ahead of StreamData.
	StreamEvent Stream = iota
	// StreamData carries telemetry samples.
	StreamData
)

// Streams lists every stream in priority order (events first).
var Streams = [...]Stream{StreamEvent, StreamData}

func (s Stream) String() string {
	switch s {
	case StreamEvent:
		return "event"
	case StreamData:
		return "data"
	}
	return fmt.Sprintf("stream(%d)", uint8(s))
}

// EventKind names what happened.
type EventKind string

const (
	AlarmRaised    EventKind = "alarm_raised"    // a threshold alarm became active
	AlarmCleared   EventKind = "alarm_cleared"   // it returned to normal
	FaultRaised    EventKind = "fault_raised"    // a tag has been bad for longer than allowed
	FaultCleared   EventKind = "fault_cleared"   // it is good again
	CommLost       EventKind = "comm_lost"       // a device stopped answering
	CommRestored   EventKind = "comm_restored"   // it answers again
	Gap            EventKind = "gap"             // the buffer dropped records; Event.Gap says which
	GatewayStarted EventKind = "gateway_started" // the gateway started (after a restart too)
	GatewayStopped EventKind = "gateway_stopped" // orderly shutdown

	// Alarm management and interlocks (rules, rules/interlock).
	AlarmAcknowledged     EventKind = "alarm_acknowledged"      // an operator acknowledged an alarm; Who says who
	InterlockTripped      EventKind = "interlock_tripped"       // an interlock's condition held for its delay; Values holds the inputs
	InterlockAction       EventKind = "interlock_action"        // an interlock output was written and read back
	InterlockActionFailed EventKind = "interlock_action_failed" // writing or reading back an output failed (an alarm)
	InterlockReset        EventKind = "interlock_reset"         // an operator reset a tripped interlock
	BypassOn              EventKind = "bypass_on"               // an interlock was bypassed; Reason and Until say why and how long
	BypassOff             EventKind = "bypass_off"              // the bypass was removed by an operator
	BypassExpired         EventKind = "bypass_expired"          // the bypass ran out by itself
	AlarmFlood            EventKind = "alarm_flood"             // a device raised more alarms a minute than allowed; Values lists those summarised
	AlarmShelved          EventKind = "alarm_shelved"           // an operator shelved an alarm until Until
	AlarmUnshelved        EventKind = "alarm_unshelved"         // the shelving was removed by an operator
	ShelveExpired         EventKind = "shelve_expired"          // the shelving ran out by itself

	// The gateway's own storage (internal/gateway).
	StorageFault    EventKind = "storage_fault"    // the buffer could not be written; Reason says why. Rules and interlocks keep running
	StorageRestored EventKind = "storage_restored" // the buffer is writable again; Message says what could not be kept meanwhile
	ConfigChanged   EventKind = "config_changed"   // a reloaded config was applied; OldConfigHash and ConfigHash say which
)

// Alarm levels.
const (
	LevelHH = "hh"
	LevelH  = "h"
	LevelL  = "l"
	LevelLL = "ll"
)

// Event is something the platform must learn about, in order and never
// behind telemetry backlog.
type Event struct {
	Kind    EventKind `json:"kind"`
	Time    time.Time `json:"time"`             // when it happened, UTC
	Device  string    `json:"device,omitempty"` //
	Tag     string    `json:"tag,omitempty"`    //
	Level   string    `json:"level,omitempty"`  // hh, h, l, ll for alarms
	Value   *float64  `json:"value,omitempty"`  // the value that raised or cleared it
	Limit   *float64  `json:"limit,omitempty"`  // the threshold it crossed
	Reason  string    `json:"reason,omitempty"` // for faults and comm loss
	Message string    `json:"message"`          // one readable line
	Gap     *GapInfo  `json:"gap,omitempty"`    // for Kind == Gap

	// Alarm management and interlocks; all optional.
	Colour    string             `json:"colour,omitempty"`    // regulator colour of the alarm: red, orange, yellow, blue
	Priority  int                `json:"priority,omitempty"`  // 1 (red) .. 4 (blue)
	State     string             `json:"state,omitempty"`     // alarm state after the event (see docs/alarms.md)
	Who       string             `json:"who,omitempty"`       // who acknowledged, reset or bypassed
	Interlock string             `json:"interlock,omitempty"` // interlock name
	Values    map[string]float64 `json:"values,omitempty"`    // interlock inputs at the trip
	Until     *time.Time         `json:"until,omitempty"`     // bypass expiry

	// Config reload: the hashes (first 16 hex digits of the SHA-256 of
	// the file) of the config before and after.
	OldConfigHash string `json:"old_config_hash,omitempty"`
	ConfigHash    string `json:"config_hash,omitempty"`
}

// GapInfo describes records the buffer dropped because it was full or too old.
type GapInfo struct {
	Stream   string    `json:"stream"`
	Count    uint64    `json:"count"`
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	From     time.Time `json:"from"`  // acquisition time of the oldest dropped record
	To       time.Time `json:"to"`    // and of the newest
	Cause    string    `json:"cause"` // "size limit" or "age limit"
}

// Float returns a pointer to v, for Event.Value and Event.Limit.
func Float(v float64) *float64 { return &v }

// Record is one buffered item as read back from the buffer: exactly one of
// Event and Sample is meaningful, chosen by Stream.
type Record struct {
	Stream Stream
	Seq    uint64
	Event  Event
	Sample Sample
}
