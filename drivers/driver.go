// Package drivers defines what every field-protocol driver provides. Each
// protocol lives in its own folder below (drivers/modbus, ...); the
// scheduler owns timing and the pipeline owns what happens to samples.
package drivers

import (
	"context"
	"errors"
	"time"

	"hazgate/internal/model"
)

// Driver reads every tag of one device.
type Driver interface {
	// Name is the device name from the config.
	Name() string
	// Tags lists the names of the tags this driver reads.
	Tags() []string
	// Poll reads every tag once and returns one sample per tag. A tag that
	// could not be read carries Bad quality and a reason. The error is
	// non-nil when the device as a whole failed (refused, timed out, closed
	// the connection): the scheduler then backs off before polling again.
	// Poll must return by the time ctx is done.
	Poll(ctx context.Context) ([]model.Sample, error)
	// Close releases the connection. Poll may be called again afterwards
	// and reconnects.
	Close() error
}

// ErrConnecting marks a Poll that ended while the driver was still
// establishing its connection in the background (an OPC UA session with
// its handshakes and monitored items can take longer than one interval).
// The tags have no value yet, so their samples are bad, but the device is
// not known to be down: the scheduler does not warn about it until the
// connection fails or the device was up before.
var ErrConnecting = errors.New("still connecting")

// BadSamples returns one Bad sample per tag, all with the same reason and
// time: what a device that cannot be read reports.
func BadSamples(device string, tags []string, reason string, at time.Time) []model.Sample {
	out := make([]model.Sample, len(tags))
	for i, t := range tags {
		out[i] = model.Sample{Tag: t, Device: device, Quality: model.Bad, Reason: reason, Time: at}
	}
	return out
}

// Writer is a driver that can write field outputs (coils, registers, OPC UA
// nodes, GPIO lines). Only tags the config marks writable may be written;
// a driver refuses any other tag with an error, whatever the caller asked.
type Writer interface {
	// Write sets tag to value (engineering units; 0/1 for digital tags),
	// then reads it back and returns an error if the device does not hold
	// the written value.
	Write(ctx context.Context, tag string, value float64) error
}
