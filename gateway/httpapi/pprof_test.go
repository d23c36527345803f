package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPprof(t *testing.T) {
	const token = "s3cret-token"
	cases := []struct {
		name   string
		pprof  bool
		token  string // configured
		remote string
		path   string
		auth   string
		code   int
		body   string
	}{
		{"off by default", false, token, "127.0.0.1:5000", "/debug/pprof/", "", 404, ""},
		{"off: profile too", false, token, "127.0.0.1:5000", "/debug/pprof/heap", "", 404, ""},
		{"loopback", true, "", "127.0.0.1:5000", "/debug/pprof/", "", 200, "goroutine"},
		{"loopback v6", true, "", "[::1]:5000", "/debug/pprof/goroutine?debug=1", "", 200, "goroutine profile:"},
		{"heap", true, "", "127.0.0.1:5000", "/debug/pprof/heap?debug=1", "", 200, "heap profile:"},
		{"remote without a configured token", true, "", "10.20.1.7:5000", "/debug/pprof/", "Bearer " + token, 403, "only for loopback"},
		{"remote without token", true, token, "10.20.1.7:5000", "/debug/pprof/", "", 401, "bearer token"},
		{"remote wrong token", true, token, "10.20.1.7:5000", "/debug/pprof/heap", "Bearer nope", 401, "bearer token"},
		{"remote with token", true, token, "10.20.1.7:5000", "/debug/pprof/heap?debug=1", "Bearer " + token, 200, "heap profile:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newServer(Options{Pprof: c.pprof, AckToken: c.token})
			r := httptest.NewRequest("GET", c.path, nil)
			r.RemoteAddr = c.remote
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			if w.Code != c.code || !strings.Contains(w.Body.String(), c.body) {
				t.Fatalf("%s: %d %q, want %d containing %q", c.path, w.Code, w.Body.String(), c.code, c.body)
			}
		})
	}
}

// TestPprofWrongTokensLimited: the token cannot be guessed through pprof
// any faster than through acknowledging: the same five a minute.
func TestPprofWrongTokensLimited(t *testing.T) {
	now := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	s := newServer(Options{Pprof: true, AckToken: "right", Clock: func() time.Time { return now }})
	get := func(auth string) int {
		r := httptest.NewRequest("GET", "/debug/pprof/", nil)
		r.RemoteAddr = "10.20.1.7:5000"
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		return w.Code
	}
	for i := range maxFails {
		if code := get("Bearer wrong"); code != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i+1, code)
		}
	}
	if code := get("Bearer right"); code != 429 {
		t.Fatalf("right token after %d wrong ones: %d, want 429", maxFails, code)
	}
	now = now.Add(failWindow)
	if code := get("Bearer right"); code != 200 {
		t.Fatalf("right token a minute later: %d, want 200", code)
	}
}

// TestPprofCPUProfile takes a real one-second CPU profile through a
// listening server, as `go tool pprof` does.
func TestPprofCPUProfile(t *testing.T) {
	s, err := Listen(Options{Listen: "127.0.0.1:0", Pprof: true, Health: func() Health { return Health{} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Get("http://" + s.Addr() + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// A profile is gzip-compressed protobuf.
	if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile: %d, %d bytes starting %q", resp.StatusCode, len(body), body[:min(len(body), 40)])
	}
}
