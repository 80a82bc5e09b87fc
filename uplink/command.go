package uplink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// Remote commands (docs/uplink.md §7). They are off unless the config has
// uplink.commands. Every message on a command topic is answered on the
// reply topic and recorded as an event, accepted or refused. No command
// writes to a field device.
//
// A command is accepted only when all of these hold, checked in this
// order so that nothing unauthenticated is looked at beyond its envelope:
//  1. the envelope is {"body": "<JSON text>", "hmac": "<hex>"};
//  2. hmac is HMAC-SHA256 over body's bytes with this gateway's key;
//  3. body names this gateway, the command of the topic, payload version 1;
//  4. body's time is within the window of the gateway's clock;
//  5. body's nonce was not accepted before (nonces are remembered for as
//     long as their command's time is inside the window, in memory only;
//     so that a restart, which forgets them, opens no door to a replay,
//     a command issued before this process started is refused as stale;
//     see docs/uplink.md §7.2);
//  6. the config allows the command.

// AlarmAcker acknowledges alarms on behalf of a remote operator.
type AlarmAcker interface {
	// Ack acknowledges the alarm of tag at level ("hh", "h", "l", "ll",
	// "fault") for who. ErrNotSupported when alarms cannot be
	// acknowledged by this gateway.
	Ack(tag, level, who string) error
}

// TagReader reads one tag now, for the read command.
type TagReader interface {
	ReadTag(ctx context.Context, tag string) (model.Sample, error)
}

// ErrNotSupported is what an AlarmAcker or TagReader returns for a command
// this gateway cannot carry out yet; the reply says "not_supported".
var ErrNotSupported = errors.New("not supported yet")

// CommandOptions wire the commands to the rest of the gateway.
type CommandOptions struct {
	// Record appends an event (the command and its outcome) to the buffer.
	// Required when commands are configured.
	Record func(model.Event) error
	Acker  AlarmAcker // nil: ack replies not_supported
	Reader TagReader  // nil: read replies not_supported
}

// Reply codes (docs/uplink.md §7.3).
const (
	CodeBadFormat      = "bad_format"
	CodeBadSignature   = "bad_signature"
	CodeWrongGateway   = "wrong_gateway"
	CodeStale          = "stale"
	CodeReplayedNonce  = "replayed_nonce"
	CodeNotAllowed     = "not_allowed"
	CodeUnknownCommand = "unknown_command"
	CodeBadArgs        = "bad_args"
	CodeNotSupported   = "not_supported"
	CodeNotFound       = "not_found"
	CodeFailed         = "failed"
)

// Event kinds of commands.
const (
	KindCommandAccepted model.EventKind = "command_accepted"
	KindCommandRefused  model.EventKind = "command_refused" // not authorized
	KindCommandFailed   model.EventKind = "command_failed"  // authorized, but could not be carried out
)

// CommandEnvelope is what the platform publishes on <prefix>/<gw>/cmd/<name>.
type CommandEnvelope struct {
	Body string `json:"body"` // CommandBody as JSON text
	HMAC string `json:"hmac"` // hex HMAC-SHA256 of Body with the gateway's key
}

// CommandBody is the signed part of a command.
type CommandBody struct {
	V       int             `json:"v"`
	ID      string          `json:"id"`
	Gateway string          `json:"gateway"`
	Command string          `json:"command"`
	Time    string          `json:"time"` // RFC 3339, UTC
	Nonce   string          `json:"nonce"`
	By      string          `json:"by,omitempty"` // the operator, for ack
	Args    json.RawMessage `json:"args,omitempty"`
}

// ReplyMessage is the gateway's answer on <prefix>/<gw>/reply.
type ReplyMessage struct {
	V          int            `json:"v"`
	Gateway    string         `json:"gateway"`
	Enterprise string         `json:"enterprise"`
	ID         string         `json:"id,omitempty"`
	Command    string         `json:"command"`
	Time       string         `json:"time"`
	Result     string         `json:"result"` // ok, refused, failed
	Code       string         `json:"code,omitempty"`
	Message    string         `json:"message"`
	Data       map[string]any `json:"data,omitempty"`
}

