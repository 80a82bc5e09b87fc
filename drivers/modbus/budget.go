package modbus

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"hazgate/internal/config"
)

// Frame sizes on an RTU line, in characters: slave address, function code,
// CRC (2) around the PDU.
const (
	rtuReadRequest = 8 // address, function, start (2), quantity (2), CRC (2)
	rtuReadAnswer  = 5 // address, function, byte count, CRC (2), plus the data
)

// LineLoad is the share of an RTU line's time that the configured polls
// need, worked out from the frames on the wire.
type LineLoad struct {
	Bus      string        // "serial /dev/ttyS1" or "rtu-tcp host:port"
	Line     string        // "9600 8E1"
	Devices  int           // devices on the line
	Requests int           // read requests in one poll of every device
	Busy     time.Duration // line time of one second of polling
	// WithSilentSlave is Busy when the slave that costs most stops
	// answering: its first request then waits its timeout every interval
	// instead of the device's frames.
	WithSilentSlave time.Duration
	SilentSlave     string // that device
}

// Load is Busy as a share of the line's time (1 = fully used).
func (l LineLoad) Load() float64 { return l.Busy.Seconds() }

// Warnings words the load as the operator reads it; none when the line has
// room for it.
func (l LineLoad) Warnings() []string {
	var w []string
	if l.Busy > time.Second {
		w = append(w, fmt.Sprintf("%s (%s): the %d devices need %.0f%% of the line's time (%v of line time every second for %d requests a round): polls will overrun; raise the intervals or the baud rate, or move devices to another line",
			l.Bus, l.Line, l.Devices, 100*l.Busy.Seconds(), l.Busy.Round(time.Millisecond), l.Requests))
	}
	if l.Busy <= time.Second && l.WithSilentSlave > time.Second {
		w = append(w, fmt.Sprintf("%s (%s): if %s stops answering, the line needs %.0f%% of its time (its timeout every interval): the other devices' polls will overrun; shorten its timeout or lengthen its interval",
			l.Bus, l.Line, l.SilentSlave, 100*l.WithSilentSlave.Seconds()))
	}
	return w
}

// LineLoads works out the load of every RTU line in cfg whose baud rate is
// known (modbus-rtu, and modbus-rtu-tcp with serial settings). Per request
// it counts the request and answer frames at the line's bits per
// character (11 for 8E1) and a silent interval after each, reads
// coalesced as the driver plans them. Devices whose tags do not plan
// (invalid) are left out: validation reports them.
func LineLoads(cfg *config.Config) []LineLoad {
	type cost struct {
		name           string
		normal, silent time.Duration // line time per second
	}
	byBus := map[string]*LineLoad{}
	costs := map[string][]cost{}
	var order []string
	perSecond := func(d time.Duration, interval config.Duration) time.Duration {
		return time.Duration(float64(d) * float64(time.Second) / float64(interval))
	}
	for _, dev := range cfg.Devices {
		key := dev.BusKey()
		if key == "" || dev.Serial == nil || dev.Serial.Baud <= 0 || dev.Interval <= 0 {
			continue
		}
		d, err := newCore(dev, nil)
		if err != nil {
			continue
		}
		s := *dev.Serial
		l := byBus[key]
		if l == nil {
			l = &LineLoad{Bus: key, Line: fmt.Sprintf("%d %d%s%d", s.Baud, s.DataBits, s.Parity, s.StopBits)}
			byBus[key] = l
			order = append(order, key)
		}
		var poll time.Duration
		for _, r := range d.plan {
			chars := rtuReadRequest + rtuReadAnswer + answerBytes(r)
			poll += time.Duration(chars)*s.CharTime() + 2*s.Silence() + s.TurnAround()
		}
		// A silent slave: its first request goes out and waits the
		// timeout; the poll stops there.
		silent := time.Duration(rtuReadRequest)*s.CharTime() + s.Silence() + s.TurnAround() + time.Duration(dev.Timeout)
		c := cost{dev.Name, perSecond(poll, dev.Interval), perSecond(silent, dev.Interval)}
		costs[key] = append(costs[key], c)
		l.Devices++
		l.Requests += len(d.plan)
		l.Busy += c.normal
	}
	out := make([]LineLoad, 0, len(order))
	for _, k := range order {
		l := *byBus[k]
		for _, c := range costs[k] {
			if w := l.Busy - c.normal + c.silent; w > l.WithSilentSlave {
				l.WithSilentSlave, l.SilentSlave = w, c.name
			}
		}
		out = append(out, l)
	}
	slices.SortStableFunc(out, func(a, b LineLoad) int { return cmp.Compare(b.Busy, a.Busy) })
	return out
}
