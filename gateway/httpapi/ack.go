package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Errors the Options.Ack function wraps, so that the server answers 404 or
// 409 without importing the rules package.
var (
	ErrUnknownRule = errors.New("unknown rule")
	ErrNotFiring   = errors.New("alert is not firing")
)

// maxAckBody bounds what an acknowledgement may send: it needs no body, and
// an unauthenticated client should not make the server read megabytes.
const maxAckBody = 1 << 10

// ack is POST /api/alerts/{rule}/ack: 204 when acknowledged, 401 without
// the right bearer token, 403 when no token is configured, 404 for an
// unknown rule, 409 when the alert is not firing, 413 for a body over
// 1 KiB.
func (s *Server) ack(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.opts.AckToken == "" || s.opts.Ack == nil {
		http.Error(w, "acknowledgement disabled", http.StatusForbidden)
		return
	}
	if !s.bearer(w, r, "acknowledgement") {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAckBody)
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		http.Error(w, "request body over 1KiB", http.StatusRequestEntityTooLarge)
		return
	}
	rule := r.PathValue("rule")
	err := s.opts.Ack(rule)
	switch {
	case err == nil:
		s.logger().Info("alert acknowledged", "rule", rule, "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrUnknownRule):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrNotFiring):
		http.Error(w, err.Error(), http.StatusConflict)
	default:
		s.logger().Warn("alert acknowledgement failed", "rule", rule, "err", err)
		http.Error(w, "acknowledgement failed", http.StatusInternalServerError)
	}
}

// bearer checks r's bearer token against the acknowledgement token,
// answering 429 to a client with too many wrong tokens this minute and 401
// to a wrong one (counted and logged under what, the route's purpose).
func (s *Server) bearer(w http.ResponseWriter, r *http.Request, what string) bool {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if s.fails.blocked(host, s.opts.Clock()) {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "too many wrong tokens; wait a minute", http.StatusTooManyRequests)
		return false
	}
	if !s.authorized(r) {
		n := s.fails.add(host, s.opts.Clock())
		if s.opts.AuthFailures != nil {
			s.opts.AuthFailures.Inc()
		}
		if n == 1 || n == maxFails {
			s.logger().Warn(what+" with a missing or wrong token", "remote", host, "failures_this_minute", n)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgegw"`)
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return false
	}
	return true
}

// maxFails wrong tokens from one address within failWindow make it wait
// until the window has passed: the token cannot be guessed at line rate.
const (
	maxFails   = 5
	failWindow = time.Minute
)

// failures counts wrong tokens per client address.
type failures struct {
	mu sync.Mutex
	by map[string][]time.Time
}

// add records a failure of host at now and returns how many it had within
// the window.
func (f *failures) add(host string, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == nil {
		f.by = map[string][]time.Time{}
	}
	if len(f.by) > 10000 { // a flood of addresses: forget them rather than grow
		clear(f.by)
	}
	ts := append(recent(f.by[host], now), now)
	f.by[host] = ts
	return len(ts)
}

func (f *failures) blocked(host string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := recent(f.by[host], now)
	if len(ts) == 0 {
		delete(f.by, host)
	} else {
		f.by[host] = ts
	}
	return len(ts) >= maxFails
}

func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= failWindow {
		i++
	}
	return ts[i:]
}

// authorized reports whether r carries "Authorization: Bearer <AckToken>".
// Both sides are hashed first so that the constant-time comparison does
// not leak the token's length either.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(s.opts.AckToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (s *Server) logger() *slog.Logger {
	if s.opts.Logger != nil {
		return s.opts.Logger
	}
	return slog.Default()
}
