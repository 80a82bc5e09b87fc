package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/version"
	"hazgate/internal/web"
)

// newWeb builds the status page server when the config enables it; it
// only reads the gateway through webSnapshot, at request time.
func (g *Gateway) newWeb() error {
	if !g.cfg.Web.On() {
		return nil
	}
	opts := web.Options{Config: g.cfg.Web, Source: g.webSnapshot, Operator: webOperator{g}, Logger: g.log.With("stage", "web")}
	if g.cfg.History.On() {
		opts.History = historyReader{g} // history.go
	}
	s, err := web.New(opts)
	if err != nil {
		return err
	}
	g.web = s
	return nil
}

// runWeb serves the status page until ctx is done; the returned channel
// is closed when the server has stopped. Without a server it is closed at
// once.
func (g *Gateway) runWeb(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if g.web == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if err := g.web.Run(ctx); err != nil {
			// the status page is a view: acquisition goes on without it
			g.log.Error("status page stopped", "err", err)
		}
	}()
	return done
}

// WebURL is the status page's address while it is served, else "".
func (g *Gateway) WebURL() string {
	if g.web == nil {
		return ""
	}
	return g.web.URL()
}

// webSnapshot is the status page's view of the gateway.
func (g *Gateway) webSnapshot() web.Snapshot {
	st := g.Status()
	cfg := g.Config() // may be newer than st after a reload: matched by name below
	latest, commit := g.Latest()
	s := web.Snapshot{
		Now: time.Now(), GatewayID: cfg.Gateway.ID, Version: version.Version,
		ConfigHash: shortHash16(cfg.Hash()), Uptime: st.Uptime,
		Uplink: g.up.Stats(), Buffer: st.Buffer, Active: st.Active, Interlocks: st.Interlocks,
		Commit: web.Commit{At: commit.At, Err: commit.Err},
	}
	s.Uplink.Connected = st.Connected
	if h := g.History(); h.Enabled {
		s.History = &web.HistoryStats{Store: h.Store, Writer: h.Writer}
	}
	for i, dev := range cfg.Devices {
		d := web.Device{Name: dev.Name, Protocol: dev.Protocol, Address: dev.Address,
			Interval: dev.Interval.D(), Timeout: dev.Timeout.D()}
		if i < len(st.Devices) && st.Devices[i].Name == dev.Name {
			d.Stats = st.Devices[i].Stats
		}
		for _, t := range dev.Tags {
			smp, ok := latest[t.Name]
			d.Tags = append(d.Tags, web.Tag{
				Name: t.Name, Description: t.Description, Unit: t.Unit, Kind: t.Kind,
				Digital: t.Kind == config.KindDigital || slices.Contains([]string{config.TypeBool, config.TypeBit}, t.Type),
				Sample:  smp, HasSample: ok,
			})
		}
		s.Devices = append(s.Devices, d)
	}
	return s
}

// webOperator lets the status page and the local CLI acknowledge and
// shelve alarms and reset or bypass interlocks through the pipeline,
// which records each as an event with who and when. A gateway that is not
// running answers as unavailable rather than as an internal error.
type webOperator struct{ g *Gateway }

func (o webOperator) Ack(ctx context.Context, tag, level, who string) error {
	return unavailable(o.g.Ack(ctx, tag, level, who))
}

func (o webOperator) ResetInterlock(ctx context.Context, name, who string) error {
	return unavailable(o.g.ResetInterlock(ctx, name, who))
}

func (o webOperator) Bypass(ctx context.Context, name, who, reason string, d time.Duration) error {
	return unavailable(o.g.Bypass(ctx, name, who, reason, d))
}

func (o webOperator) Unbypass(ctx context.Context, name, who string) error {
	return unavailable(o.g.Unbypass(ctx, name, who))
}

func (o webOperator) Shelve(ctx context.Context, tag, level, who, reason string, d time.Duration) error {
	return unavailable(o.g.Shelve(ctx, tag, level, who, reason, d))
}

func (o webOperator) Unshelve(ctx context.Context, tag, level, who string) error {
	return unavailable(o.g.Unshelve(ctx, tag, level, who))
}

func unavailable(err error) error {
	if errors.Is(err, ErrNotRunning) {
		return fmt.Errorf("%w: %w", web.ErrUnavailable, err)
	}
	return err
}
