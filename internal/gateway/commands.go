package gateway

import (
	"context"
	"fmt"
	"time"

	"hazgate/internal/model"
	"hazgate/uplink"
)

// commandOptions wire the uplink's remote commands (docs/uplink.md §7) to
// this gateway: every command is recorded in the buffer as an event, an
// ack goes to the alarm engine on the pipeline goroutine, read answers
// with the newest durable sample of the tag (the device loops own the
// drivers; an extra poll outside the schedule is not done).
func (g *Gateway) commandOptions() uplink.CommandOptions {
	return uplink.CommandOptions{Record: g.recordCommand, Acker: commandAcker{g}, Reader: latestReader{g}}
}

// latestReader answers the read command from the newest durable sample:
// at most one poll interval old while the device answers; its time says
// how old it is.
type latestReader struct{ g *Gateway }

func (r latestReader) ReadTag(_ context.Context, tag string) (model.Sample, error) {
	latest, _ := r.g.Latest()
	s, ok := latest[tag]
	if !ok {
		if _, known := r.g.Config().TagByName()[tag]; !known {
			return model.Sample{}, fmt.Errorf("no tag %q in this gateway's configuration", tag)
		}
		return model.Sample{}, fmt.Errorf("tag %q has no sample yet", tag)
	}
	return s, nil
}

func (g *Gateway) recordCommand(ev model.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.buf.Append(ctx, []model.Event{ev}, nil); err != nil {
		return fmt.Errorf("record command: %w", err)
	}
	return nil
}

// commandAcker acknowledges alarms for a remote operator through the
// pipeline, which owns the alarm engine and records the acknowledgement.
type commandAcker struct{ g *Gateway }

func (a commandAcker) Ack(tag, level, who string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.g.Ack(ctx, tag, level, who)
}
