package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// OPC UA defaults, as documented in opcua.go.
const (
	DefaultOPCUAMaxNodesPerRead = 500
	DefaultOPCUASessionTimeout  = Duration(60 * time.Second)
	DefaultOPCUAQueueSize       = 1
	// OPCUACertDir is where the gateway keeps its generated application
	// certificate, inside the data directory.
	OPCUACertDir = "opcua"
)

var (
	opcuaPolicies = []string{OPCUAPolicyNone, OPCUAPolicyBasic256Sha256, OPCUAPolicyAes128, OPCUAPolicyAes256}
	opcuaModes    = []string{OPCUAModeNone, OPCUAModeSign, OPCUAModeSignAndEncrypt}
)

// opcua fills in the defaults of every OPC UA device and checks what is
// particular to OPC UA: the endpoint URL, security, login, and the node
// and acquisition of each tag. The checks common to all devices and tags
// (names, kinds, ranges, alarms) are made by device and tag.
func (v *validator) opcua(c *Config) {
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Protocol != ProtocolOPCUA {
			continue
		}
		path := fmt.Sprintf("devices[%d]", i)
		v.opcuaEndpoint(d.Address, path+".address")
		if d.OPCUA == nil {
			d.OPCUA = &OPCUA{}
		}
		v.opcuaSecurity(d, c.Gateway, path+".opcua")
		for j := range d.Tags {
			v.opcuaTag(d, &d.Tags[j], fmt.Sprintf("%s.tags[%d]", path, j))
		}
	}
}

func (v *validator) opcuaEndpoint(addr, path string) {
	const like = "like opc.tcp://10.0.0.7:4840 or opc.tcp://dcs-01:4840/UA/Server"
	if addr == "" {
		v.missing(path, "the server's endpoint URL, "+like)
		return
	}
	u, err := url.Parse(addr)
	switch {
	case err != nil || u.Scheme != "opc.tcp":
		v.report(path, "%q is not an opc.tcp:// endpoint URL (%s)", addr, like)
	case u.User != nil:
		v.report(path, "an endpoint URL must not carry credentials (use opcua.username and opcua.password_file)")
	case u.Hostname() == "":
		v.report(path, "%q has no host (%s)", addr, like)
	case u.Port() == "":
		v.report(path, "%q has no port (OPC UA servers usually listen on 4840: opc.tcp://%s:4840%s)", addr, u.Host, u.Path)
	default:
		if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
			v.report(path, "port %q is not 1..65535", u.Port())
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			v.report(path, "%q: host and port do not parse (%s)", addr, like)
		}
	}
}

