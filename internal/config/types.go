// Package config defines the gateway's YAML configuration, decodes it
// strictly and validates it, reporting every problem with file, line,
// column and field path.
package config

import "time"

// Config is one gateway's whole configuration file.
type Config struct {
	Gateway Gateway  `yaml:"gateway"`
	Buffer  Buffer   `yaml:"buffer"`
	Uplink  Uplink   `yaml:"uplink"`
	Devices []Device `yaml:"devices"`

	Interlocks []Interlock `yaml:"interlocks"` // local interlocks (interlocks.go)

	Web Web `yaml:"web"` // status page, /metrics, /healthz (web.go)

	AlarmOutputs []AlarmOutput `yaml:"alarm_outputs"` // beacons and horns that follow the alarms (alarm_outputs.go)
	History      History       `yaml:"history"`       // local record of every sample (history.go)

	// Path is the file the config was loaded from (not part of the YAML).
	Path string `yaml:"-"`

	// hash is the SHA-256 of the file's bytes as loaded, in hex (see Hash).
	hash string
}

// Gateway identifies this gateway to the platform.
type Gateway struct {
	ID             string `yaml:"id"`              // required; unique per platform; [A-Za-z0-9_.-]
	EnterpriseCode string `yaml:"enterprise_code"` // 企业编码, required
	DataDir        string `yaml:"data_dir"`        // default "./data"
}

// Buffer bounds the on-disk store of records not yet acknowledged.
type Buffer struct {
	MaxBytes ByteSize `yaml:"max_bytes"` // default 256MiB; min 1MiB
	MaxAge   Duration `yaml:"max_age"`   // default 720h (30 days); 0 = no limit
}

// Uplink is the MQTT connection to the supervision platform.
type Uplink struct {
	Brokers        []string `yaml:"brokers"`         // required; tcp://, mqtt://, ssl://, tls://; tried in order
	TopicPrefix    string   `yaml:"topic_prefix"`    // default "hazgate"
	ClientID       string   `yaml:"client_id"`       // default gateway.id
	Username       string   `yaml:"username"`        //
	PasswordFile   string   `yaml:"password_file"`   // password read from this file (trailing newline trimmed)
	PasswordEnv    string   `yaml:"password_env"`    // or from this environment variable
	TLS            TLS      `yaml:"tls"`             //
	KeepAlive      Duration `yaml:"keepalive"`       // default 30s
	ConnectTimeout Duration `yaml:"connect_timeout"` // default 10s
	Inflight       int      `yaml:"inflight"`        // unacknowledged publishes at once; default 32, 1..1000
	BatchMax       int      `yaml:"batch_max"`       // samples per data message; default 100, 1..10000
	Heartbeat      Duration `yaml:"heartbeat"`       // status message interval; default 60s
	ReconnectMax   Duration `yaml:"reconnect_max"`   // longest back-off between connection attempts; default 30s

	// Remote commands from the platform (uplink_cmds.go); absent = none accepted.
	Commands *Commands `yaml:"commands"`
	// Delivery options (validate_uplink.go).
	BatchInterval Duration `yaml:"batch_interval"` // wait up to this long to fill batch_max; default 0 = send at once
	Compression   string   `yaml:"compression"`    // data payloads: none (default), gzip or zstd
	ReplayRate    int      `yaml:"replay_rate"`    // backlog drain limit, samples per second; 0 = unlimited
}

// TLS configures the broker connection when a broker URL is ssl:// or tls://.
type TLS struct {
	CAFile             string `yaml:"ca_file"`              // default: system roots
	CertFile           string `yaml:"cert_file"`            // client certificate for mutual TLS
	KeyFile            string `yaml:"key_file"`             //
	ServerName         string `yaml:"server_name"`          // default: host of the URL
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // only for commissioning
}

// Protocols a device may speak.
const (
	ProtocolModbusTCP    = "modbus-tcp"
	ProtocolModbusRTU    = "modbus-rtu"     // RTU on a serial RS-485 line: serial.port names it
	ProtocolModbusRTUTCP = "modbus-rtu-tcp" // RTU frames over TCP to a serial-to-Ethernet converter at address
)

// Device is one field device polled by the gateway.
type Device struct {
	Name          string   `yaml:"name"`            // required, unique
	Protocol      string   `yaml:"protocol"`        // required: modbus-tcp
	Address       string   `yaml:"address"`         // required: host:port
	UnitID        int      `yaml:"unit_id"`         // default 1; 0..247 (255 allowed for TCP)
	Interval      Duration `yaml:"interval"`        // poll period; default 1s
	Timeout       Duration `yaml:"timeout"`         // per request; default 1s; must be < interval
	MaxGap        int      `yaml:"max_gap"`         // unused registers bridged to save a request; default 8
	CommLossAfter Duration `yaml:"comm_loss_after"` // bad for this long raises a fault; default 10s
	BackoffMax    Duration `yaml:"backoff_max"`     // longest wait between reconnects while down; default 30s
	Tags          []Tag    `yaml:"tags"`            // at least one

	OPCUA *OPCUA `yaml:"opcua"` // security and login for protocol opcua (address is then opc.tcp://host:port/path); see opcua.go

	Serial *Serial `yaml:"serial"` // the RS-485 line of modbus-rtu (and of modbus-rtu-tcp, for timing); see serial.go

	GPIO *GPIO `yaml:"gpio"` // backend of protocol gpio (the box's own digital lines); see gpio.go

	// AlarmFloodLimit is how many different alarms this device may raise
	// in a minute before its orange, yellow and blue alarm events are
	// summarised (docs/alarms.md §7); default DefaultAlarmFloodLimit, 0
	// never summarises. A pointer so that a Config built in code without
	// it gets the default, not "off".
	AlarmFloodLimit *int `yaml:"alarm_flood_limit"`
}

