package config

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ProtocolOPCUA is a device read over OPC UA (opc.tcp). Its address is the
// endpoint URL, e.g. opc.tcp://10.0.0.7:4840/UA/Reactor; its tags name
// nodes instead of Modbus areas and addresses.
const ProtocolOPCUA = "opcua"

// OPC UA security policies (the short names of the policy URIs).
const (
	OPCUAPolicyNone           = "None"
	OPCUAPolicyBasic256Sha256 = "Basic256Sha256"
	OPCUAPolicyAes128         = "Aes128_Sha256_RsaOaep"
	OPCUAPolicyAes256         = "Aes256_Sha256_RsaPss"
)

// OPC UA message security modes.
const (
	OPCUAModeNone           = "None"
	OPCUAModeSign           = "Sign"
	OPCUAModeSignAndEncrypt = "SignAndEncrypt"
)

// OPCUA is how the gateway opens a session with an OPC UA server
// (Device.OPCUA). Everything is optional: without it the gateway connects
// with security None and logs in anonymously.
type OPCUA struct {
	SecurityPolicy string `yaml:"security_policy"` // None (default), Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss
	SecurityMode   string `yaml:"security_mode"`   // None, Sign, SignAndEncrypt; default None with policy None, else SignAndEncrypt

	Username     string `yaml:"username"`      // user name login; empty = anonymous
	PasswordFile string `yaml:"password_file"` // password read from this file (trailing newline trimmed)
	PasswordEnv  string `yaml:"password_env"`  // or from this environment variable

	// UserCertFile and UserKeyFile log in with an X.509 user certificate
	// instead of a user name (PEM or DER; RSA key).
	UserCertFile string `yaml:"user_cert_file"`
	UserKeyFile  string `yaml:"user_key_file"`

	// CertFile and KeyFile are the gateway's application instance
	// certificate and RSA key (PEM or DER). Empty: generated once into
	// <data_dir>/opcua/ and reused on every start, so that a server that
	// trusted it keeps trusting it.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CertDir is where a generated certificate is kept: set by the loader
	// to <gateway.data_dir>/opcua, not written in the file.
	CertDir string `yaml:"-"`

	// The server's certificate must be trusted before a secure session is
	// opened: either pinned (ServerCertFile) or found in TrustDir (a folder
	// of .der/.pem certificates: the server's own or the CA that signed
	// it). One of them is required with a policy other than None.
	ServerCertFile string `yaml:"server_cert_file"`
	TrustDir       string `yaml:"trust_dir"`

	// ApplicationURI names the gateway to the server and goes into the
	// generated certificate; default urn:hazgate:<gateway id>.
	ApplicationURI string `yaml:"application_uri"`

	MaxNodesPerRead int      `yaml:"max_nodes_per_read"` // nodes per Read request; default 500, 1..10000
	SessionTimeout  Duration `yaml:"session_timeout"`    // default 60s
	// PublishInterval is the subscription's publishing interval; default
	// the device interval.
	PublishInterval Duration `yaml:"publish_interval"`
}

// TagOPCUA is how one OPC UA tag is acquired (Tag.OPCUA). Without it the
// tag is read by polling at the device interval.
type TagOPCUA struct {
	// Subscribe reads the tag through a monitored item instead of polling:
	// the server reports changes, the gateway passes on the latest value at
	// every device interval.
	Subscribe bool `yaml:"subscribe"`
	// SamplingInterval asks the server to sample this often; default the
	// device interval; 0 = as fast as the server can.
	SamplingInterval Duration `yaml:"sampling_interval"`
	// QueueSize is how many changes the server keeps between publishes;
	// default 1 (latest only).
	QueueSize int `yaml:"queue_size"`
	// DeadbandAbsolute (engineering units of the server) or DeadbandPercent
	// (of the node's EURange) suppress changes smaller than it. At most
	// one; default none.
	DeadbandAbsolute float64 `yaml:"deadband_absolute"`
	DeadbandPercent  float64 `yaml:"deadband_percent"`
}

