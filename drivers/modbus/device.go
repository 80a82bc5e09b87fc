package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gmb "github.com/goburrow/modbus"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// driver is what every Modbus driver shares, whatever carries its frames
// (TCP, RTU on a serial bus, RTU over TCP): the tags, the read plan, the
// poll with its failure handling, decoding, writes and counters. A driver
// is a device plus a link.
type driver struct {
	dev    config.Device
	log    *slog.Logger
	points []point        // in config order
	names  []string       // tag names in config order
	index  map[string]int // tag name -> index in points
	plan   []Request      // read requests in the order they go out

	mu      sync.Mutex // serialises use of the link
	link    link
	client  gmb.Client // goburrow checks the PDUs; the link carries them
	failing bool       // the last poll failed as a whole (for logging transitions)

	stats statsCounter
}

// link carries one device's frames. It is goburrow's Transporter plus what
// the poll needs: the context of the request in flight and what happened
// to the connection. The driver holds its lock across every use.
type link interface {
	gmb.Transporter
	// bind sets the context of the next Send (nil after it).
	bind(ctx context.Context)
	// last describes the latest Send.
	last() exchangeInfo
	// reset drops what the device can no longer trust after a failure
	// (a TCP connection); it does nothing where the failure is handled
	// below (a shared bus).
	reset()
	// Close releases the link; the next Send opens it again.
	Close() error
}

// exchangeInfo is what a link reports about one request.
type exchangeInfo struct {
	reused bool          // it went out on a connection opened before it
	opened uint64        // connections opened for it
	rtt    time.Duration // from sending the request to the end of the answer; 0 if not measured
}

// point is one tag as the driver reads it.
type point struct {
	tag    config.Tag
	area   string
	format Format
}

// newDevice checks the device's tags and plans their reads.
func newCore(dev config.Device, log *slog.Logger) (*driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if dev.Timeout <= 0 {
		return nil, fmt.Errorf("modbus device %q: timeout must be positive", dev.Name)
	}
	d := &driver{dev: dev, log: log.With("device", dev.Name), index: make(map[string]int, len(dev.Tags))}
	spans := make([]Span, 0, len(dev.Tags))
	for i, tag := range dev.Tags {
		p, err := newPoint(tag)
		if err != nil {
			return nil, fmt.Errorf("modbus device %q: tag %q: %w", dev.Name, tag.Name, err)
		}
		d.points = append(d.points, p)
		d.names = append(d.names, tag.Name)
		d.index[tag.Name] = i
		spans = append(spans, Span{Tag: i, Area: p.area, Address: *tag.Address, Size: p.format.Size()})
	}
	d.plan = Plan(spans, dev.MaxGap)
	return d, nil
}

func newPoint(tag config.Tag) (point, error) {
	if tag.Address == nil {
		return point{}, errors.New("no address")
	}
	p := point{tag: tag, area: tag.Area}
	typ := tag.Type
	switch tag.Area {
	case config.AreaCoil, config.AreaDiscrete:
		if typ == "" {
			typ = config.TypeBool
		}
		if typ != config.TypeBool {
			return p, fmt.Errorf("type %s in %s area: coils and discrete inputs are bool", typ, tag.Area)
		}
	case config.AreaHolding, config.AreaInput:
		if typ == "" {
			typ = config.TypeUint16
		}
		if typ == config.TypeBool {
			return p, fmt.Errorf("type bool in %s area: use bit for one bit of a register", tag.Area)
		}
	default:
		return p, fmt.Errorf("unknown area %q", tag.Area)
	}
	var err error
	if p.format.Type, err = ParseType(typ); err != nil {
		return p, err
	}
	if p.format.Order, err = ParseOrder(tag.Order); err != nil {
		return p, err
	}
	if p.format.Type == Bit {
		if tag.Bit < 0 || tag.Bit > 15 {
			return p, fmt.Errorf("bit %d outside 0..15", tag.Bit)
		}
		p.format.Bit = tag.Bit
	}
	if a := *tag.Address; a < 0 || a+p.format.Size() > 65536 {
		return p, fmt.Errorf("address %d: %s does not fit below 65536", a, p.format.Type)
	}
	return p, nil
}

