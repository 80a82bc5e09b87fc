package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// validator fills in defaults and checks the meaning of a decoded config,
// using the positions the decoder recorded.
type validator struct {
	*decoder
}

// parent strips the last step of a field path: "a.b[2]" -> "a.b",
// "a.b" -> "a", "a" -> "".
func parent(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// present says whether path was written in the file with a value; an
// absent or null value means "use the default".
func (v *validator) present(path string) bool {
	p, ok := v.places[path]
	return ok && p.val != nil && !isNull(p.val)
}

// line is the line a path was written on, 0 if it was not.
func (v *validator) line(path string) int {
	if p, ok := v.places[path]; ok && p.val != nil {
		return p.val.Line
	}
	return 0
}

// report records a problem with the value at path. A path that is absent
// is reported where its nearest written ancestor is: a missing field at
// the mapping that should hold it. Nothing is reported under a path whose
// value could not be decoded: that problem is already on the list, and
// what follows from it would only be noise.
func (v *validator) report(path, format string, args ...any) {
	for p := path; ; p = parent(p) {
		if v.bad[p] {
			return
		}
		if p == "" {
			break
		}
	}
	var at *yaml.Node
	for p := path; ; p = parent(p) {
		if pl, ok := v.places[p]; ok && pl.val != nil {
			at = pl.val
			break
		}
		if p == "" {
			break
		}
	}
	v.problemAt(at, path, format, args...)
}

func (v *validator) missing(path, what string) {
	v.report(path, "missing (%s)", what)
}

// Defaults, as documented in types.go.
const (
	DefaultDataDir        = "./data"
	DefaultMaxBytes       = ByteSize(256 << 20)
	DefaultMaxAge         = Duration(720 * time.Hour)
	DefaultTopicPrefix    = "hazgate"
	DefaultKeepAlive      = Duration(30 * time.Second)
	DefaultConnectTimeout = Duration(10 * time.Second)
	DefaultInflight       = 32
	DefaultBatchMax       = 100
	DefaultHeartbeat      = Duration(60 * time.Second)
	DefaultReconnectMax   = Duration(30 * time.Second)
	DefaultUnitID         = 1
	DefaultInterval       = Duration(time.Second)
	DefaultTimeout        = Duration(time.Second)
	DefaultMaxGap         = 8
	DefaultCommLossAfter  = Duration(10 * time.Second)
	DefaultBackoffMax     = Duration(30 * time.Second)
	DefaultOrder          = "ABCD"

	// DefaultAlarmFloodLimit is a device's alarm_flood_limit when absent:
	// more than 10 different alarms in a minute is a flood.
	DefaultAlarmFloodLimit = 10
	// MaxAlarmFloodLimit bounds alarm_flood_limit: a limit above it never
	// catches a flood an operator could read, and is most likely a typo.
	MaxAlarmFloodLimit = 1000
)

// defaults fills in what the file left out. Numbers and durations take
// their default only when the key is absent (or null), so an explicit 0
// keeps its meaning: unit_id: 0 is a valid unit, max_age: 0 means no age
// limit, max_gap: 0 means never bridge. An explicit 0 where 0 makes no
// sense (inflight: 0, timeout: 0) is reported by validate. Text fields
// take their default when empty.
func (v *validator) defaults(c *Config) {
	if c.Gateway.DataDir == "" {
		c.Gateway.DataDir = DefaultDataDir
	}
	setDur := func(path string, d *Duration, def Duration) {
		if !v.present(path) {
			*d = def
		}
	}
	setInt := func(path string, i *int, def int) {
		if !v.present(path) {
			*i = def
		}
	}
	if !v.present("buffer.max_bytes") {
		c.Buffer.MaxBytes = DefaultMaxBytes
	}
	setDur("buffer.max_age", &c.Buffer.MaxAge, DefaultMaxAge)

	u := &c.Uplink
	if u.TopicPrefix == "" {
		u.TopicPrefix = DefaultTopicPrefix
	}
	if u.ClientID == "" {
		u.ClientID = c.Gateway.ID
	}
	setDur("uplink.keepalive", &u.KeepAlive, DefaultKeepAlive)
	setDur("uplink.connect_timeout", &u.ConnectTimeout, DefaultConnectTimeout)
	setInt("uplink.inflight", &u.Inflight, DefaultInflight)
	setInt("uplink.batch_max", &u.BatchMax, DefaultBatchMax)
	setDur("uplink.heartbeat", &u.Heartbeat, DefaultHeartbeat)
	setDur("uplink.reconnect_max", &u.ReconnectMax, DefaultReconnectMax)

	for i := range c.Devices {
		d := &c.Devices[i]
		p := fmt.Sprintf("devices[%d].", i)
		setInt(p+"unit_id", &d.UnitID, DefaultUnitID)
		setDur(p+"interval", &d.Interval, DefaultInterval)
		// The timeout must be shorter than the interval; with a short
		// interval the 1s default would not be, so it shrinks to half.
		timeout := DefaultTimeout
		if d.Interval > 0 {
			timeout = min(timeout, d.Interval/2)
		}
		setDur(p+"timeout", &d.Timeout, timeout)
		setInt(p+"max_gap", &d.MaxGap, DefaultMaxGap)
		setDur(p+"comm_loss_after", &d.CommLossAfter, DefaultCommLossAfter)
		setDur(p+"backoff_max", &d.BackoffMax, DefaultBackoffMax)
		if d.AlarmFloodLimit == nil { // absent or null; an explicit 0 means off
			n := DefaultAlarmFloodLimit
			d.AlarmFloodLimit = &n
		}
		for j := range d.Tags {
			t := &d.Tags[j]
			if t.Type == "" {
				switch t.Area {
				case AreaCoil, AreaDiscrete:
					t.Type = TypeBool
				case AreaHolding, AreaInput:
					t.Type = TypeUint16
				}
			}
			if t.Type == "" && d.Protocol == ProtocolGPIO {
				t.Type = TypeBool // a GPIO line is one bit
			}
			if t.Order == "" {
				t.Order = DefaultOrder
			}
		}
	}
}

var gatewayID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (v *validator) validate(c *Config) {
	v.gateway(c)
	v.buffer(c)
	v.uplink(c)
	if len(c.Devices) == 0 {
		v.missing("devices", "at least one device to poll")
	}
	devices := map[string]string{} // name -> path of first
	tags := map[string]string{}
	for i := range c.Devices {
		v.device(&c.Devices[i], fmt.Sprintf("devices[%d]", i), devices, tags)
	}
	v.opcua(c) // validate_opcua.go
	// validate_serial.go: RTU lines, shared buses, writable tags
	v.serial(c)
	v.gpio(c) // validate_gpio.go; before interlocks, which need GPIO tags typed bool
	v.interlocks(c, tags)
	v.alarmOutputs(c)   // alarm_outputs.go
	v.uplinkCommands(c) // validate_uplink.go
	v.web(c)            // validate_web.go
	v.history(c)        // validate_history.go
}

func (v *validator) gateway(c *Config) {
	g := c.Gateway
	switch {
	case g.ID == "":
		v.missing("gateway.id", "a name for this gateway, unique on the platform, e.g. tank-farm-1; it goes into MQTT topics")
	case !gatewayID.MatchString(g.ID):
		v.report("gateway.id", "%q is not allowed (use 1 to 64 of A-Z a-z 0-9 _ . -; it goes into MQTT topics, where / + # are special)", g.ID)
	}
	if strings.TrimSpace(g.EnterpriseCode) == "" {
		v.missing("gateway.enterprise_code", "企业编码, the enterprise code the supervision platform issued")
	}
}

func (v *validator) buffer(c *Config) {
	b := c.Buffer
	if b.MaxBytes < 1<<20 {
		v.report("buffer.max_bytes", "%s is too small (at least 1MiB)", b.MaxBytes)
	}
	if b.MaxAge < 0 {
		v.report("buffer.max_age", "%s is negative (0 means no age limit)", b.MaxAge)
	}
}

var brokerSchemes = map[string]string{"tcp": "1883", "mqtt": "1883", "ssl": "8883", "tls": "8883", "ws": "80", "wss": "443"}

func (v *validator) uplink(c *Config) {
	u := c.Uplink
	if len(u.Brokers) == 0 {
		v.missing("uplink.brokers", "a list of broker URLs, tried in order, like ssl://platform.example.com:8883")
	}
	secure := false
	for i, b := range u.Brokers {
		if s, ok := v.brokerURL(b, fmt.Sprintf("uplink.brokers[%d]", i)); ok && (s == "ssl" || s == "tls" || s == "wss") {
			secure = true
		}
	}
	if p := u.TopicPrefix; strings.ContainsAny(p, "+#\x00") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		v.report("uplink.topic_prefix", "%q is not a topic prefix (levels separated by single '/', no '+' or '#', no '/' at either end)", p)
	}
	if u.PasswordFile != "" && u.PasswordEnv != "" {
		v.report("uplink.password_env", "set together with password_file (choose one)")
	}
	if (u.PasswordFile != "" || u.PasswordEnv != "") && u.Username == "" {
		path := "uplink.password_file"
		if u.PasswordFile == "" {
			path = "uplink.password_env"
		}
		v.report(path, "a password needs uplink.username (MQTT 3.1.1 sends no password without a user name)")
	}
	t := u.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.report("uplink.tls.cert_file", "set without key_file (mutual TLS needs both, or neither)")
	case t.CertFile == "" && t.KeyFile != "":
		v.report("uplink.tls.key_file", "set without cert_file (mutual TLS needs both, or neither)")
	}
	if (t != TLS{}) && !secure && len(u.Brokers) > 0 {
		v.report("uplink.tls", "is set, but no broker URL uses ssl://, tls:// or wss://, so it would be ignored and the connection unencrypted (use ssl://HOST:8883)")
	}
	if u.KeepAlive < Duration(time.Second) || u.KeepAlive > Duration(65535*time.Second) {
		v.report("uplink.keepalive", "%s is out of range (1s to 18h12m15s; without it a dead connection goes unnoticed)", u.KeepAlive)
	}
	positive := func(path string, d Duration, def Duration) {
		if d <= 0 {
			v.report(path, "%s must be more than 0 (leave it out for the default %s)", d, def)
		}
	}
	positive("uplink.connect_timeout", u.ConnectTimeout, DefaultConnectTimeout)
	positive("uplink.heartbeat", u.Heartbeat, DefaultHeartbeat)
	positive("uplink.reconnect_max", u.ReconnectMax, DefaultReconnectMax)
	if u.Inflight < 1 || u.Inflight > 1000 {
		v.report("uplink.inflight", "%d is out of range (1..1000)", u.Inflight)
	}
	if u.BatchMax < 1 || u.BatchMax > 10000 {
		v.report("uplink.batch_max", "%d is out of range (1..10000)", u.BatchMax)
	}
}

