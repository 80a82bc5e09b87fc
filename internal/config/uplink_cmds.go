package config

import "time"

// Commands enables remote commands from the platform (docs/uplink.md §7).
// Absent: the gateway subscribes to nothing and accepts no command.
type Commands struct {
	KeyFile string   `yaml:"key_file"` // required: the gateway's HMAC-SHA256 key (at least 32 bytes; surrounding whitespace trimmed)
	Allow   []string `yaml:"allow"`    // required: the commands accepted, of status, resend, read, ack
	Window  Duration `yaml:"window"`   // how far a command's time may be from the gateway's clock; default 2m
}

// CommandNames are the commands a gateway knows. None writes to a field
// device.
var CommandNames = []string{"status", "resend", "read", "ack"}

// DefaultCommandWindow is Commands.Window when not set.
const DefaultCommandWindow = Duration(2 * time.Minute)
