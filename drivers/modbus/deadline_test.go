package modbus

import (
	"context"
	"net"
	"testing"
	"time"

	"hazgate/drivers/modbus/modbustest"
	"hazgate/internal/config"
	"hazgate/internal/model"
)

// A request the device does not answer before the poll's deadline (the
// scheduler's next tick, here earlier than the device timeout) timed out:
// its tags are bad "timeout", never "not polled", whichever of the
// connection deadline and the context's timer fires first. Only a
// cancelled context means "not polled".
func TestPollDeadlineIsATimeout(t *testing.T) {
	srv := modbustest.NewRawServer(t, func(c net.Conn, req modbustest.Request) error {
		if req.Address() == 100 {
			return nil // never answers this one
		}
		time.Sleep(10 * time.Millisecond)
		_, err := c.Write(req.Registers(registerValue(req.Address())))
		return err
	})
	d := newDriver(t, device(srv.Addr, time.Second,
		tag("A", config.AreaHolding, 0, "uint16", ""),
		tag("C", config.AreaHolding, 100, "uint16", "")))
	// The timers race differently from one poll to the next: before the
	// fix about half of these polls said "not polled".
	for i := range 12 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
		samples, err := d.Poll(ctx)
		cancel()
		if err == nil {
			t.Errorf("poll %d: no error", i)
		}
		if s := samples[0]; s.Quality != model.Good || s.Value != 1000 {
			t.Errorf("poll %d: A = %+v, want good 1000", i, s)
		}
		if s := samples[1]; s.Quality != model.Bad || s.Reason != model.ReasonTimeout {
			t.Errorf("poll %d: C = %v %q, want bad %q", i, s.Quality, s.Reason, model.ReasonTimeout)
		}
	}
	if st := d.Stats(); st.Timeouts != 12 {
		t.Errorf("stats %+v: want 12 timeouts", st)
	}
}
