package drivers

import (
	"fmt"
	"math"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Sensor-fault limits as fractions of the span, from NAMUR NE43: a 4-20 mA
// loop below 3.8 mA (1.25% of 16 mA under 4 mA) or above 20.5 mA (3.125%
// over 20 mA) signals a broken or shorted sensor, not a process value. We
// apply the same fractions to any linear signal.
const (
	faultBelow = 1.0 / 80 // 1.25 %
	faultAbove = 1.0 / 32 // 3.125 %
	// slack absorbs float rounding so that a signal exactly at a limit
	// (3.8 mA) counts as inside it.
	slack = 1e-9
)

// Scale turns a raw value into the tag's engineering value and checks it
// for a sensor fault.
//
// With both t.Scale and t.Range set, raw maps linearly from
// [RawMin, RawMax] onto [Range.Min, Range.Max]. With Range set, a signal
// more than 1.25% of the span below the range, or more than 3.125% above
// it, is Bad with reason "sensor fault: signal below range (raw 3.700)"
// (or "above range"); the check is made on the signal before scaling, so
// 3.8 mA itself is good and 3.79 mA is not. A value between the range and
// those limits is kept as it is (no clamping) and Good. Without Range the
// raw value is passed through.
func Scale(raw float64, t *config.Tag) (value float64, q model.Quality, reason string) {
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return raw, model.Bad, model.ReasonDecode + ": not a finite number"
	}
	if t == nil || t.Range == nil {
		return raw, model.Good, ""
	}
	lo, hi := t.Range.Min, t.Range.Max
	if t.Scale != nil {
		lo, hi = t.Scale.RawMin, t.Scale.RawMax
	}
	if hi == lo {
		return raw, model.Bad, model.ReasonOutOfRange + ": empty scale span"
	}
	// position of the signal in its span: 0 at the bottom, 1 at the top
	pos := (raw - lo) / (hi - lo)
	value = raw
	if t.Scale != nil {
		value = t.Range.Min + (raw-lo)*(t.Range.Max-t.Range.Min)/(hi-lo)
	}
	switch {
	case pos < -faultBelow-slack:
		return value, model.Bad, fmt.Sprintf("%s: signal below range (raw %.3f)", model.ReasonSensorFault, raw)
	case pos > 1+faultAbove+slack:
		return value, model.Bad, fmt.Sprintf("%s: signal above range (raw %.3f)", model.ReasonSensorFault, raw)
	}
	return value, model.Good, ""
}
