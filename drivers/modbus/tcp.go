// Package modbus is hazgate's Modbus TCP driver: it plans the fewest read
// requests that cover a device's tags, polls them over one connection,
// decodes every type and byte order the config allows, and reports each
// tag's value with a quality and a reason.
//
// Frames and PDUs are goburrow/modbus v0.1.0; the TCP exchange is our own
// (see transport) so that a late reply can never be taken for the answer
// to a later request.
package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	gmb "github.com/goburrow/modbus"

	"hazgate/drivers"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// TCPDriver polls one Modbus TCP device. Its methods are safe for
// concurrent use; requests to the device are serialised.
type TCPDriver struct {
	dev    config.Device
	log    *slog.Logger
	points []point   // in config order
	names  []string  // tag names in config order
	plan   []Request // read requests in the order they go out

	mu      sync.Mutex // serialises use of the connection
	tr      *transport
	client  gmb.Client
	failing bool // the last poll failed as a whole (for logging transitions)

	stats statsCounter
}

// point is one tag as the driver reads it.
type point struct {
	tag    config.Tag
	area   string
	format Format
}

var _ drivers.Driver = (*TCPDriver)(nil)

// NewTCP checks the device's tags and plans their reads. It does not
// connect: the first Poll does.
func NewTCP(dev config.Device, log *slog.Logger) (*TCPDriver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if dev.Address == "" {
		return nil, fmt.Errorf("modbus device %q: no address", dev.Name)
	}
	if dev.Timeout <= 0 {
		return nil, fmt.Errorf("modbus device %q: timeout must be positive", dev.Name)
	}
	if dev.UnitID < 0 || dev.UnitID > 255 {
		return nil, fmt.Errorf("modbus device %q: unit id %d outside 0..255", dev.Name, dev.UnitID)
	}
	d := &TCPDriver{dev: dev, log: log.With("device", dev.Name)}
	spans := make([]Span, 0, len(dev.Tags))
	for i, tag := range dev.Tags {
		p, err := newPoint(tag)
		if err != nil {
			return nil, fmt.Errorf("modbus device %q: tag %q: %w", dev.Name, tag.Name, err)
		}
		d.points = append(d.points, p)
		d.names = append(d.names, tag.Name)
		spans = append(spans, Span{Tag: i, Area: p.area, Address: *tag.Address, Size: p.format.Size()})
	}
	d.plan = Plan(spans, dev.MaxGap)

	// The handler frames and verifies (MBAP header, transaction, protocol
	// and unit id); its own Send is never called, our transport is.
	handler := gmb.NewTCPClientHandler(dev.Address)
	handler.Timeout = time.Duration(dev.Timeout)
	handler.SlaveId = byte(dev.UnitID)
	handler.IdleTimeout = 0
	d.tr = &transport{address: dev.Address, timeout: time.Duration(dev.Timeout)}
	d.client = gmb.NewClient2(handler, d.tr)
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
func (d *TCPDriver) Name() string { return d.dev.Name }

// Tags lists the tag names in config order, the order of Poll's samples.
func (d *TCPDriver) Tags() []string { return append([]string(nil), d.names...) }

// Requests is the read plan, for diagnostics and tests.
func (d *TCPDriver) Requests() []Request { return append([]Request(nil), d.plan...) }

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
func (d *TCPDriver) Poll(ctx context.Context) ([]model.Sample, error) {
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
				d.tr.Close() // transport closes on its own failures, not on goburrow's checks
				if devErr == nil {
					devErr = d.requestError(req, err)
				}
				continue
			default:
				d.tr.Close()
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
			d.tr.Close()
			d.stats.fail(failProtocol, reason)
			if devErr == nil {
				devErr = fmt.Errorf("modbus device %q: %s %d+%d: %s", d.dev.Name, req.Area, req.Address, req.Count, reason)
			}
			continue
		}
		if short := d.decode(out, req, data, at); short {
			// fewer values than asked for: the device (or the stream) is off
			d.tr.Close()
			d.stats.fail(failProtocol, "short response")
			if devErr == nil {
				devErr = fmt.Errorf("modbus device %q: %s %d+%d: short response (%d bytes)", d.dev.Name, req.Area, req.Address, req.Count, len(data))
			}
		}
	}
	d.logOutcome(devErr)
	return out, devErr
}

func (d *TCPDriver) requestError(req Request, err error) error {
	return fmt.Errorf("modbus device %q: read %s %d+%d: %w", d.dev.Name, req.Area, req.Address, req.Count, err)
}

func (d *TCPDriver) logOutcome(err error) {
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

// read performs one planned request. It is the one place requests go
// through (a future Write takes the same path through roundTrip).
func (d *TCPDriver) read(ctx context.Context, req Request) ([]byte, error) {
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
func (d *TCPDriver) roundTrip(ctx context.Context, fc byte, idempotent bool, call func(gmb.Client) ([]byte, error)) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		reused := d.tr.conn != nil
		opened := d.tr.opened
		d.tr.ctx = ctx
		start := time.Now()
		data, err := call(d.client)
		rtt := time.Since(start)
		d.tr.ctx = nil
		d.stats.request(rtt, d.tr.opened-opened)
		if err == nil {
			return data, nil
		}
		f := classify(err, fc)
		d.stats.fail(f.kind, err.Error())
		if idempotent && reused && attempt == 0 && f.kind == failConn {
			d.log.Debug("modbus connection was closed; retrying on a new one", "err", err)
			continue
		}
		return nil, err
	}
}

