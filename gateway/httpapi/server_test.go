package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func testServer(ready bool) *Server {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "edgegw_readings_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	v := 81.5
	ts := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	return newServer(Options{
		Registry: reg,
		Sensors: func() []Sensor {
			return []Sensor{{ID: "press_temp", Driver: "mqtt", Unit: "C", Value: &v, TS: &ts, Quality: "good", Readings: 3},
				{ID: "never_seen", Driver: "mqtt"}}
		},
		Alerts: func() []Alert {
			return []Alert{{Rule: "press_overtemp", State: "firing", Severity: "critical", Since: &ts, Value: &v, Message: "hot"}}
		},
		Health: func() Health { return Health{Gateway: "gw-1", Ready: ready, UplinkConnected: false} },
	})
}

func get(t *testing.T, h http.Handler, method, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

func TestRoutes(t *testing.T) {
	h := testServer(true).Handler()
	cases := []struct {
		method, path string
		code         int
		contains     string
		ctype        string
	}{
		{"GET", "/healthz", 200, "ok", "text/plain"},
		{"GET", "/readyz", 200, `"ready": true`, "application/json"},
		{"GET", "/api/sensors", 200, `"id": "press_temp"`, "application/json"},
		{"GET", "/api/alerts", 200, `"state": "firing"`, "application/json"},
		{"GET", "/api/machines", 200, `[]`, "application/json"},
		{"GET", "/api/health", 200, `"gateway": "gw-1"`, "application/json"},
		{"GET", "/metrics", 200, "edgegw_readings_total 3", "text/plain"},
		{"GET", "/", 200, "<title>edgegw</title>", "text/html"},
		{"GET", "/app.js", 200, "EventSource", "text/javascript"},
		{"GET", "/app.css", 200, "data-state", "text/css"},
		{"GET", "/api/state", 200, `"ack_enabled": false`, "application/json"},
		{"GET", "/static/index.html", 404, "", ""}, // no file server, no listing
		{"GET", "/nope", 404, "", ""},
		{"POST", "/api/alerts", 405, "", ""}, // read-only
		{"DELETE", "/", 405, "", ""},
	}
	for _, tc := range cases {
		code, body, hdr := get(t, h, tc.method, tc.path)
		if code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.code)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s: body lacks %q:\n%s", tc.method, tc.path, tc.contains, body)
		}
		if tc.ctype != "" && !strings.HasPrefix(hdr.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, hdr.Get("Content-Type"))
		}
	}
}

func TestSensorJSONHasNullsBeforeFirstReading(t *testing.T) {
	_, body, _ := get(t, testServer(true).Handler(), "GET", "/api/sensors")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(body), &rows); err != nil {
		t.Fatal(err)
	}
	if rows[1]["value"] != nil || rows[1]["ts"] != nil {
		t.Errorf("a sensor never seen: %v", rows[1])
	}
	if rows[0]["value"] != 81.5 {
		t.Errorf("press_temp value %v", rows[0]["value"])
	}
}

func TestNotReady(t *testing.T) {
	code, _, _ := get(t, testServer(false).Handler(), "GET", "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while not ready: %d", code)
	}
	// Alive all the same.
	if code, _, _ := get(t, testServer(false).Handler(), "GET", "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}

func TestListenAndStop(t *testing.T) {
	o := testServer(true).opts
	o.Listen = "127.0.0.1:0"
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Options{Listen: s.Addr()}); err == nil {
		t.Error("a second Listen on the same port did not fail")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// The page may load only its own files and may not be framed; nothing
// embedded is sniffed as another type.
func TestPageHeaders(t *testing.T) {
	h := testServer(true).Handler()
	_, _, hdr := get(t, h, "GET", "/")
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, p := range []string{"/", "/app.js", "/app.css"} {
		if _, _, hdr := get(t, h, "GET", p); hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", p)
		}
	}
}
