package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/web"
)

// The operator commands talk to the running gateway through its local
// HTTP API (internal/web, docs/status-page.md), the same one the status
// page's buttons use: the gateway records every action as an event with
// who and when. They never open the buffer or the devices themselves.
//
//	hazgate alarm list [-c FILE] [--json]
//	hazgate alarm ack TAG[:LEVEL] --by NAME [-c FILE]
//	hazgate alarm shelve TAG:LEVEL [--for 1h] --reason TEXT --by NAME [-c FILE]
//	hazgate alarm unshelve TAG:LEVEL --by NAME [-c FILE]
//	hazgate interlock list [-c FILE] [--json]
//	hazgate interlock reset NAME --by NAME [-c FILE]
//	hazgate interlock bypass NAME [--for 30m] --reason TEXT --by NAME [-c FILE]
//	hazgate interlock unbypass NAME --by NAME [-c FILE]

const alarmUsage = `usage: hazgate alarm list [-c FILE] [--url URL] [--json]
       hazgate alarm ack TAG[:LEVEL] --by NAME [-c FILE] [--url URL]
       hazgate alarm shelve TAG:LEVEL [--for 1h] --reason TEXT --by NAME [-c FILE] [--url URL]
       hazgate alarm unshelve TAG:LEVEL --by NAME [-c FILE] [--url URL]
LEVEL is hh, h, l, ll, roc, dev or fault; without it ack acknowledges every unacknowledged level of TAG.`

const interlockUsage = `usage: hazgate interlock list [-c FILE] [--url URL] [--json]
       hazgate interlock reset NAME --by NAME [-c FILE] [--url URL]
       hazgate interlock bypass NAME [--for 30m] --reason TEXT --by NAME [-c FILE] [--url URL]
       hazgate interlock unbypass NAME --by NAME [-c FILE] [--url URL]`

// alarmLevels are the levels an ack may name (rules.Level*).
var alarmLevels = []string{"hh", "h", "l", "ll", "roc", "dev", "fault"}

// opFlags are what every operator command takes.
type opFlags struct {
	cfgPath, url, by string
	json             bool
}

func (o *opFlags) register(fs *flag.FlagSet, action bool) {
	fs.StringVar(&o.cfgPath, "c", "", "the gateway's config file: its web section says where the gateway listens and the password file (default: "+config.DefaultWebListen+", no password)")
	fs.StringVar(&o.url, "url", "", "the gateway's address, such as http://127.0.0.1:8080 (instead of the one in -c)")
	if action {
		fs.StringVar(&o.by, "by", "", "your name, recorded in the event (required)")
	} else {
		fs.BoolVar(&o.json, "json", false, "print JSON as the API answers")
	}
}

// parseInterleaved parses flags before and after the positional
// arguments, so that "ack LT-101 --by 张三" works as people type it.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdAlarm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"list", "ack", "shelve", "unshelve"}, args[0]) {
		fmt.Fprintln(stderr, alarmUsage)
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("alarm "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o opFlags
	o.register(fs, sub != "list")
	forD := fs.Duration("for", time.Hour, "shelve: how long (at most 12h)")
	reason := fs.String("reason", "", "shelve: why (required)")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return exitUsage
	}
	prog := "hazgate alarm " + sub
	if sub == "list" {
		return listFromGateway(ctx, &o, prog, pos, alarmUsage, "api/alarms", printAlarms, stdout, stderr)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "%s: name one TAG or TAG:LEVEL\n%s\n", prog, alarmUsage)
		return exitUsage
	}
	tag, level := pos[0], ""
	if i := strings.LastIndex(tag, ":"); i >= 0 {
		tag, level = tag[:i], tag[i+1:]
		if !slices.Contains(alarmLevels, level) {
			fmt.Fprintf(stderr, "%s: level %q is not one of %s\n", prog, level, strings.Join(alarmLevels, ", "))
			return exitUsage
		}
	}
	if tag == "" {
		fmt.Fprintf(stderr, "%s: the tag is empty\n", prog)
		return exitUsage
	}
	if strings.TrimSpace(o.by) == "" {
		fmt.Fprintf(stderr, "%s: --by NAME is required: the action is recorded with who made it\n", prog)
		return exitUsage
	}
	if sub != "ack" && level == "" {
		fmt.Fprintf(stderr, "%s: name the alarm as TAG:LEVEL, such as LT-101:hh\n", prog)
		return exitUsage
	}
	switch sub {
	case "shelve":
		if *forD <= 0 {
			fmt.Fprintf(stderr, "%s: --for %s: give a positive duration such as 30m or 2h\n", prog, *forD)
			return exitUsage
		}
		if strings.TrimSpace(*reason) == "" {
			fmt.Fprintf(stderr, "%s: --reason TEXT is required: a shelving is reported with its reason\n", prog)
			return exitUsage
		}
		return o.act(ctx, prog, "api/alarms/shelve", web.ActionRequest{Tag: tag, Level: level, For: forD.String(), Reason: *reason, By: o.by},
			fmt.Sprintf("%s %s shelved for %s (until %s)", tag, level, *forD, time.Now().Add(*forD).Format("15:04")), stdout, stderr)
	case "unshelve":
		return o.act(ctx, prog, "api/alarms/unshelve", web.ActionRequest{Tag: tag, Level: level, By: o.by},
			tag+" "+level+" unshelved", stdout, stderr)
	}
	what := tag
	if level != "" {
		what += " " + level
	} else {
		what += " (every unacknowledged level)"
	}
	return o.act(ctx, prog, "api/alarms/ack", web.ActionRequest{Tag: tag, Level: level, By: o.by}, what+" acknowledged", stdout, stderr)
}

