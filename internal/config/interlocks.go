package config

import "time"

// Bad-quality policies of an interlock.
const (
	BadTrip = "trip" // an input that is not Good counts as tripping (fail-safe; the default)
	BadHold = "hold" // an input that is not Good keeps its last Good result
)

// DefaultBypassMax bounds a bypass when an interlock does not say.
const DefaultBypassMax = Duration(8 * time.Hour)

// Interlock is a local protective function: when Condition holds for
// OnDelay, every action is written, and the interlock stays tripped
// until an operator resets it (refused while the condition still holds).
type Interlock struct {
	Name        string   `yaml:"name"`        // required, unique, e.g. IL-101
	Description string   `yaml:"description"` //
	Condition   string   `yaml:"condition"`   // e.g. "LT-101 >= 18.5 or LSHH-101"; see docs/alarms.md
	OnDelay     Duration `yaml:"on_delay"`    // default 0
	BadQuality  string   `yaml:"bad_quality"` // trip (default) | hold
	BypassMax   Duration `yaml:"bypass_max"`  // longest bypass allowed; default 8h
	Actions     []Action `yaml:"actions"`     // at least one
}

// Action writes one output when an interlock trips.
type Action struct {
	Tag   string   `yaml:"tag"`   // a tag marked writable: true
	Value *float64 `yaml:"value"` // required; 0/1 for coils
}