// NodeID is an OPC UA node id as written in the config: namespace index
// and one identifier (numeric, string, GUID or opaque). It is parsed at
// load so a typo is reported with its line, not at the first poll.
type NodeID struct {
	Namespace uint16
	Kind      byte   // 'i' numeric, 's' string, 'g' GUID, 'b' opaque (base64)
	Numeric   uint32 // for 'i'
	Text      string // for 's', 'g' (canonical upper-case form) and 'b' (base64 as written)
}

// String writes the id in the standard text form, ns=2;s=Reactor.TT-301;
// ns=0 is left out, as OPC UA tools do.
func (n NodeID) String() string {
	var id string
	if n.Kind == 'i' {
		id = "i=" + strconv.FormatUint(uint64(n.Numeric), 10)
	} else {
		id = string(n.Kind) + "=" + n.Text
	}
	if n.Namespace == 0 {
		return id
	}
	return "ns=" + strconv.FormatUint(uint64(n.Namespace), 10) + ";" + id
}

// nodeIDForm is what ParseNodeID's errors suggest.
const nodeIDForm = "write it like ns=2;s=Reactor.TT-301 or ns=3;i=1001: ns=<index>; then i=<number>, s=<text>, g=<GUID> or b=<base64>"

// ParseNodeID parses the standard text form of a node id (OPC UA Part 6,
// 5.3.1.10): [ns=<0..65535>;]<i|s|g|b>=<identifier>. The namespace URI
// form (nsu=) is not accepted: indexes are what a server's address space
// shows and what the config pins.
func ParseNodeID(s string) (NodeID, error) {
	var n NodeID
	rest := s
	if strings.HasPrefix(rest, "nsu=") {
		return n, fmt.Errorf("%q uses a namespace URI (nsu=); use the namespace index ns=<n> as `hazgate opcua browse` shows it", s)
	}
	if strings.HasPrefix(rest, "ns=") {
		nsText, after, ok := strings.Cut(rest[3:], ";")
		if !ok {
			return n, fmt.Errorf("%q: no ';' after the namespace (%s)", s, nodeIDForm)
		}
		ns, err := strconv.ParseUint(nsText, 10, 16)
		if err != nil || nsText == "" || nsText[0] == '+' {
			return n, fmt.Errorf("%q: namespace %q is not 0..65535 (%s)", s, nsText, nodeIDForm)
		}
		n.Namespace, rest = uint16(ns), after
	}
	if len(rest) < 2 || rest[1] != '=' {
		return n, fmt.Errorf("%q: no identifier (%s)", s, nodeIDForm)
	}
	n.Kind, rest = rest[0], rest[2:]
	switch n.Kind {
	case 'i':
		v, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || rest == "" || rest[0] == '+' {
			return n, fmt.Errorf("%q: numeric identifier %q is not 0..4294967295 (%s)", s, rest, nodeIDForm)
		}
		n.Numeric = uint32(v)
	case 's':
		if rest == "" {
			return n, fmt.Errorf("%q: empty string identifier (%s)", s, nodeIDForm)
		}
		if !utf8.ValidString(rest) || strings.ContainsFunc(rest, unicode.IsControl) {
			return n, fmt.Errorf("%q: string identifier has control characters or is not UTF-8", s)
		}
		if len(rest) > 4096 {
			return n, fmt.Errorf("string identifier of %d bytes is too long (at most 4096)", len(rest))
		}
		n.Text = rest
	case 'g':
		if !guidForm.MatchString(rest) {
			return n, fmt.Errorf("%q: GUID %q is not 8-4-4-4-12 hex digits (like g=72962B91-FA75-4AE6-8D28-B404DC7DAF63)", s, rest)
		}
		n.Text = strings.ToUpper(rest)
	case 'b':
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(raw) == 0 {
			return n, fmt.Errorf("%q: opaque identifier %q is not base64 (%s)", s, rest, nodeIDForm)
		}
		if len(raw) > 4096 {
			return n, fmt.Errorf("opaque identifier of %d bytes is too long (at most 4096)", len(raw))
		}
		n.Text = base64.StdEncoding.EncodeToString(raw)
	default:
		return n, fmt.Errorf("%q: identifier type %q is not i, s, g or b (%s)", s, string(n.Kind), nodeIDForm)
	}
	return n, nil
}

var guidForm = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