func cmdInterlock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"list", "reset", "bypass", "unbypass"}, args[0]) {
		fmt.Fprintln(stderr, interlockUsage)
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("interlock "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o opFlags
	o.register(fs, sub != "list")
	forD := fs.Duration("for", 30*time.Minute, "bypass: how long (at most the interlock's bypass_max, default 8h)")
	reason := fs.String("reason", "", "bypass: why (required)")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return exitUsage
	}
	prog := "hazgate interlock " + sub
	if sub == "list" {
		return listFromGateway(ctx, &o, prog, pos, interlockUsage, "api/interlocks", printInterlocks, stdout, stderr)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "%s: name one interlock\n%s\n", prog, interlockUsage)
		return exitUsage
	}
	name := pos[0]
	if strings.TrimSpace(o.by) == "" {
		fmt.Fprintf(stderr, "%s: --by NAME is required: the %s is recorded with who made it\n", prog, sub)
		return exitUsage
	}
	req := web.ActionRequest{Name: name, By: o.by}
	done := name + " reset"
	switch sub {
	case "bypass":
		if *forD <= 0 {
			fmt.Fprintf(stderr, "%s: --for %s: give a positive duration such as 30m or 2h\n", prog, *forD)
			return exitUsage
		}
		if strings.TrimSpace(*reason) == "" {
			fmt.Fprintf(stderr, "%s: --reason TEXT is required: a bypass is reported with its reason\n", prog)
			return exitUsage
		}
		req.For, req.Reason = forD.String(), *reason
		done = fmt.Sprintf("%s bypassed for %s (until %s)", name, *forD, time.Now().Add(*forD).Format("15:04"))
	case "unbypass":
		done = name + " bypass ended"
	}
	return o.act(ctx, prog, "api/interlocks/"+sub, req, done, stdout, stderr)
}

// act posts one action and reports it.
func (o *opFlags) act(ctx context.Context, prog, path string, req web.ActionRequest, done string, stdout, stderr io.Writer) int {
	api, code := o.client(prog, stderr)
	if api == nil {
		return code
	}
	rep, err := api.post(ctx, path, req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s by %s\n", done, rep.Who)
	return exitOK
}

// localAPI is a client of one gateway's local HTTP API.
type localAPI struct {
	base       string // ends in "/"
	user, pass string // basic auth when pass != ""
	cfgPath    string // for messages
	hc         *http.Client
}

// client builds the API client from -c and --url; nil with an exit code
// when it cannot.
func (o *opFlags) client(prog string, stderr io.Writer) (*localAPI, int) {
	api := &localAPI{base: "http://" + config.DefaultWebListen + "/", cfgPath: o.cfgPath}
	tr := &http.Transport{Proxy: nil} // a proxy must never see this traffic
	if o.cfgPath != "" {
		cfg, err := config.Load(o.cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			fmt.Fprintf(stderr, "%s: %s is not valid\n", prog, o.cfgPath)
			return nil, exitUsage
		}
		w := cfg.Web
		if !w.On() {
			fmt.Fprintf(stderr, "%s: %s has web.enabled: false; the operator commands talk to the gateway through its local web API\n", prog, o.cfgPath)
			return nil, exitUsage
		}
		scheme := "http"
		if w.TLS() {
			scheme = "https"
			pin, err := pinnedCert(w.CertFile)
			if err != nil {
				fmt.Fprintf(stderr, "%s: web.cert_file: %v\n", prog, err)
				return nil, exitFailure
			}
			tr.TLSClientConfig = pin
		}
		api.base = scheme + "://" + dialAddr(w.Listen) + "/"
		if w.PasswordFile != "" {
			b, err := os.ReadFile(w.PasswordFile)
			if err != nil {
				fmt.Fprintf(stderr, "%s: web.password_file: %v (run as the gateway's user or root, e.g. sudo -u hazgate)\n", prog, err)
				return nil, exitFailure
			}
			api.user, api.pass = w.Username, strings.TrimRight(string(b), "\r\n")
			if api.user == "" {
				api.user = config.DefaultWebUsername
			}
		}
	}
	if o.url != "" {
		api.base = strings.TrimRight(o.url, "/") + "/"
	}
	api.hc = &http.Client{Timeout: 20 * time.Second, Transport: tr}
	return api, exitOK
}

// dialAddr turns a listen address into one to connect to: a server on
// every interface is reached on loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// pinnedCert trusts exactly the certificate in the gateway's cert_file:
// the CLI runs on the same box and reads the very file the server
// serves, so comparing the bytes is stronger than a name check (a
// self-signed certificate for the box's name would not match 127.0.0.1).
func pinnedCert(path string) (*tls.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	want := blk.Bytes
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return fmt.Errorf("the server's certificate is not the one in %s", path)
			}
			return nil
		},
		MinVersion: tls.VersionTLS12,
	}, nil
}