// brokerURL checks one broker URL and returns its scheme.
func (v *validator) brokerURL(s, path string) (string, bool) {
	const like = "like ssl://platform.example.com:8883 or tcp://10.0.0.5:1883"
	before, _, found := strings.Cut(s, "://")
	if !found {
		v.report(path, "%q has no scheme (%s)", s, like)
		return "", false
	}
	scheme := strings.ToLower(before)
	if _, ok := brokerSchemes[scheme]; !ok {
		v.report(path, "scheme %q is not supported (use tcp, mqtt, ssl, tls, ws or wss)", before)
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil {
		v.report(path, "is not a URL (%s)", like)
		return "", false
	}
	if u.User != nil {
		// Do not repeat the URL: it holds a password.
		v.report(path, "a broker URL must not carry credentials (put the user in uplink.username and the password in uplink.password_file)")
		return "", false
	}
	if u.Hostname() == "" {
		v.report(path, "%q has no host (%s)", s, like)
		return "", false
	}
	port := u.Port()
	if port == "" {
		v.report(path, "%q has no port (add one, e.g. %s://%s:%s)", s, scheme, u.Host, brokerSchemes[scheme])
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.report(path, "port %q is not 1..65535", port)
		return "", false
	}
	return scheme, true
}

func (v *validator) device(d *Device, path string, devices, tags map[string]string) {
	switch {
	case strings.TrimSpace(d.Name) == "":
		v.missing(path+".name", "a name for the device, unique in the gateway, e.g. PLC-1")
	case devices[d.Name] != "":
		first := devices[d.Name]
		v.report(path+".name", "%q is already the name of %s at line %d (device names must be unique)", d.Name, first, v.line(first+".name"))
	default:
		devices[d.Name] = path
	}
	switch d.Protocol {
	case "":
		v.missing(path+".protocol", "supported: "+strings.Join(protocols, ", "))
	case ProtocolModbusTCP, ProtocolOPCUA, ProtocolModbusRTU, ProtocolModbusRTUTCP, ProtocolGPIO:
	default:
		v.report(path+".protocol", "%q is not supported (supported: %s)", d.Protocol, strings.Join(protocols, ", "))
	}
	if d.Protocol == ProtocolOPCUA {
		// an endpoint URL, checked in validate_opcua.go
	} else if d.Protocol == ProtocolModbusRTU {
		// a serial port, checked in validate_serial.go
	} else if d.Protocol == ProtocolGPIO {
		// no address: the lines are the box's own, checked in validate_gpio.go
	} else if d.Address == "" {
		v.missing(path+".address", "host:port of the device, e.g. 192.168.1.10:502")
	} else if host, port, err := net.SplitHostPort(d.Address); err != nil {
		v.report(path+".address", "%q is not host:port (like 192.168.1.10:502)", d.Address)
	} else if host == "" {
		v.report(path+".address", "%q has no host (like 192.168.1.10:502)", d.Address)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.report(path+".address", "port %q is not 1..65535 (Modbus TCP uses 502)", port)
	}
	if d.UnitID < 0 || d.UnitID > 255 {
		v.report(path+".unit_id", "%d is out of range (0..255)", d.UnitID)
	}
	if d.Interval < Duration(10*time.Millisecond) {
		v.report(path+".interval", "%s is too short (at least 10ms)", d.Interval)
	}
	switch {
	case d.Timeout <= 0:
		v.report(path+".timeout", "%s must be more than 0 and less than interval %s", d.Timeout, d.Interval)
	case d.Timeout >= d.Interval && d.Interval > 0:
		v.report(path+".timeout", "%s is not shorter than interval %s (timeout must be < interval, so a silent device cannot delay the next poll)", d.Timeout, d.Interval)
	}
	if d.MaxGap < 0 || d.MaxGap > 125 {
		v.report(path+".max_gap", "%d is out of range (0..125)", d.MaxGap)
	}
	switch {
	case d.CommLossAfter <= 0:
		v.report(path+".comm_loss_after", "%s must be more than 0 (leave it out for the default %s)", d.CommLossAfter, DefaultCommLossAfter)
	case d.CommLossAfter < d.Interval:
		v.report(path+".comm_loss_after", "%s is shorter than interval %s (it must be at least one interval)", d.CommLossAfter, d.Interval)
	}
	if d.BackoffMax <= 0 {
		v.report(path+".backoff_max", "%s must be more than 0 (leave it out for the default %s)", d.BackoffMax, DefaultBackoffMax)
	}
	if n := d.AlarmFloodLimit; n != nil && (*n < 0 || *n > MaxAlarmFloodLimit) {
		v.report(path+".alarm_flood_limit", "%d is out of range (0..%d alarms a minute; 0 turns flood summarising off, leave it out for the default %d)", *n, MaxAlarmFloodLimit, DefaultAlarmFloodLimit)
	}
	if len(d.Tags) == 0 {
		v.missing(path+".tags", "at least one tag to read")
	}
	for j := range d.Tags {
		v.alarmsMore(&d.Tags[j], fmt.Sprintf("%s.tags[%d].alarms", path, j), d.Interval)
		// a GPIO tag, like an OPC UA tag, has no Modbus area and address
		v.tag(&d.Tags[j], fmt.Sprintf("%s.tags[%d]", path, j), tags, d.Protocol == ProtocolOPCUA || d.Protocol == ProtocolGPIO)
	}
}

var (
	protocols  = []string{ProtocolModbusTCP, ProtocolModbusRTU, ProtocolModbusRTUTCP, ProtocolOPCUA, ProtocolGPIO}
	kinds      = []string{KindTemperature, KindPressure, KindLevel, KindFlow, KindGas, KindDigital, KindCount}
	analog     = []string{KindTemperature, KindPressure, KindLevel, KindFlow, KindGas}
	areas      = []string{AreaCoil, AreaDiscrete, AreaHolding, AreaInput}
	types      = []string{TypeBool, TypeBit, TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeFloat32, TypeFloat64}
	byteOrders = []string{"ABCD", "BADC", "CDAB", "DCBA"}
)

func oneOf(s string, list []string) bool {
	for _, x := range list {
		if s == x {
			return true
		}
	}
	return false
}

// An OPC UA tag (opcua) names a node instead of a Modbus area and address;
// those are checked in validate_opcua.go.
func (v *validator) tag(t *Tag, path string, tags map[string]string, opcua bool) {
	switch {
	case t.Name == "":
		v.missing(path+".name", "the tag number (位号), unique in the gateway, e.g. LT-101")
	case strings.ContainsFunc(t.Name, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == '+' || r == '#'
	}):
		v.report(path+".name", "%q contains a space, '/', '+' or '#' (write it like LT-101)", t.Name)
	case tags[t.Name] != "":
		first := tags[t.Name]
		v.report(path+".name", "%q is already the name of %s at line %d (tag names must be unique in the gateway)", t.Name, first, v.line(first+".name"))
	default:
		tags[t.Name] = path
	}

	switch {
	case t.Kind == "":
		v.missing(path+".kind", "one of "+strings.Join(kinds, ", "))
	case !oneOf(t.Kind, kinds):
		v.report(path+".kind", "%q is not a kind (one of %s)", t.Kind, strings.Join(kinds, ", "))
	}

	register := t.Area == AreaHolding || t.Area == AreaInput
	switch {
	case opcua:
	case t.Area == "":
		v.missing(path+".area", "one of "+strings.Join(areas, ", "))
	case !oneOf(t.Area, areas):
		v.report(path+".area", "%q is not a Modbus area (one of %s)", t.Area, strings.Join(areas, ", "))
	}

	if opcua {
	} else if t.Address == nil {
		v.missing(path+".address", "the 0-based register or coil address, 0..65535")
	} else if *t.Address < 0 || *t.Address > 65535 {
		v.report(path+".address", "%d is out of range (0..65535, 0-based: register 40001 is holding address 0)", *t.Address)
	}

	typeOK := true
	switch {
	case opcua:
		typeOK = false
	case t.Type == "": // no valid area to take a default from: reported there
		typeOK = false
	case !oneOf(t.Type, types):
		v.report(path+".type", "%q is not a type (one of %s)", t.Type, strings.Join(types, ", "))
		typeOK = false
	case (t.Area == AreaCoil || t.Area == AreaDiscrete) && t.Type != TypeBool:
		v.report(path+".type", "%s cannot be read from a %s (coils and discrete inputs hold one bit: use bool)", t.Type, t.Area)
		typeOK = false
	case register && t.Type == TypeBool:
		v.report(path+".type", "bool is for coils and discrete inputs (for one bit of a register use type: bit with bit: 0..15)")
		typeOK = false
	}

	if t.Type == TypeBit {
		if !v.present(path + ".bit") {
			v.missing(path+".bit", "which bit of the register, 0..15, 0 = least significant")
		} else if t.Bit < 0 || t.Bit > 15 {
			v.report(path+".bit", "%d is out of range (0..15, 0 = least significant)", t.Bit)
		}
	} else if v.present(path + ".bit") {
		v.report(path+".bit", "is only used with type: bit (this tag is %s)", t.Type)
	}

	switch {
	case !oneOf(t.Order, byteOrders):
		v.report(path+".order", "%q is not a byte order (one of ABCD, BADC, CDAB, DCBA)", t.Order)
	case v.present(path+".order") && (t.Area == AreaCoil || t.Area == AreaDiscrete):
		v.report(path+".order", "applies to registers only, not to a %s (remove it)", t.Area)
	case typeOK && t.Width() == 1 && (t.Order == "CDAB" || t.Order == "DCBA"):
		v.report(path+".order", "%s swaps registers, but %s is one register (use ABCD or BADC)", t.Order, t.Type)
	}

	if typeOK && register && t.Address != nil && *t.Address >= 0 && *t.Address <= 65535 && *t.Address+t.Width() > 65536 {
		v.report(path+".address", "%d with type %s reads %d registers, past the last address 65535", *t.Address, t.Type, t.Width())
	}

	digital := t.Type == TypeBool || t.Type == TypeBit || (opcua && t.Kind == KindDigital)
	if t.Range == nil {
		if oneOf(t.Kind, analog) {
			v.missing(path+".range", "the engineering range {min, max} of this "+t.Kind+" measurement")
		}
	} else {
		v.rangeOK(path+".range", "min", "max", t.Range.Min, t.Range.Max, "the engineering range")
	}
	if t.Scale != nil {
		switch {
		case digital:
			v.report(path+".scale", "applies to numbers, not to type %s (remove it)", t.Type)
		case t.Range == nil:
			v.report(path+".scale", "needs range (the engineering range the raw values map onto)")
		}
		p := path + ".scale"
		for _, f := range []string{"raw_min", "raw_max"} {
			if !v.present(p + "." + f) {
				v.missing(p+"."+f, "the raw value at range."+f[4:]+", e.g. 4 and 20 for 4-20 mA")
			}
		}
		if v.present(p+".raw_min") && v.present(p+".raw_max") && t.Scale.RawMin == t.Scale.RawMax {
			v.report(p+".raw_max", "%s equals raw_min (they must differ)", num(t.Scale.RawMax))
		}
	}
	if t.Alarms != nil {
		if digital {
			v.digitalAlarms(t, path+".alarms")
		} else {
			v.alarms(t, path+".alarms")
		}
	}
}

