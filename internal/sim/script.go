package sim

import (
	"math"
	"time"
)

// Values are the plant's process values at one moment, by tag name, in the
// units the field instrument puts on the wire before the register encoding:
// level m, temperature loop current mA (not °C: a broken wire has no
// temperature), pressure kPa, gas %LEL, switch and valve 0/1.
type Values map[string]float64

// Period is how often the incident script repeats.
const Period = 90 * time.Second

// Incident is one scripted event, for people watching the demo.
type Incident struct {
	At   time.Duration // offset into each Period
	Text string
}

// Incidents lists what the script does, in order.
func Incidents() []Incident {
	return []Incident{
		{5 * time.Second, "T-101 overfill: LT-101 rises through H (17 m) to HH (18.5 m); LSHH-101 trips, XV-101 closes, the level falls back"},
		{12 * time.Second, "gas leak at the T-101 pump: GT-201 rises through the first (20 %LEL) and second (40 %LEL) alarm, then decays"},
		{40 * time.Second, "broken wire on TT-102: loop current 2.5 mA (sensor fault) for 15 s, then it recovers"},
		{55 * time.Second, "everything normal until the script repeats"},
	}
}

// Normal operating values, in wire units (see Values).
const (
	normalLevel101 = 15.0 // m
	normalLevel102 = 8.2  // m
	normalTemp101  = 28.0 // °C
	normalTemp102  = 22.0 // °C
	normalPress102 = 3.8  // kPa
	normalGas      = 0.4  // %LEL, a detector's usual zero drift
	peakLevel101   = 19.0 // m
	peakGas201     = 48.0 // %LEL
	brokenWire     = 2.5  // mA: below 3.8 mA a 4-20 mA input is a sensor fault
	lshhTrip       = 18.8 // m: where the level switch sits
	tempSpanLow    = 0.0  // °C at 4 mA
	tempSpanHigh   = 100.0
)

// The script's timeline within one period.
const (
	levelRiseFrom = 5 * time.Second
	levelRiseTo   = 15 * time.Second
	levelFallFrom = 22 * time.Second
	levelFallTo   = 37 * time.Second
	gasRiseFrom   = 12 * time.Second
	gasPeakAt     = 20 * time.Second
	gasDecayTau   = 6 * time.Second
	wireBreakFrom = 40 * time.Second
	wireBreakTo   = 55 * time.Second
)

// valuesAt is the plant at t after Start: a pure function of t (and of
// whether the script runs), noise included, so tests need no sleeping.
func (p *Plant) valuesAt(t time.Duration) Values {
	return valuesAt(t, p.opts.Script)
}

func valuesAt(t time.Duration, script bool) Values {
	c := t % Period
	if !script || c < 0 {
		c = 0 // steady normal operation
	}
	step := uint64(t / (100 * time.Millisecond)) // noise changes every update

	level := scriptLevel101(c)
	gas := scriptGas201(c)
	tt102 := milliamps(normalTemp102)
	if c >= wireBreakFrom && c < wireBreakTo {
		tt102 = brokenWire
	}
	valve, lshh := 1.0, 0.0
	// The switch and the valve follow the scripted level, not the noisy
	// one, so they do not chatter at the trip point.
	if level >= lshhTrip {
		lshh = 1
	}
	// XV-101 closes when LSHH-101 trips and opens again once the level is
	// back to normal.
	if c >= tripTime() && c < levelFallTo {
		valve = 0
	}

	return Values{
		LT101:   level + noise(0, step, 0.02),
		LT102:   normalLevel102 + noise(1, step, 0.02),
		TT101:   milliamps(normalTemp101) + noise(2, step, 0.01),
		TT102:   tt102 + noise(3, step, 0.01),
		PT101:   4.0 + 0.5*(level-normalLevel101) + noise(4, step, 0.05),
		PT102:   normalPress102 + noise(5, step, 0.05),
		GT201:   math.Max(0, gas+noise(6, step, 0.3)),
		GT202:   math.Max(0, normalGas+0.25*(gas-normalGas)+noise(7, step, 0.3)),
		GT203:   math.Max(0, normalGas+noise(8, step, 0.3)),
		LSHH101: lshh,
		XV101:   valve,
	}
}

// scriptLevel101 is the T-101 level without noise: normal, a 10 s rise to
// the peak while the inlet is open, a hold, a 15 s fall back to normal.
func scriptLevel101(c time.Duration) float64 {
	switch {
	case c < levelRiseFrom:
		return normalLevel101
	case c < levelRiseTo:
		return lerp(normalLevel101, peakLevel101, frac(c, levelRiseFrom, levelRiseTo))
	case c < levelFallFrom:
		return peakLevel101
	case c < levelFallTo:
		return lerp(peakLevel101, normalLevel101, frac(c, levelFallFrom, levelFallTo))
	}
	return normalLevel101
}

// tripTime is when the rising level reaches the LSHH-101 switch.
func tripTime() time.Duration {
	f := (lshhTrip - normalLevel101) / (peakLevel101 - normalLevel101)
	return levelRiseFrom + time.Duration(f*float64(levelRiseTo-levelRiseFrom))
}

// scriptGas201 is GT-201 without noise: zero drift, a linear rise to the
// peak as the leak grows, then an exponential decay once it is isolated
// and the cloud disperses.
func scriptGas201(c time.Duration) float64 {
	switch {
	case c < gasRiseFrom:
		return normalGas
	case c < gasPeakAt:
		return lerp(normalGas, peakGas201, frac(c, gasRiseFrom, gasPeakAt))
	}
	decay := math.Exp(-float64(c-gasPeakAt) / float64(gasDecayTau))
	return normalGas + (peakGas201-normalGas)*decay
}

// milliamps is the 4-20 mA loop current of a temperature transmitter
// spanned tempSpanLow..tempSpanHigh.
func milliamps(celsius float64) float64 {
	return 4 + 16*(celsius-tempSpanLow)/(tempSpanHigh-tempSpanLow)
}

func lerp(a, b, f float64) float64 { return a + (b-a)*f }

func frac(c, from, to time.Duration) float64 {
	return float64(c-from) / float64(to-from)
}

// noise is a deterministic pseudo-random value in [-amp, amp] for one
// channel at one update step: it looks like measurement noise but keeps
// valuesAt a pure function.
func noise(channel, step uint64, amp float64) float64 {
	x := channel<<40 ^ step
	// splitmix64 finaliser
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	u := float64(x>>11) / float64(1<<53) // [0, 1)
	return amp * (2*u - 1)
}
