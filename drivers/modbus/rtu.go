package modbus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	gmb "github.com/goburrow/modbus"

	"hazgate/drivers"
	"hazgate/internal/config"
)

// RTUDriver polls (and writes) one Modbus RTU slave. Its requests go
// through the Bus of its line, shared with the other slaves on it. Its
// methods are safe for concurrent use.
type RTUDriver struct {
	*driver
	bus *Bus
}

var (
	_ drivers.Driver = (*RTUDriver)(nil)
	_ drivers.Writer = (*RTUDriver)(nil)
)

// NewRTU checks the device's tags and plans their reads; its requests go
// out on bus with the device's unit id as the slave address. Nothing is
// opened until the first Poll.
func NewRTU(dev config.Device, bus *Bus, log *slog.Logger) (*RTUDriver, error) {
	if bus == nil {
		return nil, fmt.Errorf("modbus device %q: no bus", dev.Name)
	}
	if dev.UnitID < 1 || dev.UnitID > 247 {
		return nil, fmt.Errorf("modbus device %q: slave address %d outside 1..247", dev.Name, dev.UnitID)
	}
	d, err := newCore(dev, log)
	if err != nil {
		return nil, err
	}
	// goburrow's RTU handler is used as the packager only (slave address,
	// CRC, checks); its own serial port is never opened. Each device has
	// its own handler, so the slave address is never shared.
	handler := gmb.NewRTUClientHandler("")
	handler.SlaveId = byte(dev.UnitID)
	l := &busLink{bus: bus, timeout: time.Duration(dev.Timeout)}
	d.link = l
	d.client = gmb.NewClient2(handler, l)
	return &RTUDriver{driver: d, bus: bus}, nil
}

// Bus is the line the device is on.
func (d *RTUDriver) Bus() *Bus { return d.bus }

// busLink is a device's link to its bus.
type busLink struct {
	bus      *Bus
	timeout  time.Duration
	ctx      context.Context
	ex       exchangeInfo
	attached bool
}

func (l *busLink) Send(adu []byte) ([]byte, error) {
	ctx := l.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.attached {
		l.bus.attach()
		l.attached = true
	}
	r := l.bus.do(ctx, adu, l.timeout)
	// The bus counts connections and retries itself; the device sees the
	// round trip on the wire only.
	l.ex = exchangeInfo{rtt: r.ex.rtt}
	return r.frame, r.err
}

func (l *busLink) bind(ctx context.Context) { l.ctx = ctx }
func (l *busLink) last() exchangeInfo       { return l.ex }

// reset does nothing: the bus owner has already drained the line after
// the failure, and the line belongs to every device on it.
func (l *busLink) reset() {}

func (l *busLink) Close() error {
	if !l.attached {
		return nil
	}
	l.attached = false
	return l.bus.detach()
}

// Buses hands out one Bus per line, so that every device naming the same
// serial port, or the same converter address, shares one bus owner. Build
// one per gateway.
type Buses struct {
	log   *slog.Logger
	mu    sync.Mutex
	lines map[string]*Bus
}

// NewBuses returns an empty registry.
func NewBuses(log *slog.Logger) *Buses {
	return &Buses{log: log, lines: map[string]*Bus{}}
}

// For returns the bus of an RTU device (modbus-rtu or modbus-rtu-tcp),
// making it on first use. Line settings come from the first device on the
// line; config validation makes sure the others agree.
func (r *Buses) For(dev config.Device) (*Bus, error) {
	key := dev.BusKey()
	if key == "" {
		return nil, fmt.Errorf("modbus device %q: protocol %q has no bus", dev.Name, dev.Protocol)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.lines[key]; b != nil {
		return b, nil
	}
	var b *Bus
	switch dev.Protocol {
	case config.ProtocolModbusRTU:
		if dev.Serial == nil || dev.Serial.Port == "" {
			return nil, fmt.Errorf("modbus device %q: no serial port", dev.Name)
		}
		b = NewSerialBus(*dev.Serial, r.log)
	default:
		if dev.Address == "" {
			return nil, fmt.Errorf("modbus device %q: no address", dev.Name)
		}
		b = NewTCPBus(dev.Address, dev.Serial, r.log)
	}
	r.lines[key] = b
	return b, nil
}

// All lists the buses made so far, by name.
func (r *Buses) All() []*Bus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Bus, 0, len(r.lines))
	for _, b := range r.lines {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Bus) int { return strings.Compare(a.String(), b.String()) })
	return out
}
