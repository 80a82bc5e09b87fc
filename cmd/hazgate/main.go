// Command hazgate is the edge gateway for major hazard source monitoring:
// it polls field devices, evaluates alarms locally, buffers every reading
// on disk and forwards it over MQTT to the supervision platform.
//
//	hazgate demo                 simulated tank farm + embedded broker, no setup
//	hazgate run -c FILE          run the gateway on a config file
//	hazgate validate FILE...     check config files; exit 0 valid, 2 invalid
//	hazgate version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/demo"
	"hazgate/internal/gateway"
	"hazgate/internal/logging"
	"hazgate/internal/sdnotify"
	"hazgate/internal/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the gateway stopped on an error
	exitUsage   = 2 // bad arguments or an invalid config
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "hazgate %s\n", version.Version)
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "hazgate: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

// command runs one subcommand and returns the process exit code.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// commands lists the subcommands. A tool for integrators lives in its own
// file (cmd_*.go) and adds one line here.
func commands() map[string]command {
	return map[string]command{
		"run": func(ctx context.Context, args []string, _, stderr io.Writer) int { return cmdRun(ctx, args, stderr) },
		"validate": func(_ context.Context, args []string, stdout, stderr io.Writer) int {
			return cmdValidate(args, stdout, stderr)
		},
		"demo":   cmdDemo,
		"watch":  cmdWatch,
		"modbus": cmdModbus,
		"buffer": cmdBuffer,
		"opcua":  cmdOPCUA,

		// operator actions through the running gateway's local API (cmd_operate.go)
		"alarm":     cmdAlarm,
		"interlock": cmdInterlock,
		"history":   cmdHistory, // cmd_history.go
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `hazgate: edge gateway for major hazard source monitoring

Usage:
  hazgate demo [--mqtt-listen ADDR] [--plant-listen ADDR] [--reactor-listen ADDR] [--for DURATION]
                                                     simulated plant + embedded broker
  hazgate run -c FILE [--log-level LEVEL] [--log-format auto|text|json] [--reload-poll 2s]
                                                     SIGHUP or a changed FILE reloads it
  hazgate validate FILE...                           exit 0 when valid, 2 when not
  hazgate watch --broker URL [--gateway ID] [--for DURATION]   check a gateway's uplink as the platform sees it
  hazgate modbus read (--tcp|--rtu-tcp HOST:PORT | --rtu DEVICE --baud N) --unit U --addr A [--count N --type T --order O]
                                                     read registers on site, no config needed (docs/modbus.md)
  hazgate alarm list|ack|shelve|unshelve TAG[:LEVEL] --by NAME [--for 1h --reason TEXT] [-c FILE]
  hazgate interlock list|reset|bypass|unbypass NAME --by NAME [--for 30m --reason TEXT] [-c FILE]
  hazgate history export --tag TAG --from TIME [--to TIME] [--format csv|json] (-c FILE | --data DIR)
                                                     the local history of one tag (docs/history.md)
  hazgate version
`)
}

// logFlags are the logging options every long-running command takes.
type logFlags struct {
	level, format string
	repeat        time.Duration         // --log-repeat
	limit         *logging.LimitHandler // set by logger; Flush at exit
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", logging.FormatAuto, "auto (json under systemd, text otherwise), text or json")
	fs.DurationVar(&l.repeat, "log-repeat", logging.DefaultRepeatEvery, "write the same message at most once per this long, with a count of the repeats (0: every time)")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch l.format {
	case logging.FormatAuto, logging.FormatText, logging.FormatJSON:
		h = slog.NewTextHandler(w, opts)
		if logging.JSON(l.format, w) {
			h = slog.NewJSONHandler(w, opts)
		}
	default:
		return nil, fmt.Errorf("--log-format: %q is not auto, text or json", l.format)
	}
	if l.repeat > 0 {
		// A dead device or an unreachable broker must not write a line
		// per attempt for days (internal/logging).
		l.limit = logging.NewLimit(h, logging.LimitOptions{Every: l.repeat})
		h = l.limit
	}
	return slog.New(h), nil
}

// flush writes the repeat counts still held back.
func (l *logFlags) flush() {
	if l.limit != nil {
		l.limit.Flush(context.Background())
	}
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config file (YAML)")
	reloadPoll := fs.Duration("reload-poll", defaultReloadPoll, "look at the config file this often and reload it when it changed (0: only on SIGHUP)")
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "hazgate run: -c FILE is required")
		return exitUsage
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "hazgate run: %v\n", err)
		return exitUsage
	}
	defer lf.flush()
	// SIGHUP reloads the config (reload.go); caught from here on so that
	// it never ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintf(stderr, "hazgate run: %s is not valid; nothing started\n", *path)
		return exitUsage
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailure
	}
	// Decoding a large config leaves hundreds of MiB of garbage (the YAML
	// tree of a 50,000-tag file); give it back to the OS now rather than
	// over minutes, so the box's memory shows what the gateway really uses.
	debug.FreeOSMemory()
	w := &configWatcher{path: *path, g: g, log: log.With("stage", "reload"), every: *reloadPoll, hup: hup, running: cfg.Hash()}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go w.run(wctx)
	// Under systemd (Type=notify): ready once the buffer is open and every
	// stage built; the watchdog is pinged only while the pipeline turns.
	notify := sdnotify.FromEnv()
	if err := notify.Send("READY=1"); err != nil {
		log.Warn("systemd notify", "err", err)
	}
	go notify.RunWatchdog(wctx, g.Alive)
	err = g.Run(ctx)
	_ = notify.Send("STOPPING=1")
	if err != nil {
		log.Error("stopped on error", "err", err)
		return exitFailure
	}
	return exitOK
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "hazgate validate: name at least one config file")
		return exitUsage
	}
	code := exitOK
	for _, path := range args {
		cfg, err := config.Load(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			code = exitUsage
			continue
		}
		tags := 0
		for _, d := range cfg.Devices {
			tags += len(d.Tags)
		}
		fmt.Fprintf(stdout, "%s: valid (%d devices, %d tags, config hash %s)\n", path, len(cfg.Devices), tags, cfg.Hash()[:12])
		warnLineLoads(stderr, path, cfg) // cmd_modbus.go: RS-485 lines that cannot carry their polls
	}
	return code
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("mqtt-listen", "127.0.0.1:1883", "address of the embedded MQTT broker")
	plant := fs.String("plant-listen", "", "address of the simulated Modbus TCP plant (default: the one in configs/demo.yaml)")
	reactor := fs.String("reactor-listen", "", "address of the simulated OPC UA reactor (default: the one in configs/demo.yaml)")
	dataDir := fs.String("data", "", "data directory (default: a temporary one, removed at the end)")
	dur := fs.Duration("for", 0, "stop by itself after this long (e.g. 30s); 0 runs until Ctrl-C")
	lf := logFlags{}
	lf.register(fs)
	fs.Lookup("log-level").DefValue = "warn"
	lf.level = "warn"
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "hazgate demo: %v\n", err)
		return exitUsage
	}
	defer lf.flush()
	// gopcua's server package (the simulated reactor) prints its progress
	// with the standard logger, past any logger we give it: send those
	// lines to our log at debug level instead of over the demo's output.
	stdlog.SetFlags(0)
	stdlog.SetOutput(logWriter{log.With("from", "gopcua-server")})
	err = demo.Run(ctx, demo.Options{MQTTListen: *listen, PlantListen: *plant, ReactorListen: *reactor, For: *dur, DataDir: *dataDir, Out: stdout, Logger: log})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "hazgate demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// logWriter turns lines written to a standard library logger into debug
// records of l.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
