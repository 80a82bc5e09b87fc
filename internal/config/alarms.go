package config

// Regulator colours of alarm priorities, most urgent first (红橙黄蓝).
const (
	ColourRed    = "red"
	ColourOrange = "orange"
	ColourYellow = "yellow"
	ColourBlue   = "blue"
)

// Colours lists the colours in priority order: Colours[0] is priority 1.
var Colours = []string{ColourRed, ColourOrange, ColourYellow, ColourBlue}

// AlarmPriority overrides the colour of single alarm levels of a tag. An
// empty field keeps the default: hh, ll and the gas second alarm red; h, l
// and the gas first alarm orange; rate of change, deviation and sensor
// faults yellow.
type AlarmPriority struct {
	HH           string `yaml:"hh"`
	H            string `yaml:"h"`
	L            string `yaml:"l"`
	LL           string `yaml:"ll"`
	RateOfChange string `yaml:"rate_of_change"`
	Deviation    string `yaml:"deviation"`
	Fault        string `yaml:"fault"`
}

// Gas detector types of GB/T 50493-2019.
const (
	GasCombustible = "combustible"
	GasToxic       = "toxic"
)

// GasPreset applies the alarm limits of GB/T 50493-2019 5.5.2 to a gas
// detector: h is the first alarm (一级报警), hh the second (二级报警).
// A limit left out is set to the preset; a limit written looser than the
// preset is rejected.
//
//	combustible (unit %LEL): first <= 25 %LEL, second <= 50 %LEL
//	toxic with oel:          first <= 100 % OEL, second <= 200 % OEL
//	toxic with idlh only:    first <= 5 % IDLH,  second <= 10 % IDLH
type GasPreset struct {
	Type string   `yaml:"type"` // combustible|toxic
	OEL  *float64 `yaml:"oel"`  // occupational exposure limit, in the tag's unit (toxic)
	IDLH *float64 `yaml:"idlh"` // immediately dangerous to life or health, in the tag's unit (toxic, when no OEL)
}

// RateOfChange raises an alarm when the value changes faster than Limit
// engineering units per minute, measured over Window.
type RateOfChange struct {
	Limit  float64  `yaml:"limit"`  // units per minute, > 0; up or down
	Window Duration `yaml:"window"` // default 1m; at least the device interval
}

// Deviation raises an alarm when this tag and a redundant instrument
// measuring the same thing (GB 17681-2024: two level meters per tank)
// differ by Limit or more, both Good, for Delay.
type Deviation struct {
	Tag   string   `yaml:"tag"`   // the other instrument's tag
	Limit float64  `yaml:"limit"` // engineering units, > 0
	Delay Duration `yaml:"delay"` // default 0
}

// Frozen raises a sensor fault when a Good value stays within Tolerance of
// itself for After: a stuck transmitter or a PLC that stopped updating.
type Frozen struct {
	After     Duration `yaml:"after"`     // required, > 0
	Tolerance float64  `yaml:"tolerance"` // engineering units; default 0 (bit-equal)
}
