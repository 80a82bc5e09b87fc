package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Compression settings of uplink.compression.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// uplinkCommands checks uplink.commands and the delivery options, and
// fills in their defaults.
func (v *validator) uplinkCommands(c *Config) {
	u := &c.Uplink
	switch u.Compression {
	case "":
		u.Compression = CompressionNone
	case CompressionNone, CompressionGzip, CompressionZstd:
	default:
		v.report("uplink.compression", "%q is not a compression (use none, gzip or zstd)", u.Compression)
	}
	if d := time.Duration(u.BatchInterval); d < 0 || d > time.Minute {
		v.report("uplink.batch_interval", "%s is outside 0..1m (how long a data message may wait to fill batch_max)", d)
	}
	if u.ReplayRate < 0 || u.ReplayRate > 1000000 {
		v.report("uplink.replay_rate", "%d is outside 0..1000000 samples per second (0 = no limit)", u.ReplayRate)
	}
	cmds := c.Uplink.Commands
	if cmds == nil {
		return
	}
	const path = "uplink.commands"
	if cmds.KeyFile == "" {
		v.missing(path+".key_file", "a file holding this gateway's HMAC key, e.g. /etc/hazgate/command.key (make one with: head -c 32 /dev/urandom | base64 > FILE)")
	}
	if len(cmds.Allow) == 0 {
		v.missing(path+".allow", "the commands to accept, e.g. [status, resend]; known: "+strings.Join(CommandNames, ", "))
	}
	seen := map[string]bool{}
	for i, name := range cmds.Allow {
		p := fmt.Sprintf("%s.allow[%d]", path, i)
		switch {
		case !slices.Contains(CommandNames, name):
			v.report(p, "%q is not a command (use one of %s)", name, strings.Join(CommandNames, ", "))
		case seen[name]:
			v.report(p, "%q is listed twice (remove one)", name)
		}
		seen[name] = true
	}
	if cmds.Window == 0 {
		cmds.Window = DefaultCommandWindow
	} else if d := time.Duration(cmds.Window); d < 10*time.Second || d > time.Hour {
		v.report(path+".window", "%s is outside 10s..1h (a command older or newer than this is refused; the clocks must agree within it)", d)
	}
}