func (a *localAPI) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.pass != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return 0, nil, fmt.Errorf("no gateway answers at %s: is it running (systemctl status hazgate), and is this its web.listen? (%w)", a.base, err)
		}
		return 0, nil, fmt.Errorf("gateway at %s: %w", a.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("gateway at %s: %w", a.base, err)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		where := "give -c with the gateway's config file"
		if a.cfgPath != "" {
			where = "check web.username and web.password_file in " + a.cfgPath
		}
		return resp.StatusCode, raw, fmt.Errorf("the gateway at %s refused the credentials: %s", a.base, where)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return resp.StatusCode, raw, fmt.Errorf("the server at %s has no %s: is it a hazgate gateway of this version?", a.base, path)
		}
	}
	return resp.StatusCode, raw, nil
}

func (a *localAPI) get(ctx context.Context, path string, out any) ([]byte, error) {
	code, raw, err := a.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: %d %s", path, code, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, nil
}

func (a *localAPI) post(ctx context.Context, path string, req web.ActionRequest) (web.ActionReply, error) {
	body, _ := json.Marshal(req)
	code, raw, err := a.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return web.ActionReply{}, err
	}
	var rep web.ActionReply
	if err := json.Unmarshal(raw, &rep); err != nil {
		return rep, fmt.Errorf("%s: %d %s", path, code, strings.TrimSpace(string(raw)))
	}
	if !rep.OK {
		switch code {
		case http.StatusConflict, http.StatusNotFound:
			return rep, fmt.Errorf("refused: %s", rep.Error)
		case http.StatusServiceUnavailable:
			return rep, fmt.Errorf("the gateway cannot take it now: %s", rep.Error)
		}
		return rep, fmt.Errorf("%s (HTTP %d)", rep.Error, code)
	}
	return rep, nil
}

func printAlarms(w io.Writer, list []web.AlarmJSON) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no active alarms")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tLEVEL\tSTATE\tCOLOUR\tVALUE\tLIMIT\tSINCE\tACKNOWLEDGED\tNOTE")
	for _, a := range list {
		val, lim := "-", "-"
		if a.Value != nil {
			val = fmtNumber(*a.Value)
		}
		if a.Limit != nil {
			lim = fmtNumber(*a.Limit)
		}
		acked := "-"
		if a.AckedBy != "" {
			acked = a.AckedBy
			if a.AckedAt != nil {
				acked += " " + a.AckedAt.Local().Format("15:04:05")
			}
		}
		note := a.Reason
		if a.ShelvedUntil != nil {
			note = strings.TrimSpace(fmt.Sprintf("shelved by %s until %s %s", a.ShelvedBy, a.ShelvedUntil.Local().Format("01-02 15:04"), note))
		}
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Tag, a.Level, a.State, a.Colour, val, lim,
			a.Since.Local().Format("01-02 15:04:05"), acked, note)
	}
	_ = tw.Flush()
}

func printInterlocks(w io.Writer, list []web.InterlockJSON) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no interlocks configured")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERLOCK\tSTATE\tCONDITION\tBYPASS\tFAILED OUTPUTS")
	for _, il := range list {
		state := "normal"
		if il.Tripped {
			state = "tripped"
			if il.TrippedAt != nil {
				state += " " + il.TrippedAt.Local().Format("01-02 15:04:05")
			}
			if il.FirstOut {
				state += " (first out)"
			}
		}
		cond := "no"
		if il.Condition {
			cond = "holds"
		}
		bypass := "-"
		if il.Bypassed && il.BypassUntil != nil {
			bypass = fmt.Sprintf("until %s by %s: %s", il.BypassUntil.Local().Format("01-02 15:04"), il.BypassWho, il.BypassReason)
		}
		failed := strings.Join(il.FailedOutputs, ", ")
		if failed == "" {
			failed = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", il.Name, state, cond, bypass, failed)
	}
	_ = tw.Flush()
}

// fmtNumber prints at most three decimals, as the status page does: a
// float32 register read as 17.3 is 17.299999237 in float64.
func fmtNumber(v float64) string {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// listFromGateway serves `alarm list` and `interlock list`: GET path from
// the running gateway, then the raw JSON (--json) or a table by print.
func listFromGateway[T any](ctx context.Context, o *opFlags, prog string, pos []string, usage, path string,
	print func(io.Writer, []T), stdout, stderr io.Writer) int {
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "%s: unexpected %q\n%s\n", prog, pos, usage)
		return exitUsage
	}
	api, code := o.client(prog, stderr)
	if api == nil {
		return code
	}
	var list []T
	raw, err := api.get(ctx, path, &list)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return exitFailure
	}
	if o.json {
		_, _ = stdout.Write(raw)
		return exitOK
	}
	print(stdout, list)
	return exitOK
}
