package config

import (
	"fmt"
	"strings"
	"time"
)

// DefaultRateWindow is the window of a rate-of-change alarm.
const DefaultRateWindow = Duration(time.Minute)

// alarmsMore checks and fills the alarm-management settings of a tag:
// colours, the gas preset (which may set h and hh, so it runs before the
// threshold checks), rate of change, deviation and frozen detection.
// interval is the device's poll interval.
func (v *validator) alarmsMore(t *Tag, path string, interval Duration) {
	a := t.Alarms
	if a == nil {
		return
	}
	digital := t.Type == TypeBool || t.Type == TypeBit
	if p := a.Priority; p != nil {
		for _, c := range []struct{ name, val string }{
			{"hh", p.HH}, {"h", p.H}, {"l", p.L}, {"ll", p.LL},
			{"rate_of_change", p.RateOfChange}, {"deviation", p.Deviation}, {"fault", p.Fault},
		} {
			if c.val != "" && !oneOf(c.val, Colours) {
				v.report(path+".priority."+c.name, "%q is not a colour (one of %s)", c.val, strings.Join(Colours, ", "))
			}
		}
	}
	if a.Gas != nil {
		v.gasPreset(t, path)
	}
	if r := a.RateOfChange; r != nil {
		p := path + ".rate_of_change"
		if digital {
			v.report(p, "is not used on type %s (remove it)", t.Type)
		}
		if r.Limit <= 0 {
			v.report(p+".limit", "%s must be more than 0 (%s per minute)", num(r.Limit), unitOr(t.Unit))
		}
		if !v.present(p + ".window") {
			r.Window = DefaultRateWindow
		}
		if r.Window < interval || r.Window <= 0 {
			v.report(p+".window", "%s is shorter than the poll interval %s", r.Window, interval)
		}
	}
	if d := a.Deviation; d != nil {
		p := path + ".deviation"
		switch {
		case d.Tag == "":
			v.missing(p+".tag", "the redundant instrument's tag, e.g. LT-101B")
		case d.Tag == t.Name:
			v.report(p+".tag", "%q is this tag itself (name the other instrument)", d.Tag)
		}
		if d.Limit <= 0 {
			v.report(p+".limit", "%s must be more than 0 (%s)", num(d.Limit), unitOr(t.Unit))
		}
		if d.Delay < 0 {
			v.report(p+".delay", "%s is negative (0 or more)", d.Delay)
		}
	}
	if f := a.Frozen; f != nil {
		p := path + ".frozen"
		if f.After <= 0 {
			v.missing(p+".after", "how long an unchanged value is believed, e.g. 10m")
		} else if f.After < interval {
			v.report(p+".after", "%s is shorter than the poll interval %s", f.After, interval)
		}
		if f.Tolerance < 0 {
			v.report(p+".tolerance", "%s is negative (0 or more, in %s)", num(f.Tolerance), unitOr(t.Unit))
		}
	}
}

// gasPreset applies GB/T 50493-2019 5.5.2 to h (first alarm) and hh
// (second alarm). A combustible preset fills 25 and 50 %LEL; the limits
// themselves are checked, for every %LEL gas tag, in alarms().
func (v *validator) gasPreset(t *Tag, path string) {
	a, g, p := t.Alarms, t.Alarms.Gas, path+".gas"
	if t.Kind != KindGas {
		v.report(p, "applies to kind: gas (this tag is %s)", t.Kind)
		return
	}
	if t.Type == TypeBool || t.Type == TypeBit {
		v.report(p, "needs a measured concentration, not type %s", t.Type)
		return
	}
	fill := func(lim **float64, val float64) {
		if *lim == nil {
			*lim = &val
		}
	}
	switch g.Type {
	case GasCombustible:
		if !strings.EqualFold(strings.ReplaceAll(t.Unit, " ", ""), "%LEL") {
			v.report(p+".type", "combustible gas is measured in %%LEL (set unit: %%LEL; this tag's unit is %q)", t.Unit)
			return
		}
		if g.OEL != nil || g.IDLH != nil {
			v.report(p, "oel and idlh apply to toxic gas (remove them)")
		}
		fill(&a.H, 25)
		fill(&a.HH, 50)
	case GasToxic:
		var first, second float64
		switch {
		case g.OEL != nil:
			if *g.OEL <= 0 {
				v.report(p+".oel", "%s must be more than 0 (%s)", num(*g.OEL), unitOr(t.Unit))
				return
			}
			first, second = *g.OEL, 2**g.OEL
		case g.IDLH != nil:
			if *g.IDLH <= 0 {
				v.report(p+".idlh", "%s must be more than 0 (%s)", num(*g.IDLH), unitOr(t.Unit))
				return
			}
			first, second = *g.IDLH*0.05, *g.IDLH*0.10
		default:
			v.missing(p+".oel", "the occupational exposure limit (or idlh when the detector cannot measure down to the OEL), in "+unitOr(t.Unit))
			return
		}
		if a.H != nil && *a.H > first*(1+1e-12) {
			v.report(path+".h", "first alarm %s is above %s %s (GB/T 50493-2019 5.5.2: 有毒气体一级报警 <= %s)",
				num(*a.H), num(first), unitOr(t.Unit), toxicBasis(g, 1))
		}
		if a.HH != nil && *a.HH > second*(1+1e-12) {
			v.report(path+".hh", "second alarm %s is above %s %s (GB/T 50493-2019 5.5.2: 有毒气体二级报警 <= %s)",
				num(*a.HH), num(second), unitOr(t.Unit), toxicBasis(g, 2))
		}
		fill(&a.H, first)
		fill(&a.HH, second)
	case "":
		v.missing(p+".type", "combustible or toxic")
	default:
		v.report(p+".type", "%q is not a gas type (combustible or toxic)", g.Type)
	}
}

func toxicBasis(g *GasPreset, level int) string {
	if g.OEL != nil {
		return fmt.Sprintf("%d%%OEL", 100*level)
	}
	return fmt.Sprintf("%d%%IDLH", 5*level)
}
