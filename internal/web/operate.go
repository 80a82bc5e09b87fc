package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"hazgate/internal/config"
	"hazgate/rules"
	"hazgate/rules/interlock"
)

// Operator carries out what an operator asks for on the page or through
// the local CLI. The gateway implements it (Gateway.Ack and friends run on
// the pipeline goroutine and record each action as an event with who and
// when); the server only decides who is asking and whether the request
// may be trusted.
type Operator interface {
	Ack(ctx context.Context, tag, level, who string) error
	ResetInterlock(ctx context.Context, name, who string) error
	Bypass(ctx context.Context, name, who, reason string, d time.Duration) error
	Unbypass(ctx context.Context, name, who string) error
	Shelve(ctx context.Context, tag, level, who, reason string, d time.Duration) error
	Unshelve(ctx context.Context, tag, level, who string) error
}

// Limits of what an operator may type. The bypass duration itself is
// bounded by the interlock's bypass_max in the engine; these keep a
// request (and the event it becomes) small.
const (
	maxNameLen   = 64
	maxReasonLen = 200
	maxBodyBytes = 4 << 10
	// opTimeout bounds the wait for the pipeline; it answers within a
	// batch normally, so this only trips when the gateway is stuck.
	opTimeout = 10 * time.Second
)

// LocalAccount is the account of an operator on a loopback page without a
// password: the machine itself vouches for them, nothing more.
const LocalAccount = "local"

// ActionRequest is the body of every POST under /api/. Fields that an
// action does not use are ignored.
type ActionRequest struct {
	Tag    string `json:"tag,omitempty"`    // ack, shelve, unshelve: the alarm's tag
	Level  string `json:"level,omitempty"`  // hh, h, l, ll, roc, dev, fault; for ack "" is every level
	Name   string `json:"name,omitempty"`   // reset, bypass, unbypass: the interlock
	For    string `json:"for,omitempty"`    // bypass, shelve: a Go duration such as "30m"
	Reason string `json:"reason,omitempty"` // bypass, shelve: why (required)
	By     string `json:"by,omitempty"`     // the operator's own name, optional
}

// ActionReply is the answer to a POST: OK with Who as recorded, or Error.
type ActionReply struct {
	OK    bool   `json:"ok"`
	Who   string `json:"who,omitempty"`
	Error string `json:"error,omitempty"`
}

