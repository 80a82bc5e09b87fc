package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"hazgate/internal/watch"
)

// cmdWatch is the dispatch center's view of one or all gateways: it checks
// every payload against the schemas and the sequence numbers for gaps.
// Exit 0: all valid, no unexplained gap; 1: an invalid payload or an
// unexplained gap (or the connection failed); 2: bad arguments.
func cmdWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o watch.Options
	fs.StringVar(&o.Broker, "broker", "", "broker URL, e.g. tcp://127.0.0.1:1883 or ssl://host:8883 (required)")
	fs.StringVar(&o.Gateway, "gateway", "+", "gateway id to watch; + watches all")
	fs.StringVar(&o.Prefix, "topic-prefix", "hazgate", "topic prefix of the gateways")
	fs.StringVar(&o.Username, "username", "", "MQTT username")
	passwordFile := fs.String("password-file", "", "file holding the MQTT password")
	fs.StringVar(&o.CAFile, "ca", "", "CA certificate file for ssl:// brokers")
	fs.StringVar(&o.CertFile, "cert", "", "client certificate for mutual TLS (with --key)")
	fs.StringVar(&o.KeyFile, "key", "", "its private key")
	dur := fs.Duration("for", 0, "stop after this long (default: until interrupted)")
	samples := fs.Bool("samples", false, "print every reading, not one line per data message")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if o.Broker == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: hazgate watch --broker URL [--gateway ID] [--topic-prefix P] [--for DURATION] [--samples]")
		return exitUsage
	}
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			fmt.Fprintf(stderr, "hazgate watch: --password-file: %v\n", err)
			return exitUsage
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	c, err := watch.NewChecker(stdout, *samples)
	if err != nil {
		fmt.Fprintf(stderr, "hazgate watch: %v\n", err)
		return exitFailure
	}
	start := time.Now()
	runErr := watch.Run(ctx, o, c)
	r := c.Finish()
	if runErr != nil {
		fmt.Fprintf(stderr, "hazgate watch: %v (after %s)\n", runErr, time.Since(start).Round(time.Millisecond))
		return exitFailure
	}
	if !r.OK() {
		fmt.Fprintf(stderr, "hazgate watch: %d invalid payloads, unexplained gaps in %d streams, silent loss in %d streams\n", r.Invalid, len(r.Missing), len(r.SilentLoss))
		return exitFailure
	}
	return exitOK
}