// Modbus data areas.
const (
	AreaCoil     = "coil"
	AreaDiscrete = "discrete"
	AreaHolding  = "holding"
	AreaInput    = "input"
)

// Value types.
const (
	TypeBool    = "bool" // coils and discrete inputs
	TypeBit     = "bit"  // one bit of a register; Tag.Bit says which
	TypeInt16   = "int16"
	TypeUint16  = "uint16"
	TypeInt32   = "int32"
	TypeUint32  = "uint32"
	TypeFloat32 = "float32"
	TypeFloat64 = "float64"
)

// Tag kinds.
const (
	KindTemperature = "temperature"
	KindPressure    = "pressure"
	KindLevel       = "level"
	KindFlow        = "flow"
	KindGas         = "gas"
	KindDigital     = "digital"
	KindCount       = "count"
)

// Tag is one measured point (位号).
type Tag struct {
	Name         string `yaml:"name"`          // required, unique in the gateway, e.g. LT-101
	Description  string `yaml:"description"`   //
	Kind         string `yaml:"kind"`          // required: temperature|pressure|level|flow|gas|digital|count
	Unit         string `yaml:"unit"`          // e.g. m, °C, MPa, %LEL
	HazardSource string `yaml:"hazard_source"` // 重大危险源编码
	Indicator    string `yaml:"indicator"`     // 指标编码

	// Writable allows the gateway to write this tag (interlock actions,
	// remote commands). Writes to any other tag are refused.
	Writable bool `yaml:"writable"`

	Area    string `yaml:"area"`    // required: coil|discrete|holding|input
	Address *int   `yaml:"address"` // required, 0-based protocol address 0..65535
	Type    string `yaml:"type"`    // default uint16 for registers, bool for coils/discrete
	Bit     int    `yaml:"bit"`     // 0..15 for type bit (0 = least significant)
	Order   string `yaml:"order"`   // ABCD (default)|BADC|CDAB|DCBA

	// For protocol opcua instead of area/address/type: the node id
	// (ns=2;s=Reactor.TT-301) and how it is acquired (see opcua.go).
	Node  string    `yaml:"node"`
	OPCUA *TagOPCUA `yaml:"opcua"`

	// For protocol gpio: the line, its direction and wiring (see gpio.go).
	GPIO *TagGPIO `yaml:"gpio"`

	Range  *Range  `yaml:"range"`  // engineering range; required for analog kinds
	Scale  *Scale  `yaml:"scale"`  // raw range mapped linearly onto Range
	Alarms *Alarms `yaml:"alarms"` //
}

// Range is an engineering range.
type Range struct {
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
}

// Scale maps a raw range linearly onto the tag's engineering range, e.g.
// raw 4..20 (mA) or 0..27648 (S7 analog) onto 0..20 m.
type Scale struct {
	RawMin float64 `yaml:"raw_min"`
	RawMax float64 `yaml:"raw_max"`
}

// Alarms are the four threshold levels of a tag. A nil level is not checked.
// Levels must be ordered ll < l < h < hh where set.
type Alarms struct {
	HH       *float64 `yaml:"hh"`
	H        *float64 `yaml:"h"`
	L        *float64 `yaml:"l"`
	LL       *float64 `yaml:"ll"`
	Deadband float64  `yaml:"deadband"`  // hysteresis on clear, engineering units; default 0
	OnDelay  Duration `yaml:"on_delay"`  // condition must hold this long; default 0
	OffDelay Duration `yaml:"off_delay"` // clear condition must hold this long; default 0

	// Alarm management (types in alarms.go).
	Priority     *AlarmPriority `yaml:"priority"`       // colours per level; defaults in docs/alarms.md
	Latch        bool           `yaml:"latch"`          // an alarm stays until acknowledged, even after the process returned
	Gas          *GasPreset     `yaml:"gas"`            // GB/T 50493-2019 presets for first/second alarm
	RateOfChange *RateOfChange  `yaml:"rate_of_change"` // alarm on a fast change, per minute
	Deviation    *Deviation     `yaml:"deviation"`      // alarm when a redundant instrument disagrees
	Frozen       *Frozen        `yaml:"frozen"`         // fault when the value does not change
}

// Duration is a time.Duration written in YAML as "500ms", "2s", "1h".
type Duration time.Duration

// ByteSize is a size written in YAML as a number of bytes or with a unit:
// "64KiB", "256MiB", "1GiB", "10MB".
type ByteSize int64
