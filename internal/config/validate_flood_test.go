package config

import (
	"strings"
	"testing"
)

// floodDevice is minimal with alarm_flood_limit: LIMIT on the device
// (line 10, the value at column 24), or without the key when limit is "".
func floodDevice(limit string) string {
	key := ""
	if limit != "" {
		key = "    alarm_flood_limit: " + limit + "\n"
	}
	return strings.Replace(minimal, "    address: 127.0.0.1:502\n", "    address: 127.0.0.1:502\n"+key, 1)
}

func TestAlarmFloodLimit(t *testing.T) {
	for _, c := range []struct {
		limit string
		want  int
	}{
		{"", DefaultAlarmFloodLimit},  // absent: the default
		{"~", DefaultAlarmFloodLimit}, // null, like absent
		{"0", 0},                      // explicit 0: summarising off, not the default
		{"25", 25},
		{"1000", 1000},
	} {
		cfg, err := Parse("plant.yaml", []byte(floodDevice(c.limit)))
		if err != nil {
			t.Fatalf("alarm_flood_limit %q: %v", c.limit, err)
		}
		if got := cfg.Devices[0].AlarmFloodLimit; got == nil || *got != c.want {
			t.Errorf("alarm_flood_limit %q: got %v, want %d", c.limit, got, c.want)
		}
	}
	for _, c := range []struct{ limit, want string }{
		{"-1", "plant.yaml:10:24: devices[0].alarm_flood_limit: -1 is out of range (0..1000 alarms a minute; 0 turns flood summarising off, leave it out for the default 10)"},
		{"1001", "plant.yaml:10:24: devices[0].alarm_flood_limit: 1001 is out of range (0..1000 alarms a minute; 0 turns flood summarising off, leave it out for the default 10)"},
		{"lots", "plant.yaml:10:24: devices[0].alarm_flood_limit:"},
	} {
		got := problems(t, floodDevice(c.limit))
		if len(got) != 1 || !strings.HasPrefix(got[0], c.want) {
			t.Errorf("alarm_flood_limit %s: got %q, want %q", c.limit, got, c.want)
		}
	}
}
