package opcua

import (
	"context"
	"fmt"
	"math"

	"github.com/gopcua/opcua/ua"
)

// Write sets a writable tag's node to value (engineering units; 0/1 for
// digital tags), then reads it back. The value is written in the node's
// own data type, learnt from a read just before: a server refuses a Double
// written to an Int16 node (BadTypeMismatch). A write that fails is never
// repeated: the server may have acted on it.
func (d *Driver) Write(ctx context.Context, tag string, value float64) error {
	i := -1
	for k, p := range d.points {
		if p.tag.Name == tag {
			i = k
			break
		}
	}
	if i < 0 {
		return fmt.Errorf("opcua device %q: no tag %q", d.dev.Name, tag)
	}
	p := &d.points[i]
	if !p.tag.Writable {
		return fmt.Errorf("opcua device %q: tag %q is not writable (the config must say writable: true)", d.dev.Name, tag)
	}
	raw := value
	if t := p.tag; t.Scale != nil && t.Range != nil && t.Range.Max != t.Range.Min {
		raw = t.Scale.RawMin + (value-t.Range.Min)*(t.Scale.RawMax-t.Scale.RawMin)/(t.Range.Max-t.Range.Min)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.sessionLocked(ctx)
	if err != nil {
		return fmt.Errorf("opcua device %q: write %s: %w", d.dev.Name, tag, err)
	}
	current, err := d.readOne(ctx, s, p)
	if err != nil {
		return fmt.Errorf("opcua device %q: write %s: learn the node's type: %w", d.dev.Name, tag, err)
	}
	v, err := convert(raw, current)
	if err != nil {
		return fmt.Errorf("opcua device %q: write %s = %g: %w", d.dev.Name, tag, value, err)
	}
	res, err := s.client.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
		NodeID:      p.node,
		AttributeID: ua.AttributeIDValue,
		Value:       &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v},
	}}})
	if err != nil {
		d.dropLocked()
		return fmt.Errorf("opcua device %q: write %s = %g: %w", d.dev.Name, tag, value, err)
	}
	if len(res.Results) != 1 {
		return fmt.Errorf("opcua device %q: write %s: server answered %d results", d.dev.Name, tag, len(res.Results))
	}
	if code := res.Results[0]; code != ua.StatusOK {
		return fmt.Errorf("opcua device %q: write %s = %g refused: %s", d.dev.Name, tag, value, statusName(code))
	}
	back, err := d.readOne(ctx, s, p)
	if err != nil {
		return fmt.Errorf("opcua device %q: write %s: read back: %w", d.dev.Name, tag, err)
	}
	got, err := number(back)
	if err != nil {
		return fmt.Errorf("opcua device %q: write %s: read back: %w", d.dev.Name, tag, err)
	}
	want, _ := number(v)
	if !nearlyEqual(got, want) {
		return fmt.Errorf("opcua device %q: write %s: read back %g, wrote %g", d.dev.Name, tag, got, want)
	}
	return nil
}

// nearlyEqual allows the rounding of a float32 node.
func nearlyEqual(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-6*math.Max(math.Abs(a), math.Abs(b))
}

func (d *Driver) readOne(ctx context.Context, s *session, p *point) (*ua.Variant, error) {
	res, err := s.client.Read(ctx, &ua.ReadRequest{
		NodesToRead:        []*ua.ReadValueID{{NodeID: p.node, AttributeID: ua.AttributeIDValue}},
		TimestampsToReturn: ua.TimestampsToReturnNeither,
	})
	if err != nil {
		return nil, err
	}
	if len(res.Results) != 1 {
		return nil, fmt.Errorf("server answered %d results", len(res.Results))
	}
	if q, reason := Quality(res.Results[0].Status); q != 0 {
		return nil, fmt.Errorf("%s", reason)
	}
	return res.Results[0].Value, nil
}

// convert makes a variant of the same type as like holding v, refusing a
// value the type cannot hold.
func convert(v float64, like *ua.Variant) (*ua.Variant, error) {
	if like == nil {
		return nil, fmt.Errorf("the node has no value to take its type from")
	}
	integer := func(lo, hi float64) error {
		if v != math.Trunc(v) || v < lo || v > hi {
			return fmt.Errorf("%g does not fit the node's type %s", v, like.Type())
		}
		return nil
	}
	var out any
	var err error
	switch like.Value().(type) {
	case bool:
		if v != 0 && v != 1 {
			return nil, fmt.Errorf("%g is not 0 or 1 for a Boolean node", v)
		}
		out = v == 1
	case int8:
		err, out = integer(math.MinInt8, math.MaxInt8), int8(v)
	case uint8:
		err, out = integer(0, math.MaxUint8), uint8(v)
	case int16:
		err, out = integer(math.MinInt16, math.MaxInt16), int16(v)
	case uint16:
		err, out = integer(0, math.MaxUint16), uint16(v)
	case int32:
		err, out = integer(math.MinInt32, math.MaxInt32), int32(v)
	case uint32:
		err, out = integer(0, math.MaxUint32), uint32(v)
	case int64:
		err, out = integer(-(1<<53), 1<<53), int64(v)
	case uint64:
		err, out = integer(0, 1<<53), uint64(v)
	case float32:
		out = float32(v)
	case float64:
		out = v
	default:
		return nil, fmt.Errorf("the node holds %T, not a number", like.Value())
	}
	if err != nil {
		return nil, err
	}
	return ua.NewVariant(out)
}