// decode fills the samples of one answered request. It reports whether the
// answer was shorter than the request (those tags are bad "decode error:
// short response").
func (d *TCPDriver) decode(out []model.Sample, req Request, data []byte, at time.Time) (short bool) {
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

func (d *TCPDriver) markBad(out []model.Sample, req Request, reason string, at time.Time) {
	for _, s := range req.Tags {
		out[s.Tag] = model.Sample{Tag: d.names[s.Tag], Device: d.dev.Name, Quality: model.Bad, Reason: reason, Time: at}
	}
}

// Close drops the connection. Poll may be called again and reconnects.
func (d *TCPDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tr.Close()
}

// failure is a sorted request error with the reason its tags get.
type failure struct {
	kind   failKind
	reason string
}

// functionCode is the read function of an area.
func functionCode(area string) byte {
	switch area {
	case config.AreaCoil:
		return gmb.FuncCodeReadCoils
	case config.AreaDiscrete:
		return gmb.FuncCodeReadDiscreteInputs
	case config.AreaHolding:
		return gmb.FuncCodeReadHoldingRegisters
	case config.AreaInput:
		return gmb.FuncCodeReadInputRegisters
	}
	return 0
}

// classify sorts the error of a request with function code fc and words
// the reason for the samples in the terms of model.Reason*.
func classify(err error, fc byte) failure {
	var te *transportError
	if errors.As(err, &te) {
		switch te.kind {
		case failTimeout:
			return failure{te.kind, model.ReasonTimeout}
		case failRefused:
			return failure{te.kind, model.ReasonConnRefused}
		case failCancelled:
			return failure{te.kind, model.ReasonNotPolled}
		case failProtocol:
			return failure{te.kind, model.ReasonConnection + ": invalid response: " + te.err.Error()}
		}
		return failure{te.kind, model.ReasonConnection + ": " + connDetail(te)}
	}
	var me *gmb.ModbusError
	if errors.As(err, &me) {
		if me.FunctionCode != fc|0x80 {
			// goburrow takes any other function code for an exception
			return failure{failProtocol, fmt.Sprintf("%s: invalid response: function code %d", model.ReasonConnection, me.FunctionCode)}
		}
		return failure{failException, fmt.Sprintf("%s: %d (%s)", model.ReasonException, me.ExceptionCode, exceptionName(me.ExceptionCode))}
	}
	// Everything else comes from goburrow's checks of an answer that did
	// arrive: wrong transaction or unit id, inconsistent lengths, an
	// unexpected function code.
	msg := strings.TrimPrefix(err.Error(), "modbus: ")
	if strings.Contains(msg, "transaction id") {
		return failure{failProtocol, model.ReasonTransactionMismatch}
	}
	return failure{failProtocol, model.ReasonConnection + ": invalid response: " + msg}
}

func connDetail(te *transportError) string {
	switch {
	case errors.Is(te.err, io.EOF), errors.Is(te.err, io.ErrUnexpectedEOF):
		return "closed by device during " + te.op
	case errors.Is(te.err, syscall.ECONNRESET):
		return "reset by device during " + te.op
	}
	return te.Error()
}

func exceptionName(code byte) string {
	switch code {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 8:
		return "memory parity error"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target device failed to respond"
	}
	return "unknown"
}

// Stats are a driver's counters since it was made.
type Stats struct {
	Requests      uint64        // requests sent (or attempted)
	Errors        uint64        // requests that failed, for any reason
	Timeouts      uint64        // of those: no answer within the timeout
	Exceptions    uint64        // of those: exception answers
	Reconnects    uint64        // connections opened after the first
	LastError     string        // the latest failure, "" if none
	LastErrorAt   time.Time     // when it happened (UTC)
	LastRoundTrip time.Duration // duration of the latest request
}

// Stats returns a snapshot of the driver's counters.
func (d *TCPDriver) Stats() Stats { return d.stats.snapshot() }

type statsCounter struct {
	mu     sync.Mutex
	s      Stats
	opened uint64
}

func (c *statsCounter) request(rtt time.Duration, opened uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Requests++
	c.s.LastRoundTrip = rtt
	for range opened {
		if c.opened > 0 {
			c.s.Reconnects++
		}
		c.opened++
	}
}

func (c *statsCounter) fail(kind failKind, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Errors++
	switch kind {
	case failTimeout:
		c.s.Timeouts++
	case failException:
		c.s.Exceptions++
	}
	c.s.LastError = msg
	c.s.LastErrorAt = time.Now().UTC()
}

func (c *statsCounter) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}