// Name is the device name.
func (d *driver) Name() string { return d.dev.Name }

// Tags lists the tag names in config order, the order of Poll's samples.
func (d *driver) Tags() []string { return append([]string(nil), d.names...) }

// Requests is the read plan, for diagnostics and tests.
func (d *driver) Requests() []Request { return append([]Request(nil), d.plan...) }

// Poll reads every tag once and returns one sample per tag, in the order of
// Tags. Each sample carries the UTC time its request was answered (or
// failed).
//
//   - An exception answer marks that request's tags bad and the poll goes
//     on over the same connection.
//   - A malformed answer (transaction id mismatch, bad header, fewer
//     registers than asked) marks that request's tags bad, drops the
//     connection, and the poll goes on over a new one; Poll then returns an
//     error so that the scheduler backs off.
//   - A timeout, refused or broken connection marks the tags of that request
//     and of every later one bad with its reason and returns an error.
//   - Once ctx is done no request is started; the tags left are bad with
//     reason "not polled" and Poll returns the context's error.
func (d *driver) Poll(ctx context.Context) ([]model.Sample, error) {
	d.mu.Lock()
	defer d.mu.Unlock()

	out := make([]model.Sample, len(d.points))
	for i, p := range d.points {
		out[i] = model.Sample{Tag: p.tag.Name, Device: d.dev.Name, Quality: model.Bad, Reason: model.ReasonNotPolled}
	}
	var devErr error
	abort := "" // when set, the reason given to every request not yet made
	for _, req := range d.plan {
		if abort == "" && ctx.Err() != nil {
			abort = model.ReasonNotPolled
			devErr = fmt.Errorf("modbus device %q: poll stopped: %w", d.dev.Name, ctx.Err())
		}
		if abort != "" {
			d.markBad(out, req, abort, time.Now().UTC())
			continue
		}
		data, err := d.read(ctx, req)
		at := time.Now().UTC()
		if err != nil {
			f := classify(err, functionCode(req.Area))
			d.markBad(out, req, f.reason, at)
			switch f.kind {
			case failException:
				continue
			case failProtocol:
				d.link.reset() // the link resets on its own failures, not on goburrow's checks
				if devErr == nil {
					devErr = d.requestError(req, err)
				}
				continue
			default:
				d.link.reset()
				abort = f.reason
				if f.kind == failCancelled {
					abort = model.ReasonNotPolled
				}
				devErr = d.requestError(req, err)
			}
			continue
		}
		if want := answerBytes(req); len(data) > want {
			reason := fmt.Sprintf("%s: invalid response: %d bytes for %d bytes asked", model.ReasonConnection, len(data), want)
			d.markBad(out, req, reason, at)
			d.link.reset()
			d.stats.fail(failProtocol, errors.New(reason))
			if devErr == nil {
				devErr = fmt.Errorf("modbus device %q: %s %d+%d: %s", d.dev.Name, req.Area, req.Address, req.Count, reason)
			}
			continue
		}
		if short := d.decode(out, req, data, at); short {
			// fewer values than asked for: the device (or the stream) is off
			d.link.reset()
			d.stats.fail(failProtocol, ErrShort)
			if devErr == nil {
				devErr = fmt.Errorf("modbus device %q: %s %d+%d: short response (%d bytes)", d.dev.Name, req.Area, req.Address, req.Count, len(data))
			}
		}
	}
	d.logOutcome(devErr)
	return out, devErr
}

func (d *driver) requestError(req Request, err error) error {
	return fmt.Errorf("modbus device %q: read %s %d+%d: %w", d.dev.Name, req.Area, req.Address, req.Count, err)
}

