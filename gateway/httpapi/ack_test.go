package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func ackServer(token string) (*Server, *[]string) {
	var acked []string
	return newServer(Options{
		AckToken: token,
		Ack: func(rule string) error {
			switch rule {
			case "press_overtemp":
				acked = append(acked, rule)
				return nil
			case "oil_low":
				return fmt.Errorf("rule %s: %w", rule, ErrNotFiring)
			case "broken":
				return fmt.Errorf("disk on fire")
			}
			return fmt.Errorf("rule %s: %w", rule, ErrUnknownRule)
		},
	}), &acked
}

func TestAck(t *testing.T) {
	const token = "s3cret-token"
	cases := []struct {
		name   string
		token  string // configured
		method string
		path   string
		auth   string
		body   string
		code   int
		msg    string
		acked  bool
	}{
		{"acknowledged", token, "POST", "/api/alerts/press_overtemp/ack", "Bearer " + token, "", 204, "", true},
		{"scheme case-insensitive", token, "POST", "/api/alerts/press_overtemp/ack", "bearer " + token, "", 204, "", true},
		{"small body ignored", token, "POST", "/api/alerts/press_overtemp/ack", "Bearer " + token, `{"by":"anna"}`, 204, "", true},
		{"no token configured", "", "POST", "/api/alerts/press_overtemp/ack", "Bearer " + token, "", 403, "acknowledgement disabled", false},
		{"missing token", token, "POST", "/api/alerts/press_overtemp/ack", "", "", 401, "bearer token", false},
		{"wrong token", token, "POST", "/api/alerts/press_overtemp/ack", "Bearer s3cret-tokeN", "", 401, "bearer token", false},
		{"token prefix", token, "POST", "/api/alerts/press_overtemp/ack", "Bearer s3cret", "", 401, "bearer token", false},
		{"basic auth", token, "POST", "/api/alerts/press_overtemp/ack", "Basic " + token, "", 401, "bearer token", false},
		{"unknown rule", token, "POST", "/api/alerts/nope/ack", "Bearer " + token, "", 404, "rule nope: unknown rule", false},
		{"not firing", token, "POST", "/api/alerts/oil_low/ack", "Bearer " + token, "", 409, "rule oil_low: alert is not firing", false},
		{"other failure", token, "POST", "/api/alerts/broken/ack", "Bearer " + token, "", 500, "acknowledgement failed", false},
		{"body too large", token, "POST", "/api/alerts/press_overtemp/ack", "Bearer " + token, strings.Repeat("x", 2<<10), 413, "over 1KiB", false},
		{"GET is not allowed", token, "GET", "/api/alerts/press_overtemp/ack", "Bearer " + token, "", 405, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, acked := ackServer(tc.token)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tc.code {
				t.Errorf("code %d, want %d (body %q)", rec.Code, tc.code, body)
			}
			if !strings.Contains(string(body), tc.msg) {
				t.Errorf("body %q lacks %q", body, tc.msg)
			}
			if got := len(*acked) == 1; got != tc.acked {
				t.Errorf("acked %v, want %v", *acked, tc.acked)
			}
			if tc.code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// Five wrong tokens from one address within a minute make it wait out the
// minute (429, even with the right token then); each refusal is counted.
func TestAckThrottlesWrongTokens(t *testing.T) {
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	var acked []string
	fails := prometheus.NewCounter(prometheus.CounterOpts{Name: "f"})
	s := newServer(Options{AckToken: "right", Clock: func() time.Time { return now }, AuthFailures: fails,
		Ack: func(rule string) error { acked = append(acked, rule); return nil }})
	h := s.Handler()
	post := func(token, from string) int {
		req := httptest.NewRequest("POST", "/api/alerts/r/ack", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.RemoteAddr = from + ":40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := 0; i < maxFails; i++ {
		if code := post("guess", "10.0.0.9"); code != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
		now = now.Add(time.Second)
	}
	if code := post("right", "10.0.0.9"); code != 429 {
		t.Errorf("right token after %d wrong ones: %d, want 429", maxFails, code)
	}
	if code := post("right", "10.0.0.10"); code != 204 {
		t.Errorf("another address: %d, want 204", code)
	}
	now = now.Add(failWindow)
	if code := post("right", "10.0.0.9"); code != 204 {
		t.Errorf("right token after the minute: %d, want 204", code)
	}
	if got := testutil.ToFloat64(fails); got != maxFails {
		t.Errorf("%v refusals counted, want %d", got, maxFails)
	}
	if len(acked) != 2 {
		t.Errorf("acknowledged %v", acked)
	}
}