func (v *validator) opcuaSecurity(d *Device, g Gateway, path string) {
	o := d.OPCUA
	if o.SecurityPolicy == "" {
		o.SecurityPolicy = OPCUAPolicyNone
	}
	if o.SecurityMode == "" {
		o.SecurityMode = OPCUAModeSignAndEncrypt
		if o.SecurityPolicy == OPCUAPolicyNone {
			o.SecurityMode = OPCUAModeNone
		}
	}
	if o.CertDir == "" {
		o.CertDir = filepath.Join(g.DataDir, OPCUACertDir)
	}
	if o.ApplicationURI == "" {
		o.ApplicationURI = "urn:hazgate:" + g.ID
	}
	if !v.present(path + ".max_nodes_per_read") {
		o.MaxNodesPerRead = DefaultOPCUAMaxNodesPerRead
	}
	if !v.present(path + ".session_timeout") {
		o.SessionTimeout = DefaultOPCUASessionTimeout
	}
	if !v.present(path + ".publish_interval") {
		o.PublishInterval = d.Interval
	}

	policyOK := oneOf(o.SecurityPolicy, opcuaPolicies)
	if !policyOK {
		v.report(path+".security_policy", "%q is not a security policy (one of %s)", o.SecurityPolicy, strings.Join(opcuaPolicies, ", "))
	}
	switch {
	case !oneOf(o.SecurityMode, opcuaModes):
		v.report(path+".security_mode", "%q is not a security mode (one of %s)", o.SecurityMode, strings.Join(opcuaModes, ", "))
	case policyOK && o.SecurityPolicy == OPCUAPolicyNone && o.SecurityMode != OPCUAModeNone:
		v.report(path+".security_mode", "%s needs a security policy (security_policy: Basic256Sha256), None signs nothing", o.SecurityMode)
	case policyOK && o.SecurityPolicy != OPCUAPolicyNone && o.SecurityMode == OPCUAModeNone:
		v.report(path+".security_mode", "None with policy %s would not use it (Sign or SignAndEncrypt, or security_policy: None)", o.SecurityPolicy)
	}
	secure := o.SecurityPolicy != OPCUAPolicyNone
	if secure && o.ServerCertFile == "" && o.TrustDir == "" {
		v.missing(path+".trust_dir", "a folder of trusted server certificates, or server_cert_file: a secure session must know whose certificate to trust")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		v.report(path+".cert_file", "cert_file and key_file go together (leave both out to have the gateway generate its own in %s/%s)", g.DataDir, OPCUACertDir)
	}
	if o.PasswordFile != "" && o.PasswordEnv != "" {
		v.report(path+".password_env", "set together with password_file (choose one)")
	}
	pw := o.PasswordFile != "" || o.PasswordEnv != ""
	switch {
	case pw && o.Username == "":
		v.report(path+".username", "missing (a password needs a user name)")
	case o.Username != "" && !pw:
		v.missing(path+".password_file", "the password of user "+o.Username+" (or password_env)")
	case o.Username != "" && !secure:
		// A None channel would carry the password in the clear unless the
		// server encrypts the token on its own; refuse rather than hope.
		v.report(path+".username", "user name login over security_policy None would expose the password (use Basic256Sha256 with SignAndEncrypt)")
	}
	switch {
	case (o.UserCertFile == "") != (o.UserKeyFile == ""):
		v.report(path+".user_cert_file", "user_cert_file and user_key_file go together (certificate login needs both)")
	case o.UserCertFile != "" && o.Username != "":
		v.report(path+".user_cert_file", "set together with username (choose one way to log in)")
	}
	if o.MaxNodesPerRead < 1 || o.MaxNodesPerRead > 10000 {
		v.report(path+".max_nodes_per_read", "%d is out of range (1..10000)", o.MaxNodesPerRead)
	}
	if o.SessionTimeout < Duration(time.Second) {
		v.report(path+".session_timeout", "%s is too short (at least 1s)", o.SessionTimeout)
	}
	if o.PublishInterval < Duration(10*time.Millisecond) {
		v.report(path+".publish_interval", "%s is too short (at least 10ms)", o.PublishInterval)
	}
}

// opcuaTag checks the OPC UA part of a tag. The Modbus fields have no
// meaning here and are refused, so a tag copied from a Modbus device is
// not silently half-read.
func (v *validator) opcuaTag(d *Device, t *Tag, path string) {
	if t.Node == "" {
		v.missing(path+".node", "the node id, "+nodeIDForm)
	} else if _, err := ParseNodeID(t.Node); err != nil {
		v.report(path+".node", "%v", err)
	}
	for _, f := range []string{"area", "address", "type", "bit", "order"} {
		if v.present(path + "." + f) {
			v.report(path+"."+f, "is a Modbus field; an OPC UA tag names its node (node: ns=2;s=...) and takes its type from the server")
		}
	}
	o := t.OPCUA
	if o == nil {
		return
	}
	p := path + ".opcua"
	if !o.Subscribe {
		for _, f := range []string{"sampling_interval", "queue_size", "deadband_absolute", "deadband_percent"} {
			if v.present(p + "." + f) {
				v.report(p+"."+f, "applies to subscribed tags only (add subscribe: true)")
			}
		}
	}
	if !v.present(p + ".sampling_interval") {
		o.SamplingInterval = d.Interval
	}
	if !v.present(p + ".queue_size") {
		o.QueueSize = DefaultOPCUAQueueSize
	}
	if o.SamplingInterval < 0 {
		v.report(p+".sampling_interval", "%s is negative (0 means as fast as the server can)", o.SamplingInterval)
	}
	if o.QueueSize < 1 || o.QueueSize > 1000 {
		v.report(p+".queue_size", "%d is out of range (1..1000)", o.QueueSize)
	}
	if o.DeadbandAbsolute < 0 {
		v.report(p+".deadband_absolute", "%s is negative", num(o.DeadbandAbsolute))
	}
	if o.DeadbandPercent < 0 || o.DeadbandPercent > 100 {
		v.report(p+".deadband_percent", "%s is out of range (0..100 percent of the node's EURange)", num(o.DeadbandPercent))
	}
	if o.DeadbandAbsolute != 0 && o.DeadbandPercent != 0 {
		v.report(p+".deadband_percent", "set together with deadband_absolute (choose one)")
	}
}