func (d *driver) logOutcome(err error) {
	switch {
	case err != nil && !d.failing:
		d.failing = true
		d.log.Warn("modbus poll failed", "err", err)
	case err != nil:
		d.log.Debug("modbus poll failed", "err", err)
	case d.failing:
		d.failing = false
		d.log.Info("modbus device answers again")
	}
}

// read performs one planned request. Reads and writes all go through
// roundTrip.
func (d *driver) read(ctx context.Context, req Request) ([]byte, error) {
	addr, n := uint16(req.Address), uint16(req.Count)
	return d.roundTrip(ctx, functionCode(req.Area), true, func(c gmb.Client) ([]byte, error) {
		switch req.Area {
		case config.AreaCoil:
			return c.ReadCoils(addr, n)
		case config.AreaDiscrete:
			return c.ReadDiscreteInputs(addr, n)
		case config.AreaHolding:
			return c.ReadHoldingRegisters(addr, n)
		case config.AreaInput:
			return c.ReadInputRegisters(addr, n)
		}
		return nil, fmt.Errorf("unknown area %q", req.Area)
	})
}

// roundTrip runs one client call bounded by ctx and counts it. The caller
// holds d.mu.
//
// Devices close idle connections (and reboot), which we only learn when
// the next request on the old connection finds it closed or reset. A read
// (idempotent) that fails that way on a connection it did not open itself
// is tried once more on a new connection, so that an idle close does not
// cost a poll. A write must not be repeated: the device may have acted on
// it before the connection broke.
func (d *driver) roundTrip(ctx context.Context, fc byte, idempotent bool, call func(gmb.Client) ([]byte, error)) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		d.link.bind(ctx)
		start := time.Now()
		data, err := call(d.client)
		rtt := time.Since(start)
		d.link.bind(nil)
		ex := d.link.last()
		if ex.rtt > 0 {
			rtt = ex.rtt
		}
		d.stats.request(rtt, ex.opened)
		if err == nil {
			return data, nil
		}
		f := classify(err, fc)
		d.stats.fail(f.kind, err)
		if idempotent && ex.reused && attempt == 0 && f.kind == failConn {
			d.log.Debug("modbus connection was closed; retrying on a new one", "err", err)
			continue
		}
		return nil, err
	}
}

// decode fills the samples of one answered request. It reports whether the
// answer was shorter than the request (those tags are bad "decode error:
// short response").
func (d *driver) decode(out []model.Sample, req Request, data []byte, at time.Time) (short bool) {
	bits := isBitArea(req.Area)
	short = len(data) < answerBytes(req)
	for _, s := range req.Tags {
		p := &d.points[s.Tag]
		off := req.Offset(s)
		f := p.format
		var raw []byte
		if bits {
			f.Bit = off
			raw = data
		} else if end := 2 * (off + s.Size); end <= len(data) {
			raw = data[2*off : end]
		}
		smp := &out[s.Tag]
		smp.Time = at
		v, err := f.Decode(raw)
		if err != nil {
			smp.Value, smp.Quality, smp.Reason = 0, model.Bad, model.ReasonDecode+": "+err.Error()
			continue
		}
		smp.Value, smp.Quality, smp.Reason = drivers.Scale(v, &p.tag)
	}
	return short
}

// answerBytes is the size of a complete answer's data: 2 bytes per
// register, or the bits packed 8 to a byte.
func answerBytes(req Request) int {
	if isBitArea(req.Area) {
		return (req.Count + 7) / 8
	}
	return 2 * req.Count
}

func (d *driver) markBad(out []model.Sample, req Request, reason string, at time.Time) {
	for _, s := range req.Tags {
		out[s.Tag] = model.Sample{Tag: d.names[s.Tag], Device: d.dev.Name, Quality: model.Bad, Reason: reason, Time: at}
	}
}

// Close releases the connection. Poll may be called again and reconnects.
func (d *driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.link.Close()
}
