package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/history"
)

const historyUsage = `usage:
  hazgate history export --tag TAG --from TIME [--to TIME] [--format csv|json] [-o FILE] (-c FILE | --data DIR)
  hazgate history stats (-c FILE | --data DIR)
TIME is RFC 3339 (2026-12-01T08:00:00+08:00, 2026-12-01T00:00:00Z) or a UTC date (2026-12-01).
While the gateway runs it holds the history file; with -c the export is then fetched from the
gateway's status page (web section) instead.`

// cmdHistory reads the local history (docs/history.md):
//
//	hazgate history export --tag TAG --from T [--to T] [--format csv|json] [-o FILE] (-c FILE | --data DIR)
//	hazgate history stats (-c FILE | --data DIR)
//
// A stopped gateway's file is read directly. A running gateway holds the
// file (bbolt lock); then, given the config, the export is asked of the
// gateway's own status page, which reads the same file.
func cmdHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "export" && args[0] != "stats") {
		fmt.Fprintln(stderr, historyUsage)
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("history "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "the gateway's config file (its data_dir holds history.db)")
	dataDir := fs.String("data", "", "the data directory, instead of -c")
	fs.StringVar(dataDir, "data-dir", "", "same as --data")
	tag := fs.String("tag", "", "export: the tag (位号)")
	fromS := fs.String("from", "", "export: start of the window (included)")
	toS := fs.String("to", "", "export: end of the window (excluded); default now")
	formatS := fs.String("format", "csv", "export: csv or json")
	outPath := fs.String("o", "", "export: write to this file instead of standard output")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	var cfg *config.Config
	dir := *dataDir
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		cfg, dir = c, c.Gateway.DataDir
	}
	if dir == "" {
		fmt.Fprintln(stderr, "hazgate history: name the history with -c FILE or --data DIR")
		return exitUsage
	}
	path := filepath.Join(dir, history.File)

	var q exportQuery
	if sub == "export" {
		var err error
		if q, err = parseExportFlags(*tag, *fromS, *toS, *formatS, time.Now()); err != nil {
			fmt.Fprintf(stderr, "hazgate history export: %v\n", err)
			return exitUsage
		}
	}

	st, err := history.Open(path, history.Options{ReadOnly: true})
	if errors.Is(err, history.ErrLocked) {
		if sub == "export" && cfg != nil && cfg.Web.On() {
			return exportFromGateway(ctx, cfg, q, *outPath, stdout, stderr)
		}
		fmt.Fprintf(stderr, "hazgate history: %s is in use: a gateway is running on it. Give its config with -c (the export is then fetched from its status page), or stop it first (systemctl stop hazgate).\n", path)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(stderr, "hazgate history: %v\n", err)
		return exitFailure
	}
	defer st.Close()

	if sub == "stats" {
		printHistoryStats(stdout, path, st)
		return exitOK
	}
	w, closeOut, err := openOutput(*outPath, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "hazgate history export: %v\n", err)
		return exitFailure
	}
	n, err := history.Export(st, w, q.format, q.tag, q.from, q.to)
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "hazgate history export: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "hazgate history export: %d records of %s from %s to %s (%s)\n", n, q.tag, history.FormatTime(q.from), history.FormatTime(q.to), path)
	return exitOK
}

type exportQuery struct {
	tag      string
	from, to time.Time
	format   history.Format
}

func parseExportFlags(tag, fromS, toS, formatS string, now time.Time) (exportQuery, error) {
	q := exportQuery{tag: strings.TrimSpace(tag), to: now}
	if q.tag == "" {
		return q, errors.New("--tag is required")
	}
	var err error
	if q.format, err = history.ParseFormat(formatS); err != nil {
		return q, fmt.Errorf("--format: %w", err)
	}
	if fromS == "" {
		return q, errors.New("--from is required (e.g. 2026-12-01T00:00:00Z)")
	}
	if q.from, err = parseWhen(fromS); err != nil {
		return q, fmt.Errorf("--from: %w", err)
	}
	if toS != "" {
		if q.to, err = parseWhen(toS); err != nil {
			return q, fmt.Errorf("--to: %w", err)
		}
	}
	if !q.from.Before(q.to) {
		return q, fmt.Errorf("--from %s is not before --to %s", history.FormatTime(q.from), history.FormatTime(q.to))
	}
	return q, nil
}