// SignCommand builds a signed envelope: what a platform does (and tests).
func SignCommand(key []byte, body CommandBody) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return json.Marshal(CommandEnvelope{Body: string(b), HMAC: hex.EncodeToString(m.Sum(nil))})
}

const (
	maxCommandBytes = 8 << 10
	maxNonces       = 10000 // commands remembered within one window
	minKeyBytes     = 32
)

// commander checks and runs commands. It lives on the session goroutine
// (one at a time), so it needs no lock of its own.
type commander struct {
	key     []byte
	allow   []string
	window  time.Duration
	opts    CommandOptions
	nonces  map[string]time.Time // nonce -> when it may be forgotten
	gateway string
	now     func() time.Time
	started time.Time // commands issued before are refused: their nonces are forgotten

	// Refusals are recorded at most refusalBurst at once and then one per
	// refusalEvery, so that a flood of junk on the command topic cannot
	// fill the buffer with events that go ahead of telemetry. The ones
	// not recorded are counted and named in the next refusal recorded.
	refusalTokens float64
	refusalAt     time.Time
	suppressed    uint64
}

const (
	refusalBurst = 20
	refusalEvery = time.Second
)

// readCommandKey reads the HMAC key file: at least 32 bytes after trimming.
func readCommandKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("uplink: commands.key_file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < minKeyBytes {
		return nil, fmt.Errorf("uplink: commands.key_file %s: the key has %d bytes, at least %d are needed (make one with: head -c 32 /dev/urandom | base64 > FILE)", path, len(b), minKeyBytes)
	}
	return b, nil
}

func newCommander(cfg *config.Config, opts CommandOptions) (*commander, error) {
	cc := cfg.Uplink.Commands
	if opts.Record == nil {
		return nil, errors.New("uplink: commands are configured but nothing records them (CommandOptions.Record)")
	}
	key, err := readCommandKey(cc.KeyFile)
	if err != nil {
		return nil, err
	}
	return &commander{
		key: key, allow: cc.Allow, window: orDur(cc.Window, time.Duration(config.DefaultCommandWindow)),
		opts: opts, nonces: make(map[string]time.Time), gateway: cfg.Gateway.ID, now: time.Now,
		started: time.Now(),
	}, nil
}

// verdict is a command's outcome before it is replied to and recorded.
type verdict struct {
	body    CommandBody
	result  string // ok, refused, failed
	code    string
	message string
	data    map[string]any
}

func refuse(code, format string, args ...any) verdict {
	return verdict{result: "refused", code: code, message: fmt.Sprintf(format, args...)}
}

