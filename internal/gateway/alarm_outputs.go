package gateway

import (
	"context"
	"time"

	"hazgate/drivers"
	"hazgate/internal/model"
	"hazgate/rules/alarmout"
)

// wireAlarmOutputs builds the outputs that follow the alarms (beacons,
// horns; config alarm_outputs), written through their devices' drivers.
func (g *Gateway) wireAlarmOutputs() {
	writers := map[string]drivers.Writer{}
	for i, dev := range g.cfg.Devices {
		if w, ok := g.drivers[i].(drivers.Writer); ok {
			for _, t := range dev.Tags {
				writers[t.Name] = w
			}
		}
	}
	g.alarmOuts = alarmout.New(g.cfg.AlarmOutputs, writers, g.pipe.active, alarmout.Options{
		Report: g.recordAlarmOutput,
		Logger: g.log.With("stage", "alarm-outputs"),
	})
}

// runAlarmOutputs drives the alarm outputs until ctx is done.
func (g *Gateway) runAlarmOutputs(ctx context.Context) {
	if g.alarmOuts != nil {
		_ = g.alarmOuts.Run(ctx)
	}
}

// recordAlarmOutput makes an alarm output's failure or recovery an event,
// outside the pipeline like a clock jump: it comes from its own goroutine.
func (g *Gateway) recordAlarmOutput(ev model.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.buf.Append(ctx, []model.Event{ev}, nil); err != nil {
		g.log.Error("record alarm output event", "err", err)
	}
}
