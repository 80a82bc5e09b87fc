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
	// Through tagWriter, like the interlocks: a reload may replace the
	// driver of the output's device (reload.go). Alarm outputs are
	// writable tags (the config checks), so wireInterlocks has listed them.
	writers := map[string]drivers.Writer{}
	for tag := range g.rl.writers {
		writers[tag] = tagWriter{g, tag}
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