// rangeOK checks that both ends of a range are written and ordered.
func (v *validator) rangeOK(path, lo, hi string, loVal, hiVal float64, what string) {
	ok := true
	for _, f := range []string{lo, hi} {
		if !v.present(path + "." + f) {
			v.missing(path+"."+f, what+" needs both "+lo+" and "+hi)
			ok = false
		}
	}
	if ok && loVal >= hiVal {
		v.report(path+"."+hi, "%s %s is not above %s %s (%s must be > %s)", hi, num(hiVal), lo, num(loVal), hi, lo)
	}
}

// alarms checks the thresholds of a numeric tag: ll <= l < h <= hh where
// set.
func (v *validator) alarms(t *Tag, path string) {
	a := t.Alarms
	levels := []struct {
		name string
		val  *float64
	}{{"ll", a.LL}, {"l", a.L}, {"h", a.H}, {"hh", a.HH}}
	prev := -1
	for j, cur := range levels {
		if cur.val == nil {
			continue
		}
		if prev >= 0 {
			lo, hi := levels[prev], cur
			strict := prev <= 1 && j >= 2 // a low level against a high one
			ok := *lo.val <= *hi.val
			if strict {
				ok = *lo.val < *hi.val
			}
			if !ok {
				// Blame the outer level (ll, hh): the inner ones are the
				// first alarms and usually the ones set deliberately.
				if prev == 0 && j != 3 {
					rel, must := "is above", "<="
					if strict {
						rel, must = "is not below", "<"
					}
					v.report(path+"."+lo.name, "%s %s %s %s %s (%s must be %s %s)", lo.name, num(*lo.val), rel, hi.name, num(*hi.val), lo.name, must, hi.name)
				} else {
					rel, must := "is below", ">="
					if strict {
						rel, must = "is not above", ">"
					}
					v.report(path+"."+hi.name, "%s %s %s %s %s (%s must be %s %s)", hi.name, num(*hi.val), rel, lo.name, num(*lo.val), hi.name, must, lo.name)
				}
			}
		}
		prev = j
	}
	if a.Deadband < 0 {
		v.report(path+".deadband", "%s is negative (0 or more, in %s)", num(a.Deadband), unitOr(t.Unit))
	} else if a.H != nil && a.L != nil && *a.H > *a.L && a.Deadband >= *a.H-*a.L {
		v.report(path+".deadband", "%s is not smaller than the gap between l %s and h %s (%s)", num(a.Deadband), num(*a.L), num(*a.H), num(*a.H-*a.L))
	}
	v.delays(a, path)
	// GB/T 50493-2019 5.5.2: the first alarm of a combustible gas detector
	// is set at no more than 25 %LEL, the second at no more than 50 %LEL.
	if t.Kind == KindGas && strings.EqualFold(strings.ReplaceAll(t.Unit, " ", ""), "%LEL") {
		if a.H != nil && *a.H > 25 {
			v.report(path+".h", "first alarm %s %%LEL is above 25 %%LEL (GB/T 50493-2019 5.5.2: 一级报警 <= 25%%LEL)", num(*a.H))
		}
		if a.HH != nil && *a.HH > 50 {
			v.report(path+".hh", "second alarm %s %%LEL is above 50 %%LEL (GB/T 50493-2019 5.5.2: 二级报警 <= 50%%LEL)", num(*a.HH))
		}
	}
}

