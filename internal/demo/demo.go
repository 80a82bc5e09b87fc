// Package demo runs `hazgate demo`: the simulated tank farm (internal/sim),
// an embedded MQTT broker and a real gateway on configs/demo.yaml, and
// prints what arrives at the broker the way a dispatcher would want to
// read it. A newcomer sees polling, alarms, faults, buffering and the
// uplink working within a minute, with nothing installed.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"hazgate/configs"
	"hazgate/internal/broker"
	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/sim"
)

// DefaultMQTTListen is where the embedded broker listens unless told
// otherwise: the port every MQTT tool tries first.
const DefaultMQTTListen = "127.0.0.1:1883"

// summaryEvery is how often the watcher prints its summary.
const summaryEvery = 10 * time.Second

// Options configure a demo run.
type Options struct {
	// MQTTListen is the embedded broker's address; "" means
	// DefaultMQTTListen. Port 0 picks a free port. When the default
	// address is taken (a local mosquitto, say) the demo picks a free
	// port and says so; an address given explicitly must be free.
	MQTTListen string
	// ReactorListen is the simulated reactor's OPC UA address (host:port);
	// "" means the endpoint in configs/demo.yaml (127.0.0.1:14840), or a
	// free port when that one is taken. Port 0 picks a free port.
	ReactorListen string
	// PlantListen is the simulated plant's Modbus TCP address; "" means
	// the device address in configs/demo.yaml (127.0.0.1:15020), or a free
	// port when that one is taken. Port 0 picks a free port.
	PlantListen string
	// For stops the demo by itself after this long; 0 runs until ctx is
	// done.
	For time.Duration
	// DataDir holds the gateway's buffer; "" means a fresh temporary
	// folder, removed at the end.
	DataDir string
	// Out receives the readable lines; nil means os.Stdout.
	Out io.Writer
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
}

// Run starts the plant, the broker and the gateway, prints what arrives at
// the broker until ctx is done or opts.For has passed, then stops the
// gateway, the broker and the plant, in that order. It returns nil on such
// a stop and an error if anything fails to start or the gateway fails.
func Run(ctx context.Context, opts Options) (err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out := opts.Out
	if out == nil {
		out = os.Stdout
	}
	cfg, err := config.Parse("configs/demo.yaml", configs.DemoYAML())
	if err != nil {
		return fmt.Errorf("demo: the built-in configs/demo.yaml is invalid: %w", err)
	}
	// The tank farm's PLC (Modbus TCP) and the reactor's OPC UA server.
	// The box's own GPIO lines (the beacon) need no simulator, only the
	// fake backend: the demo must never drive a real line.
	var dev, reactorDev *config.Device
	gpioDevices := 0
	for i := range cfg.Devices {
		switch d := &cfg.Devices[i]; d.Protocol {
		case config.ProtocolModbusTCP:
			dev = d
		case config.ProtocolOPCUA:
			reactorDev = d
		case config.ProtocolGPIO:
			if d.GPIO.Backend != config.GPIOBackendFake {
				return fmt.Errorf("demo: configs/demo.yaml device %s must use gpio backend fake, not %s", d.Name, d.GPIO.Backend)
			}
			gpioDevices++
		}
	}
	if dev == nil || reactorDev == nil || len(cfg.Devices)-gpioDevices != 2 {
		return fmt.Errorf("demo: configs/demo.yaml must have one modbus-tcp device (the tank farm) and one opcua device (the reactor)")
	}
	var notes []string

	dataDir, removeDir := opts.DataDir, false
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "hazgate-demo-"); err != nil {
			return fmt.Errorf("demo: temporary data directory: %w", err)
		}
		removeDir = true
		defer func() {
			if rmErr := os.RemoveAll(dataDir); rmErr != nil && err == nil {
				err = fmt.Errorf("demo: remove %s: %w", dataDir, rmErr)
			}
		}()
	}
	cfg.Gateway.DataDir = dataDir

	// The plant first: the gateway's first poll should find it.
	plant := sim.NewPlant(sim.PlantOptions{Script: true, Logger: log.With("stage", "sim")})
	plantAddr, plantFallback := opts.PlantListen, opts.PlantListen == ""
	if plantFallback {
		plantAddr = dev.Address
	}
	if err := startOrFallback(plantAddr, plantFallback, plant.Start); err != nil {
		return fmt.Errorf("demo: simulated plant: %w", err)
	}
	defer func() {
		if cErr := plant.Close(); cErr != nil && err == nil {
			err = fmt.Errorf("demo: stop the plant: %w", cErr)
		}
	}()
	if plantFallback && plant.Addr() != plantAddr {
		notes = append(notes, fmt.Sprintf("%s was taken, the plant serves on %s instead", plantAddr, plant.Addr()))
	}
	dev.Address = plant.Addr()

	reactor := sim.NewReactor(sim.ReactorOptions{Script: true, Logger: log.With("stage", "sim-opcua")})
	reactorAddr, reactorFallback := opts.ReactorListen, opts.ReactorListen == ""
	if reactorFallback {
		u, perr := url.Parse(reactorDev.Address)
		if perr != nil {
			return fmt.Errorf("demo: reactor endpoint %q: %w", reactorDev.Address, perr)
		}
		reactorAddr = u.Host
	}
	if err := startOrFallback(reactorAddr, reactorFallback, reactor.Start); err != nil {
		return fmt.Errorf("demo: simulated reactor: %w", err)
	}
	defer func() {
		if cErr := reactor.Close(); cErr != nil && err == nil {
			err = fmt.Errorf("demo: stop the reactor: %w", cErr)
		}
	}()
	if reactorFallback && reactor.Addr() != reactorAddr {
		notes = append(notes, fmt.Sprintf("%s was taken, the reactor serves OPC UA on %s instead", reactorAddr, reactor.Addr()))
	}
	reactorDev.Address = reactor.Endpoint()

	mqttAddr := opts.MQTTListen
	if mqttAddr == "" {
		mqttAddr = DefaultMQTTListen
	}
	var b *broker.Broker
	err = startOrFallback(mqttAddr, mqttAddr == DefaultMQTTListen, func(addr string) error {
		var err error
		b, err = broker.Start(addr, log.With("stage", "broker"))
		return err
	})
	if err != nil {
		return fmt.Errorf("demo: MQTT broker: %w", err)
	}
	defer func() {
		if cErr := b.Close(); cErr != nil && err == nil {
			err = fmt.Errorf("demo: stop the broker: %w", cErr)
		}
	}()
	if mqttAddr == DefaultMQTTListen && b.Addr() != mqttAddr {
		notes = append(notes, fmt.Sprintf("%s was taken (another broker?), the embedded broker listens on %s instead", mqttAddr, b.Addr()))
	}
	// b.Addr, not mqttAddr: with port 0 only the broker knows its port.
	cfg.Uplink.Brokers = []string{b.URL()}

	w := newWatcher(out, cfg, time.Now)
	prefix := cfg.Uplink.TopicPrefix
	if prefix == "" {
		prefix = "hazgate"
	}
	for _, stream := range []string{"event", "data", "status"} {
		if err := b.Subscribe(prefix+"/+/"+stream, w.handle); err != nil {
			return fmt.Errorf("demo: watch %s messages: %w", stream, err)
		}
	}

	gw, err := gateway.New(cfg, gateway.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	runCtx := ctx
	if opts.For > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, opts.For)
		defer cancel()
	}
	banner(out, cfg, plant.Addr(), reactor.Endpoint(), b.Addr(), prefix, removeDir, opts.For, notes)

	// Summaries until the gateway has stopped.
	var wg sync.WaitGroup
	stopSummary := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(summaryEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopSummary:
				return
			case <-tick.C:
				w.summary()
			}
		}
	}()

	runErr := gw.Run(runCtx)
	close(stopSummary)
	wg.Wait()
	w.waitOffline(2 * time.Second)
	w.summary()
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		w.close("")
		return fmt.Errorf("demo: %w", runErr)
	}
	w.close("hazgate demo stopped.")
	// The deferred closes stop the broker, then the plant, then remove the
	// temporary folder.
	return nil
}