// authorize runs checks 1 to 6 on a message that arrived on the command
// topic for name.
func (c *commander) authorize(name string, payload []byte) verdict {
	if len(payload) > maxCommandBytes {
		return refuse(CodeBadFormat, "command of %d bytes; at most %d", len(payload), maxCommandBytes)
	}
	var env CommandEnvelope
	if err := strictJSON(payload, &env); err != nil || env.Body == "" || env.HMAC == "" {
		return refuse(CodeBadFormat, "not a command envelope {\"body\":..., \"hmac\":...}")
	}
	sig, err := hex.DecodeString(env.HMAC)
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(env.Body))
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return refuse(CodeBadSignature, "signature does not match this gateway's key")
	}
	var body CommandBody
	if err := strictJSON([]byte(env.Body), &body); err != nil {
		return refuse(CodeBadFormat, "body: %v", err)
	}
	v := verdict{body: body}
	refused := func(code, format string, args ...any) verdict {
		r := refuse(code, format, args...)
		r.body = body
		return r
	}
	switch {
	case body.V != PayloadVersion:
		return refused(CodeBadFormat, "payload version %d; this gateway speaks %d", body.V, PayloadVersion)
	case body.ID == "" || len(body.ID) > 128:
		return refused(CodeBadFormat, "id must be 1 to 128 characters")
	case body.Gateway != c.gateway:
		return refused(CodeWrongGateway, "command is for gateway %q, this is %q", body.Gateway, c.gateway)
	case body.Command != name:
		return refused(CodeBadFormat, "body says %q but came on the topic of %q", body.Command, name)
	case len(body.Nonce) < 16 || len(body.Nonce) > 128:
		return refused(CodeBadFormat, "nonce must be 16 to 128 characters")
	}
	at, err := time.Parse(time.RFC3339Nano, body.Time)
	if err != nil {
		return refused(CodeBadFormat, "time %q is not RFC 3339", body.Time)
	}
	now := c.now()
	if d := now.Sub(at); d > c.window || d < -c.window {
		return refused(CodeStale, "command time %s is %s from the gateway's clock; the window is ±%s", body.Time, d.Round(time.Millisecond), c.window)
	}
	if at.Before(c.started) {
		// Nonces live in memory; this process has not seen the ones
		// accepted before it started. Refusing what was issued before the
		// start makes a captured command useless after a restart.
		return refused(CodeStale, "command time %s is before this gateway process started (%s); issue it again", body.Time, c.started.UTC().Format(time.RFC3339Nano))
	}
	for n, until := range c.nonces {
		if now.After(until) {
			delete(c.nonces, n)
		}
	}
	if _, seen := c.nonces[body.Nonce]; seen {
		return refused(CodeReplayedNonce, "nonce already used")
	}
	if len(c.nonces) >= maxNonces {
		return refused(CodeFailed, "more than %d commands within %s; try again later", maxNonces, c.window)
	}
	// Remembered from here on, even if the command is then not allowed:
	// the same signed message must never be judged twice.
	c.nonces[body.Nonce] = at.Add(c.window)
	if !slices.Contains(config.CommandNames, name) {
		return refused(CodeUnknownCommand, "unknown command %q (known: %s)", name, strings.Join(config.CommandNames, ", "))
	}
	if !slices.Contains(c.allow, name) {
		return refused(CodeNotAllowed, "command %q is not allowed by this gateway's configuration", name)
	}
	v.result = "ok"
	return v
}

// record appends the command's event; a failure is logged by the caller.
func (c *commander) record(v verdict, topicName string) error {
	kind := KindCommandAccepted
	switch v.result {
	case "refused":
		kind = KindCommandRefused
		now := c.now()
		if c.refusalAt.IsZero() {
			c.refusalTokens = refusalBurst
		} else {
			c.refusalTokens = min(refusalBurst, c.refusalTokens+float64(now.Sub(c.refusalAt))/float64(refusalEvery))
		}
		c.refusalAt = now
		if c.refusalTokens < 1 {
			c.suppressed++
			return nil
		}
		c.refusalTokens--
	case "failed":
		kind = KindCommandFailed
	}
	name := v.body.Command
	if name == "" {
		name = topicName
	}
	ev := model.Event{Kind: kind, Time: c.now().UTC(), Reason: v.code}
	who := v.body.By
	if who == "" {
		who = "unknown"
	}
	switch {
	case v.result == "ok":
		ev.Message = fmt.Sprintf("command %s (id %s) by %s: %s", name, v.body.ID, who, v.message)
	case v.code == CodeBadSignature || v.code == CodeBadFormat && v.body.ID == "":
		// Unauthenticated: its content is not repeated.
		ev.Message = fmt.Sprintf("command %s refused: %s", name, v.message)
	default:
		ev.Message = fmt.Sprintf("command %s (id %s) by %s %s: %s", name, v.body.ID, who, v.result, v.message)
	}
	if kind == KindCommandRefused && c.suppressed > 0 {
		ev.Message += fmt.Sprintf(" (and %d more refused commands before it, not recorded one by one)", c.suppressed)
		c.suppressed = 0
	}
	return c.opts.Record(ev)
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}
