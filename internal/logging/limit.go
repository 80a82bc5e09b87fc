package logging

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultRepeatEvery is how often a repeating message may be written.
const DefaultRepeatEvery = time.Minute

// DefaultRepeatKeys are the attributes that tell one repeating message
// from another besides its level and text: what it is about, never the
// detail (an error text, a count, a duration), which may vary between
// repeats of the same trouble.
var DefaultRepeatKeys = []string{"device", "tag", "bus", "interlock", "broker", "file", "stage", "component", "kind", "stream", "command"}

// LimitOptions tune NewLimit.
type LimitOptions struct {
	// Every is the shortest time between two lines of the same message;
	// zero means DefaultRepeatEvery.
	Every time.Duration
	// Keys are the record attributes that are part of a message's
	// identity; nil means DefaultRepeatKeys. Attributes added with
	// Logger.With are always part of it.
	Keys []string
	// Now is the clock (time.Now if nil); for tests.
	Now func() time.Time
}

// NewLimit wraps next so that the same message (level, text, logger
// attributes and the Keys attributes of the record) is written at most
// once per Every: the first occurrence at once, the repeats within Every
// left out and counted. The next line of that message after Every carries
// repeated=N, the number left out before it. When the message stops
// repeating, its last occurrence follows (with its own time, and
// repeated=N for the others left out) within about two Every, written
// when anything else is logged, or at Flush. Every line thus stands for
// 1+repeated occurrences. So a device that stays down writes one line a minute, not one per poll,
// and nothing is silently dropped.
func NewLimit(next slog.Handler, opts LimitOptions) *LimitHandler {
	if opts.Every <= 0 {
		opts.Every = DefaultRepeatEvery
	}
	if opts.Keys == nil {
		opts.Keys = DefaultRepeatKeys
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st := &limitState{every: opts.Every, now: opts.Now, keys: map[string]bool{}, seen: map[string]*repeat{}}
	for _, k := range opts.Keys {
		st.keys[k] = true
	}
	return &LimitHandler{next: next, st: st}
}

// LimitHandler is the slog.Handler of NewLimit.
type LimitHandler struct {
	next  slog.Handler
	st    *limitState
	scope string // the logger's attributes and groups, as part of the key
}

type limitState struct {
	every time.Duration
	now   func() time.Time
	keys  map[string]bool

	mu        sync.Mutex
	seen      map[string]*repeat
	nextSweep time.Time
}

// repeat is one message seen within the last Every.
type repeat struct {
	written    time.Time    // when it was last written
	suppressed int          // left out since
	seen       time.Time    // when it was last left out
	last       slog.Record  // the last one left out
	next       slog.Handler // the handler that left it out
}

// Enabled implements slog.Handler.
func (h *LimitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// WithAttrs implements slog.Handler.
func (h *LimitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.scope)
	for _, a := range attrs {
		b.WriteString(a.String())
		b.WriteByte(' ')
	}
	return &LimitHandler{next: h.next.WithAttrs(attrs), st: h.st, scope: b.String()}
}

// WithGroup implements slog.Handler.
func (h *LimitHandler) WithGroup(name string) slog.Handler {
	return &LimitHandler{next: h.next.WithGroup(name), st: h.st, scope: h.scope + name + ". "}
}

// Handle implements slog.Handler.
func (h *LimitHandler) Handle(ctx context.Context, r slog.Record) error {
	key := h.key(r)
	now := h.st.now()
	st := h.st
	st.mu.Lock()
	due := st.sweep(now)
	rep := st.seen[key]
	if rep != nil && now.Sub(rep.written) < st.every {
		rep.suppressed++
		rep.last, rep.next, rep.seen = r.Clone(), h.next, now
		st.mu.Unlock()
		emit(ctx, due)
		return nil
	}
	n := 0
	if rep == nil {
		rep = &repeat{}
		st.seen[key] = rep
	}
	n, rep.written, rep.suppressed, rep.last, rep.next = rep.suppressed, now, 0, slog.Record{}, nil
	st.mu.Unlock()
	emit(ctx, due)
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", n))
	}
	return h.next.Handle(ctx, r)
}

// Flush writes the last left-out occurrence of every message, with its
// count: at shutdown, so that no count is lost.
func (h *LimitHandler) Flush(ctx context.Context) {
	st := h.st
	st.mu.Lock()
	var due []summary
	for key, rep := range st.seen {
		if rep.suppressed > 0 {
			due = append(due, summary{rep.last, rep.next, rep.suppressed})
		}
		delete(st.seen, key)
	}
	st.mu.Unlock()
	emit(ctx, due)
}

type summary struct {
	r    slog.Record
	next slog.Handler
	n    int
}

func emit(ctx context.Context, due []summary) {
	// Oldest first, as they happened.
	slices.SortFunc(due, func(a, b summary) int { return a.r.Time.Compare(b.r.Time) })
	for _, s := range due {
		// The line written is the last occurrence: one of the n.
		if s.n > 1 {
			s.r.AddAttrs(slog.Int("repeated", s.n-1))
		}
		_ = s.next.Handle(ctx, s.r)
	}
}

// sweep, at most once a second, forgets the messages not seen for Every
// and returns the summaries of those that had repeats left out. A message
// still repeating is left alone: its next occurrence carries the count.
// Called with mu held.
func (st *limitState) sweep(now time.Time) []summary {
	if now.Before(st.nextSweep) {
		return nil
	}
	st.nextSweep = now.Add(min(time.Second, st.every))
	var due []summary
	for key, rep := range st.seen {
		if now.Sub(rep.written) < st.every || (rep.suppressed > 0 && now.Sub(rep.seen) < st.every) {
			continue
		}
		if rep.suppressed > 0 {
			due = append(due, summary{rep.last, rep.next, rep.suppressed})
		}
		delete(st.seen, key)
	}
	return due
}

// key identifies r's message: level, logger scope, text and the key
// attributes.
func (h *LimitHandler) key(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(h.scope)
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if h.st.keys[a.Key] {
			b.WriteByte(' ')
			b.WriteString(a.String())
		}
		return true
	})
	return b.String()
}