// AlarmJSON is one active alarm as GET /api/alarms lists it.
type AlarmJSON struct {
	Tag          string     `json:"tag"`
	Device       string     `json:"device,omitempty"`
	Level        string     `json:"level"`
	State        string     `json:"state"`
	Condition    bool       `json:"condition"`
	Colour       string     `json:"colour"`
	Priority     int        `json:"priority"`
	Since        time.Time  `json:"since"`
	Value        *float64   `json:"value,omitempty"`
	Limit        *float64   `json:"limit,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	AckedBy      string     `json:"acked_by,omitempty"`
	AckedAt      *time.Time `json:"acked_at,omitempty"`
	ShelvedUntil *time.Time `json:"shelved_until,omitempty"`
	ShelvedBy    string     `json:"shelved_by,omitempty"`
}

// InterlockJSON is one interlock as GET /api/interlocks lists it.
type InterlockJSON struct {
	Name          string     `json:"name"`
	Description   string     `json:"description,omitempty"`
	Tripped       bool       `json:"tripped"`
	TrippedAt     *time.Time `json:"tripped_at,omitempty"`
	FirstOut      bool       `json:"first_out,omitempty"`
	Condition     bool       `json:"condition"`
	Bypassed      bool       `json:"bypassed"`
	BypassUntil   *time.Time `json:"bypass_until,omitempty"`
	BypassWho     string     `json:"bypass_who,omitempty"`
	BypassReason  string     `json:"bypass_reason,omitempty"`
	FailedOutputs []string   `json:"failed_outputs,omitempty"`
}

// routeOperations adds the JSON API: the lists always, the actions only
// when there is an Operator. Actions are POST only, JSON only, and behind
// the cross-origin check.
func (s *Server) routeOperations(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/alarms", s.serveAlarms)
	mux.HandleFunc("GET /api/interlocks", s.serveInterlocks)
	if s.ops == nil {
		return
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("operator request refused: cross-origin", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		writeReply(w, http.StatusForbidden, ActionReply{Error: "cross-origin request refused: use the status page itself or the hazgate CLI"})
	}))
	for path, act := range map[string]func(context.Context, ActionRequest, string) error{
		"/api/alarms/ack":          s.doAck,
		"/api/alarms/shelve":       s.doShelve,
		"/api/alarms/unshelve":     s.doUnshelve,
		"/api/interlocks/reset":    s.doReset,
		"/api/interlocks/bypass":   s.doBypass,
		"/api/interlocks/unbypass": s.doUnbypass,
	} {
		mux.Handle("POST "+path, cop.Handler(s.action(act)))
	}
}

func (s *Server) doAck(ctx context.Context, a ActionRequest, who string) error {
	if a.Tag == "" {
		return badRequest("tag is required")
	}
	return s.ops.Ack(ctx, a.Tag, a.Level, who)
}

func (s *Server) doReset(ctx context.Context, a ActionRequest, who string) error {
	if a.Name == "" {
		return badRequest("name (the interlock) is required")
	}
	return s.ops.ResetInterlock(ctx, a.Name, who)
}

func (s *Server) doBypass(ctx context.Context, a ActionRequest, who string) error {
	if a.Name == "" {
		return badRequest("name (the interlock) is required")
	}
	d, reason, err := forAndReason(a, "bypass")
	if err != nil {
		return err
	}
	return s.ops.Bypass(ctx, a.Name, who, reason, d)
}

func (s *Server) doShelve(ctx context.Context, a ActionRequest, who string) error {
	if a.Tag == "" || a.Level == "" {
		return badRequest("tag and level are required to shelve an alarm")
	}
	d, reason, err := forAndReason(a, "shelving")
	if err != nil {
		return err
	}
	return s.ops.Shelve(ctx, a.Tag, a.Level, who, reason, d)
}

func (s *Server) doUnshelve(ctx context.Context, a ActionRequest, who string) error {
	if a.Tag == "" || a.Level == "" {
		return badRequest("tag and level are required to unshelve an alarm")
	}
	return s.ops.Unshelve(ctx, a.Tag, a.Level, who)
}

// forAndReason checks the duration and the reason of a bypass or a
// shelving; the upper bound is the engine's (bypass_max, rules.MaxShelve).
func forAndReason(a ActionRequest, what string) (time.Duration, string, error) {
	d, err := time.ParseDuration(a.For)
	if err != nil || d <= 0 {
		return 0, "", badRequest(fmt.Sprintf("for: %q is not a positive duration such as 30m or 2h", a.For))
	}
	reason := strings.TrimSpace(a.Reason)
	if reason == "" {
		return 0, "", badRequest("reason is required for a " + what)
	}
	if err := checkText("reason", reason, maxReasonLen); err != nil {
		return 0, "", err
	}
	return d, reason, nil
}

func (s *Server) doUnbypass(ctx context.Context, a ActionRequest, who string) error {
	if a.Name == "" {
		return badRequest("name (the interlock) is required")
	}
	return s.ops.Unbypass(ctx, a.Name, who)
}

// action decodes the request, works out who asks, runs act and answers
// with a status code that says what went wrong.
func (s *Server) action(act func(context.Context, ActionRequest, string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cred == nil && !loopbackHost(r.Host) {
			// Without a password, only the loopback names are trusted: a
			// web page whose name an attacker rebinds to 127.0.0.1 is
			// "same origin" to the browser, but its Host is not ours.
			writeReply(w, http.StatusForbidden, ActionReply{Error: fmt.Sprintf("host %q refused: without a password the page is operated only as 127.0.0.1 or localhost", r.Host)})
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeReply(w, http.StatusUnsupportedMediaType, ActionReply{Error: "send the request as application/json"})
			return
		}
		var a ActionRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			writeReply(w, http.StatusBadRequest, ActionReply{Error: "request body: " + err.Error()})
			return
		}
		a.Tag, a.Level, a.Name, a.By = strings.TrimSpace(a.Tag), strings.TrimSpace(a.Level), strings.TrimSpace(a.Name), strings.TrimSpace(a.By)
		who, err := s.who(r, a.By)
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
			err = act(ctx, a, who)
			cancel()
		}
		code := statusOf(err)
		if err != nil {
			s.log.Warn("operator request refused", "path", r.URL.Path, "who", who, "tag", a.Tag, "level", a.Level, "interlock", a.Name, "err", err)
			writeReply(w, code, ActionReply{Who: who, Error: err.Error()})
			return
		}
		s.log.Info("operator request", "path", r.URL.Path, "who", who, "tag", a.Tag, "level", a.Level, "interlock", a.Name, "for", a.For)
		writeReply(w, http.StatusOK, ActionReply{OK: true, Who: who})
	})
}

// who is the operator as the event records it: the account (the basic-auth
// user, or "local" on a loopback page without a password), then ":" and
// the name the operator typed, if any. The account part cannot be chosen
// by the client; the name is the operator's own word.
func (s *Server) who(r *http.Request, name string) (string, error) {
	account := LocalAccount
	if s.cred != nil {
		// authenticate has checked it already
		account, _, _ = r.BasicAuth()
	}
	if name == "" {
		return account, nil
	}
	if err := checkText("by", name, maxNameLen); err != nil {
		return account, err
	}
	return account + ":" + name, nil
}

type badRequestError string

func (e badRequestError) Error() string { return string(e) }

func badRequest(msg string) error { return badRequestError(msg) }

// checkText refuses control characters (they would reach logs and the
// platform) and overlong text.
func checkText(field, v string, max int) error {
	if len([]rune(v)) > max {
		return badRequest(fmt.Sprintf("%s: longer than %d characters", field, max))
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return badRequest(field + ": control characters are not allowed")
	}
	return nil
}

// statusOf maps an Operator's error to an HTTP status: 404 for a name the
// gateway does not know, 409 for a refusal in the current state, 503 when
// the gateway cannot take requests.
func statusOf(err error) int {
	var bad badRequestError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &bad):
		return http.StatusBadRequest
	case errors.Is(err, rules.ErrUnknownTag), errors.Is(err, rules.ErrUnknownLevel), errors.Is(err, interlock.ErrUnknown):
		return http.StatusNotFound
	case errors.Is(err, rules.ErrNothingToAck), errors.Is(err, interlock.ErrNotTripped), errors.Is(err, interlock.ErrConditionHolds),
		errors.Is(err, interlock.ErrBypass), errors.Is(err, interlock.ErrNotBypassed), errors.Is(err, rules.ErrShelve):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrUnavailable is what an Operator returns (wrapped) when it cannot take
// requests now, such as a gateway that is stopping; the API answers 503.
var ErrUnavailable = errors.New("gateway is not taking requests")

func writeReply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// loopbackHost says whether a Host header names this machine.
func loopbackHost(host string) bool {
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), "80")
	}
	return config.Loopback(host)
}

func (s *Server) serveAlarms(w http.ResponseWriter, _ *http.Request) {
	out := []AlarmJSON{}
	for _, a := range s.src().Active {
		j := AlarmJSON{Tag: a.Tag, Device: a.Device, Level: a.Level, State: a.State.String(), Condition: a.Condition,
			Colour: a.Colour, Priority: a.Priority, Since: a.Since.UTC(), Reason: a.Reason, AckedBy: a.AckedBy, ShelvedBy: a.ShelvedBy}
		if a.Level != rules.LevelFault {
			v, l := a.Value, a.Limit
			j.Value, j.Limit = &v, &l
		}
		j.AckedAt, j.ShelvedUntil = timePtr(a.AckedAt), timePtr(a.ShelvedUntil)
		out = append(out, j)
	}
	writeReply(w, http.StatusOK, out)
}

func (s *Server) serveInterlocks(w http.ResponseWriter, _ *http.Request) {
	out := []InterlockJSON{}
	for _, il := range s.src().Interlocks {
		out = append(out, InterlockJSON{Name: il.Name, Description: il.Description, Tripped: il.Tripped, TrippedAt: timePtr(il.TrippedAt),
			FirstOut: il.FirstOut, Condition: il.Condition, Bypassed: il.Bypassed, BypassUntil: timePtr(il.BypassUntil),
			BypassWho: il.BypassWho, BypassReason: il.BypassReason, FailedOutputs: il.FailedOutputs})
	}
	writeReply(w, http.StatusOK, out)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
