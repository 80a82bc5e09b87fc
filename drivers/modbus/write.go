package modbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	gmb "github.com/goburrow/modbus"

	"hazgate/internal/config"
)

// ErrNotWritable is returned for a write to a tag the config does not mark
// writable.
var ErrNotWritable = errors.New("tag is not writable")

// ErrReadBack is returned when the device, read right after a write, does
// not hold the value written.
var ErrReadBack = errors.New("read-back does not match")

// Write sets tag to value (engineering units; 0 or 1 for a coil), then
// reads the tag back and returns an error wrapping ErrReadBack if the
// device does not hold what was written.
//
//   - Only tags marked writable in the config, in the coil or holding area,
//     are written; any other tag is refused with ErrNotWritable before
//     anything is sent. A bit of a register is refused too: writing it
//     would rewrite the other 15 bits, which the device may change at any
//     moment.
//   - A scaled tag is scaled back to raw units (the inverse of the read
//     scaling); a value outside the tag's engineering range is refused.
//     Integer types are rounded to the nearest raw value and refused when
//     they do not fit.
//   - A coil is written with function 5, a one-register value with
//     function 6, a wider one with function 16, in the tag's byte order.
//   - A write is never repeated, whatever happens: the device may have
//     acted on it before its answer was lost. The caller decides.
func (d *driver) Write(ctx context.Context, tag string, value float64) error {
	i, ok := d.index[tag]
	if !ok {
		return fmt.Errorf("modbus device %q: write %s: no such tag", d.dev.Name, tag)
	}
	p := &d.points[i]
	if !p.tag.Writable {
		return fmt.Errorf("modbus device %q: write %s: %w (set writable: true in the config)", d.dev.Name, tag, ErrNotWritable)
	}
	wire, err := p.encodeWrite(value)
	if err != nil {
		return fmt.Errorf("modbus device %q: write %s = %v: %w", d.dev.Name, tag, value, err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	addr := uint16(*p.tag.Address)
	fc, call := writeCall(p.format, addr, wire)
	d.stats.write()
	if _, err := d.roundTrip(ctx, fc, false, call); err != nil {
		d.afterFailure(classify(err, fc))
		return fmt.Errorf("modbus device %q: write %s = %v: %w", d.dev.Name, tag, value, err)
	}
	req := Request{Area: p.area, Address: int(addr), Count: p.format.Size()}
	got, err := d.read(ctx, req)
	if err != nil {
		d.afterFailure(classify(err, functionCode(req.Area)))
		return fmt.Errorf("modbus device %q: write %s = %v: written, but the read-back failed: %w", d.dev.Name, tag, value, err)
	}
	if p.format.Type == Bool {
		if len(got) < 1 || got[0]&1 != wire[0] {
			return fmt.Errorf("modbus device %q: write %s = %v: %w (the coil reads %s)", d.dev.Name, tag, value, ErrReadBack, onOff(got))
		}
		return nil
	}
	if !bytes.Equal(got, wire) {
		held := "?"
		if v, err := p.format.Decode(got); err == nil {
			held = fmt.Sprint(v)
		}
		return fmt.Errorf("modbus device %q: write %s = %v: %w (the device holds raw %s, % x; wrote % x)", d.dev.Name, tag, value, ErrReadBack, held, got, wire)
	}
	return nil
}

func onOff(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	if b[0]&1 == 1 {
		return "on"
	}
	return "off"
}

// afterFailure drops the connection after a failure that leaves the byte
// stream in doubt (everything but an exception answer).
func (d *driver) afterFailure(f failure) {
	if f.kind != failException {
		d.link.reset()
	}
}

// encodeWrite turns an engineering value into the wire bytes of the tag:
// one byte 0/1 for a coil, 2 bytes a register otherwise.
func (p *point) encodeWrite(value float64) ([]byte, error) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return nil, errors.New("not a finite number")
	}
	switch p.area {
	case config.AreaCoil:
		if value != 0 && value != 1 {
			return nil, fmt.Errorf("a coil is 0 or 1, not %v", value)
		}
		return []byte{byte(value)}, nil
	case config.AreaHolding:
	default:
		return nil, fmt.Errorf("%w: a %s cannot be written (only coils and holding registers)", ErrNotWritable, p.area)
	}
	if p.format.Type == Bit {
		return nil, fmt.Errorf("%w: one bit of a register cannot be written without rewriting the other 15 (use a coil or a whole register)", ErrNotWritable)
	}
	raw, err := unscale(value, &p.tag)
	if err != nil {
		return nil, err
	}
	if p.format.Type != Float32 && p.format.Type != Float64 {
		raw = math.Round(raw)
	}
	return p.format.Encode(raw)
}

// unscale is the inverse of drivers.Scale: engineering value to raw.
func unscale(value float64, t *config.Tag) (float64, error) {
	if t.Range == nil {
		return value, nil
	}
	lo, hi := t.Range.Min, t.Range.Max
	if value < lo || value > hi {
		return 0, fmt.Errorf("%v is outside the range %v..%v", value, lo, hi)
	}
	if t.Scale == nil || hi == lo {
		return value, nil
	}
	return t.Scale.RawMin + (value-lo)*(t.Scale.RawMax-t.Scale.RawMin)/(hi-lo), nil
}

// writeCall picks the function for a value's width.
func writeCall(f Format, addr uint16, wire []byte) (byte, func(gmb.Client) ([]byte, error)) {
	switch {
	case f.Type == Bool:
		v := uint16(0)
		if wire[0] == 1 {
			v = 0xFF00
		}
		return gmb.FuncCodeWriteSingleCoil, func(c gmb.Client) ([]byte, error) { return c.WriteSingleCoil(addr, v) }
	case len(wire) == 2:
		v := uint16(wire[0])<<8 | uint16(wire[1])
		return gmb.FuncCodeWriteSingleRegister, func(c gmb.Client) ([]byte, error) { return c.WriteSingleRegister(addr, v) }
	}
	n := uint16(len(wire) / 2)
	return gmb.FuncCodeWriteMultipleRegisters, func(c gmb.Client) ([]byte, error) { return c.WriteMultipleRegisters(addr, n, wire) }
}
