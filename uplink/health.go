package uplink

// Health is the "health" object of online status messages
// (docs/uplink.md §3.3, docs/schema/status.schema.json). The gateway fills
// everything but Broker, which the uplink fills from its own counters.
type Health struct {
	ConfigHash string         `json:"config_hash,omitempty"` // SHA-256 of the config file, hex (first 16 digits)
	Devices    []DeviceHealth `json:"devices"`               // one per configured device, in config order
	Buffer     BufferHealth   `json:"buffer"`
	Broker     BrokerHealth   `json:"broker"`
	Alarms     AlarmCounts    `json:"alarms"`
	Clock      ClockHealth    `json:"clock"`
}

// DeviceHealth is one device's polling loop.
type DeviceHealth struct {
	Name          string `json:"name"`
	State         string `json:"state"`                    // starting, up, down, backoff, stopped
	LastGoodPoll  string `json:"last_good_poll,omitempty"` // end of the last successful poll; absent if none yet
	Polls         uint64 `json:"polls"`                    // polls started since the gateway started
	Failures      int    `json:"failures"`                 // consecutive failed polls; 0 while up
	TotalFailures uint64 `json:"total_failures"`           // failed polls since start
	Overruns      uint64 `json:"overruns"`                 // ticks skipped because a poll was still running
	LastError     string `json:"last_error,omitempty"`     // of the last failed poll
}

// BufferHealth is the on-disk backlog.
type BufferHealth struct {
	Records      uint64   `json:"records"` // event_records + data_records
	EventRecords uint64   `json:"event_records"`
	DataRecords  uint64   `json:"data_records"`
	Bytes        int64    `json:"bytes"`                  // stored record bytes, what max_bytes limits
	OldestAgeS   *float64 `json:"oldest_age_s,omitempty"` // age of the oldest record; absent when empty
	Dropped      uint64   `json:"dropped"`                // records dropped by the limits over the buffer file's life
	// DataNextSeq and EventNextSeq are the numbers the next record of each
	// stream will get: every lower number has been acknowledged by the
	// broker, is still waiting in the buffer, or was reported by a gap
	// event. A platform that holds far fewer has lost messages between the
	// broker and itself (an ACL that silently drops, docs/uplink.md §1).
	DataNextSeq  uint64 `json:"data_next_seq"`
	EventNextSeq uint64 `json:"event_next_seq"`
}

// BrokerHealth is the uplink's connection.
type BrokerHealth struct {
	Connected       bool   `json:"connected"`
	URL             string `json:"url,omitempty"`    // current broker, without credentials
	Reconnects      uint64 `json:"reconnects"`       // connections lost since start
	ConnectFailures uint64 `json:"connect_failures"` // attempts that failed since start
	InFlight        int    `json:"in_flight"`        // publishes awaiting PUBACK
}

// AlarmCounts counts the active alarms (and faults) by level and by the
// regulator's colour; Active is the total.
type AlarmCounts struct {
	Active int `json:"active"`
	HH     int `json:"hh"`
	H      int `json:"h"`
	L      int `json:"l"`
	LL     int `json:"ll"`
	Rate   int `json:"roc"`   // rate-of-change alarms
	Dev    int `json:"dev"`   // deviation from a redundant instrument
	Fault  int `json:"fault"` // sensor and communication faults
	Red    int `json:"red"`
	Orange int `json:"orange"`
	Yellow int `json:"yellow"`
	Blue   int `json:"blue"`
}

// Count adds one active alarm of level (hh, h, l, ll, roc, dev, fault)
// and colour (red, orange, yellow, blue, or "" when the alarm has none).
func (a *AlarmCounts) Count(level, colour string) {
	a.Active++
	switch level {
	case "hh":
		a.HH++
	case "h":
		a.H++
	case "l":
		a.L++
	case "ll":
		a.LL++
	case "roc":
		a.Rate++
	case "dev":
		a.Dev++
	default:
		a.Fault++
	}
	switch colour {
	case "red":
		a.Red++
	case "orange":
		a.Orange++
	case "yellow":
		a.Yellow++
	case "blue":
		a.Blue++
	}
}

// ClockHealth says whether the wall clock jumped against the monotonic
// clock since the gateway started.
type ClockHealth struct {
	State      string   `json:"state"` // ok, or jumped once any jump was seen
	Jumps      uint64   `json:"jumps"`
	LastJumpS  *float64 `json:"last_jump_s,omitempty"`  // size of the last jump, seconds, negative = backwards
	LastJumpAt string   `json:"last_jump_at,omitempty"` // wall time after the last jump
}