// parseWhen reads RFC 3339 or a date (UTC midnight).
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)", s)
}

func openOutput(path string, stdout io.Writer) (io.Writer, func() error, error) {
	if path == "" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// exportFromGateway asks the running gateway's status page for the
// export. A wildcard listen address is reached over loopback; with HTTPS
// the server must present exactly the certificate in web.cert_file (it is
// usually self-signed, for the box's address, not for 127.0.0.1).
func exportFromGateway(ctx context.Context, cfg *config.Config, q exportQuery, outPath string, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "hazgate history export: the gateway is running and holds the history file; asking its status page failed: "+format+"\n", args...)
		return exitFailure
	}
	host, port, err := net.SplitHostPort(cfg.Web.Listen)
	if err != nil {
		return fail("web.listen %q: %v", cfg.Web.Listen, err)
	}
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 15 * time.Minute}
	scheme := "http"
	if cfg.Web.TLS() {
		scheme = "https"
		pinned, err := certDER(cfg.Web.CertFile)
		if err != nil {
			return fail("%v", err)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// verification is the pin below, not the name on the certificate
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
					return errors.New("the server's certificate is not web.cert_file")
				}
				return nil
			},
		}}
	}
	v := url.Values{"tag": {q.tag}, "from": {history.FormatTime(q.from)}, "to": {history.FormatTime(q.to)}, "format": {string(q.format)}}
	u := scheme + "://" + net.JoinHostPort(host, port) + "/api/history/export?" + v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail("%v", err)
	}
	if cfg.Web.PasswordFile != "" {
		pw, err := os.ReadFile(cfg.Web.PasswordFile)
		if err != nil {
			return fail("web.password_file: %v (run as a user who may read it)", err)
		}
		req.SetBasicAuth(cfg.Web.Username, strings.TrimRight(string(pw), "\r\n"))
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fail("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	w, closeOut, err := openOutput(outPath, stdout)
	if err != nil {
		return fail("%v", err)
	}
	n, err := io.Copy(w, resp.Body)
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("after %d bytes: %v", n, err)
	}
	fmt.Fprintf(stderr, "hazgate history export: %d bytes of %s from %s to %s (from the running gateway at %s)\n", n, q.tag, history.FormatTime(q.from), history.FormatTime(q.to), net.JoinHostPort(host, port))
	return exitOK
}

// certDER is the first certificate of a PEM file.
func certDER(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("web.cert_file: %w", err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("web.cert_file %s holds no certificate", path)
		}
		if blk.Type == "CERTIFICATE" {
			return blk.Bytes, nil
		}
	}
}

func printHistoryStats(w io.Writer, path string, st *history.Store) {
	s := st.Stats()
	fmt.Fprintf(w, "history %s: %d bytes of records in a %d-byte file\n", path, s.Bytes, s.FileSize)
	fmt.Fprintf(w, "  %d raw samples, %d aggregates; over the file's life %d samples downsampled, %d records deleted for max_bytes, %d expired by max_age\n",
		s.Raw, s.Aggregates, s.Downsampled, s.Deleted, s.Expired)
	tags, err := st.Tags()
	if err != nil {
		fmt.Fprintf(w, "  tags: %v\n", err)
		return
	}
	for _, tag := range tags {
		first, last, err := st.Span(tag)
		if err != nil {
			fmt.Fprintf(w, "  %-16s %v\n", tag, err)
			continue
		}
		if first.IsZero() {
			fmt.Fprintf(w, "  %-16s no records\n", tag)
			continue
		}
		fmt.Fprintf(w, "  %-16s %s .. %s\n", tag, history.FormatTime(first), history.FormatTime(last))
	}
}
