package opcua

import (
	"strings"
	"testing"

	"github.com/gopcua/opcua/ua"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// TestQuality: the severity bits decide the quality (Part 4, 7.34.1); the
// reason names the code, and info bits do not change the name.
func TestQuality(t *testing.T) {
	cases := []struct {
		code   uint32
		q      model.Quality
		reason string
	}{
		{0x00000000, model.Good, ""},
		{0x00960000, model.Good, ""},                                       // GoodLocalOverride
		{0x00000400, model.Good, ""},                                       // Good with the "overflow" info bit
		{0x40000000, model.Uncertain, "uncertain: Uncertain (0x40000000)"}, //
		{0x40900000, model.Uncertain, "uncertain: UncertainLastUsableValue (0x40900000)"},
		{0x40950000, model.Uncertain, "uncertain: UncertainSubNormal (0x40950000)"},
		{0x80340000, model.Bad, "bad: BadNodeIDUnknown (0x80340000)"},
		{0x80310000, model.Bad, "bad: BadNoCommunication (0x80310000)"},
		{0x80320000, model.Bad, "bad: BadWaitingForInitialData (0x80320000)"},
		{0x80340100, model.Bad, "bad: BadNodeIDUnknown (0x80340100)"}, // info bits kept in the number only
		{0xC0000000, model.Bad, "bad: 0xC0000000"},                    // reserved severity 11 is bad too
		{0x81230000, model.Bad, "bad: 0x81230000"},                    // unknown code
	}
	for _, c := range cases {
		q, reason := Quality(ua.StatusCode(c.code))
		if q != c.q || reason != c.reason {
			t.Errorf("Quality(0x%08X) = %v %q, want %v %q", c.code, q, reason, c.q, c.reason)
		}
	}
}

// TestSample: a DataValue's status, value and type become the sample.
func TestSample(t *testing.T) {
	d := &Driver{dev: config.Device{Name: "R-301"}, points: []point{
		{tag: config.Tag{Name: "TT-301"}},
		{tag: config.Tag{Name: "TT-302", Range: &config.Range{Min: 0, Max: 100}, Scale: &config.Scale{RawMin: 4, RawMax: 20}}},
	}}
	dv := func(v any, status ua.StatusCode) *ua.DataValue {
		return &ua.DataValue{Value: ua.MustVariant(v), Status: status}
	}
	cases := []struct {
		i      int
		dv     *ua.DataValue
		q      model.Quality
		value  float64
		reason string
	}{
		{0, dv(float32(80.5), ua.StatusOK), model.Good, 80.5, ""},
		{0, dv(true, ua.StatusOK), model.Good, 1, ""},
		{0, dv(int16(-3), ua.StatusOK), model.Good, -3, ""},
		{0, dv(uint64(1<<40), ua.StatusOK), model.Good, 1 << 40, ""},
		{0, dv(79.5, ua.StatusUncertain), model.Uncertain, 79.5, "uncertain:"},
		{0, dv(79.5, ua.StatusBadNoCommunication), model.Bad, 0, "bad: BadNoCommunication"},
		{0, dv("hot", ua.StatusOK), model.Bad, 0, "decode error: value of type string is not a number"},
		{0, &ua.DataValue{}, model.Bad, 0, "decode error: no value"},
		{1, dv(12.0, ua.StatusOK), model.Good, 50, ""},                       // 12 mA on 4-20 -> 50
		{1, dv(2.5, ua.StatusOK), model.Bad, -9.375, "sensor fault"},         // broken wire
		{1, dv(2.5, ua.StatusUncertain), model.Bad, -9.375, "sensor fault"},  // the worse of the two wins
		{1, dv(12.0, ua.StatusUncertain), model.Uncertain, 50, "uncertain:"}, //
	}
	for k, c := range cases {
		s := d.sample(c.i, c.dv, testNow)
		if s.Quality != c.q || (c.q != model.Bad && s.Value != c.value) || !strings.HasPrefix(s.Reason, c.reason) {
			t.Errorf("case %d: %+v, want %v %v %q", k, s, c.q, c.value, c.reason)
		}
		if s.Tag != d.points[c.i].tag.Name || s.Device != "R-301" {
			t.Errorf("case %d: sample %+v names the wrong tag or device", k, s)
		}
	}
}

var testNow = mustTime("2026-11-23T10:00:00Z")