// digitalAlarms checks the alarms of a bool or bit tag: its value is 0 or
// 1, so it alarms either when on (h: 1) or when off (l: 0), not both.
func (v *validator) digitalAlarms(t *Tag, path string) {
	a := t.Alarms
	const how = "a " + "bool or bit tag alarms with h: 1 (when on) or l: 0 (when off)"
	if a.HH != nil {
		v.report(path+".hh", "is not used on type %s (%s)", t.Type, how)
	}
	if a.LL != nil {
		v.report(path+".ll", "is not used on type %s (%s)", t.Type, how)
	}
	if a.H != nil && *a.H != 1 {
		v.report(path+".h", "%s on type %s never or always trips (%s)", num(*a.H), t.Type, how)
	}
	if a.L != nil && *a.L != 0 {
		v.report(path+".l", "%s on type %s never or always trips (%s)", num(*a.L), t.Type, how)
	}
	if a.H != nil && a.L != nil {
		v.report(path+".l", "set together with h: the tag would always be in alarm (choose one: %s)", how)
	}
	if a.Deadband != 0 {
		v.report(path+".deadband", "is not used on type %s (remove it)", t.Type)
	}
	v.delays(a, path)
}

func (v *validator) delays(a *Alarms, path string) {
	if a.OnDelay < 0 {
		v.report(path+".on_delay", "%s is negative (0 or more)", a.OnDelay)
	}
	if a.OffDelay < 0 {
		v.report(path+".off_delay", "%s is negative (0 or more)", a.OffDelay)
	}
}

func unitOr(u string) string {
	if u == "" {
		return "engineering units"
	}
	return u
}
