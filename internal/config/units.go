package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String prints the duration the way time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as a string that UnmarshalYAML reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration with a unit: "500ms", "2s", "1m30s",
// "720h". A bare number is refused (except 0) because "interval: 5" could
// mean seconds or milliseconds, and guessing wrong changes how often a
// device is polled by a factor of a thousand.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration (like 500ms, 2s, 1m), got %s", kindName(n))
	}
	s := strings.TrimSpace(n.Value)
	if tag := n.ShortTag(); tag == "!!int" || tag == "!!float" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == 0 {
			*d = 0
			return nil
		}
		return fmt.Errorf("%s has no unit (write it with one: %ss, %sms or %sm)", s, s, s, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 500ms, 2s, 1m)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Int64 returns the size in bytes.
func (b ByteSize) Int64() int64 { return int64(b) }

// byteUnits are the accepted unit suffixes, matched without regard to case.
// KiB, MiB, GiB, TiB count in 1024s; KB, MB, GB, TB in 1000s.
var byteUnits = []struct {
	name string
	mult int64
}{
	{"B", 1},
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
}

// String prints the size with the largest unit that divides it exactly,
// preferring the 1024-based units: 268435456 prints as "256MiB".
func (b ByteSize) String() string {
	v := int64(b)
	if v == 0 {
		return "0"
	}
	for _, units := range [][]int{{4, 3, 2, 1}, {8, 7, 6, 5}} {
		for _, i := range units {
			u := byteUnits[i]
			if v%u.mult == 0 {
				return strconv.FormatInt(v/u.mult, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(v, 10)
}

// MarshalYAML writes the size as a string that UnmarshalYAML reads back.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalYAML reads a size: a whole number of bytes ("1000", 1000) or a
// whole number with a unit ("64KiB", "256 MiB", "1GiB", "10MB").
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size (like 64KiB, 256MiB, 1GiB), got %s", kindName(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseByteSize reads a size as written in the config file.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	bad := fmt.Errorf("%q is not a size (like 64KiB, 256MiB, 1GiB, 10MB or a whole number of bytes)", s)
	if num == "" {
		return 0, bad
	}
	mult := int64(-1)
	if unit == "" {
		mult = 1
	}
	for _, u := range byteUnits {
		if strings.EqualFold(unit, u.name) {
			mult = u.mult
		}
	}
	if mult < 0 {
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// kindName names a node's kind the way a user thinks of it.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	if n.ShortTag() == "!!null" {
		return "nothing"
	}
	return "a single value"
}