// startOrFallback calls start(addr); when that address is taken and
// fallback is allowed it tries a free port on the same host.
func startOrFallback(addr string, fallback bool, start func(string) error) error {
	err := start(addr)
	if err == nil || !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	host := "127.0.0.1"
	if h, _, splitErr := net.SplitHostPort(addr); splitErr == nil && h != "" {
		host = h
	}
	return start(host + ":0")
}

// banner is the first thing the user reads: what runs where, how to
// watch it, what is about to happen and how to stop it.
func banner(out io.Writer, cfg *config.Config, plantAddr, reactorURL, mqttAddr, prefix string, tempDir bool, dur time.Duration, notes []string) {
	host, port, _ := net.SplitHostPort(mqttAddr)
	fmt.Fprintf(out, "hazgate demo: Modbus sim at %s, MQTT broker at %s, gateway %s; Ctrl-C stops it\n", plantAddr, mqttAddr, cfg.Gateway.ID)
	for _, n := range notes {
		fmt.Fprintf(out, "  note: %s\n", n)
	}
	fmt.Fprintf(out, "  simulated tank farm:  Modbus TCP %s, unit 1 (register map: internal/sim/README.md)\n", plantAddr)
	fmt.Fprintf(out, "  simulated reactor:    OPC UA %s, R-301 (browse it: hazgate opcua browse %s)\n", reactorURL, reactorURL)
	fmt.Fprintf(out, "  gateway:              %s, enterprise %s, polling every %s\n", cfg.Gateway.ID, cfg.Gateway.EnterpriseCode, cfg.Devices[0].Interval)
	buf := filepath.Join(cfg.Gateway.DataDir, gateway.BufferFile)
	if tempDir {
		buf += " (temporary, removed at the end)"
	}
	fmt.Fprintf(out, "  buffer:               %s\n", buf)
	fmt.Fprintf(out, "  embedded MQTT broker: %s, topics %s/%s/{data,event,status}\n", mqttAddr, prefix, cfg.Gateway.ID)
	fmt.Fprintf(out, "  watch the raw JSON:   mosquitto_sub -h %s -p %s -t '%s/#' -v\n", host, port, prefix)
	if cfg.Web.On() {
		fmt.Fprintf(out, "  status page:          http://%s/ (中文; English: ?lang=en; if the port is taken the log says so)\n", cfg.Web.Listen)
	}
	fmt.Fprintf(out, "  script, repeating every %s:\n", sim.Period)
	for _, inc := range append(sim.Incidents(), sim.ReactorIncidents()...) {
		fmt.Fprintf(out, "    +%-4s %s\n", inc.At, inc.Text)
	}
	if dur > 0 {
		fmt.Fprintf(out, "  stops by itself after %s, or press Ctrl-C\n", dur)
	} else {
		fmt.Fprintln(out, "  press Ctrl-C to stop")
	}
	fmt.Fprintf(out, "Below: one line per alarm, fault or status message as it arrives at the broker, a summary every %s.\n", summaryEvery)
}
