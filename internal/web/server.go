package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"hazgate/internal/config"
	"hazgate/internal/history"
)

// rebindEvery is how often a server whose address is taken tries again:
// the status page must never stop the gateway, and it should appear by
// itself once the other program lets the port go.
const rebindEvery = 5 * time.Second

// Options configure a Server.
type Options struct {
	Config config.Web // validated, defaults applied
	Source Source
	Logger *slog.Logger // nil = discard
	// Operator carries out acknowledgements, resets and bypasses; nil
	// leaves the page read-only (no buttons, no POST endpoints).
	Operator Operator
	// History is the local history the trend and export read; nil when
	// the gateway keeps none (internal/web/history.go).
	History history.Reader
}

// Server is the HTTP server of one gateway.
type Server struct {
	cfg     config.Web
	src     Source
	ops     Operator // nil: read-only
	log     *slog.Logger
	handler http.Handler
	page    *page
	hist    history.Reader // nil = no history

	// sha256 of "user:password" when a password is set; compared in
	// constant time, and hashed first so the length is not revealed.
	cred []byte

	mu   sync.Mutex
	addr string // bound address while serving
}

// New builds a server and reads the password file, if any.
func New(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("web: no source")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: opts.Config, src: opts.Source, ops: opts.Operator, log: log, hist: opts.History}
	if s.cfg.Listen == "" {
		s.cfg.Listen = config.DefaultWebListen
	}
	if s.cfg.Username == "" {
		s.cfg.Username = config.DefaultWebUsername
	}
	if s.cfg.PasswordFile != "" {
		b, err := os.ReadFile(s.cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("web: password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return nil, fmt.Errorf("web: password file %s is empty", s.cfg.PasswordFile)
		}
		sum := sha256.Sum256([]byte(s.cfg.Username + ":" + pw))
		s.cred = sum[:]
	} else if !config.Loopback(s.cfg.Listen) {
		// config validation refuses this; a Config built in code must too.
		return nil, fmt.Errorf("web: %s is reachable from the network and no password_file is set", s.cfg.Listen)
	}
	pg, err := newPage()
	if err != nil {
		return nil, fmt.Errorf("web: status page template: %w", err)
	}
	s.page = pg
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /{$}", s.servePage)
	s.routeOperations(mux)
	s.registerHistory(mux) // history.go
	s.handler = s.authenticate(securityHeaders(mux))
	return s, nil
}

// Handler is the server's whole handler, with authentication.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address the server listens on, "" while it is not.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the status page's address, "" while the server is not listening.
func (s *Server) URL() string {
	a := s.Addr()
	if a == "" {
		return ""
	}
	if s.cfg.TLS() {
		return "https://" + a + "/"
	}
	return "http://" + a + "/"
}

// Run serves until ctx is done. If the address is taken it logs that and
// tries again every few seconds: a busy port must not stop acquisition.
// It returns nil when ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var lastErr string
	for {
		l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
		if err == nil {
			return s.serve(ctx, l)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err.Error() != lastErr {
			s.log.Error("status page cannot listen; retrying", "listen", s.cfg.Listen, "err", err, "retry", rebindEvery)
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(rebindEvery):
		}
	}
}

func (s *Server) serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.addr = l.Addr().String()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.addr = ""
		s.mu.Unlock()
	}()
	if s.cred == nil && !config.Loopback(s.cfg.Listen) {
		return errors.New("web: refusing to serve a non-loopback address without a password")
	}
	if !s.cfg.TLS() && s.cred != nil {
		s.log.Warn("status page password travels in clear text: set web.cert_file and web.key_file for HTTPS", "listen", s.cfg.Listen)
	}
	s.log.Info("status page listening", "url", s.URL())
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLS() {
			errc <- srv.ServeTLS(l, s.cfg.CertFile, s.cfg.KeyFile)
		} else {
			errc <- srv.Serve(l)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

// authenticate asks for basic auth when a password is set.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cred == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		sum := sha256.Sum256([]byte(user + ":" + pw))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.cred) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="hazgate", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders keep the page from being framed or loading anything
// from elsewhere: everything it needs is inline.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
