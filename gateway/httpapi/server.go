// Package httpapi serves the gateway's HTTP surface on http.listen: the
// plant-floor page, the JSON API, health and Prometheus metrics. It reads
// the gateway's state through the functions in Options. Every route is a
// read-only GET except one: an operator's acknowledgement of a firing alert
// (POST /api/alerts/{rule}/ack, see ack.go), which needs a bearer token.
package httpapi

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sensor is one row of /api/sensors.
type Sensor struct {
	ID       string     `json:"id"`
	Driver   string     `json:"driver"`
	Unit     string     `json:"unit"`
	Value    *float64   `json:"value"` // null before the first reading or when not a number
	Quality  string     `json:"quality,omitempty"`
	TS       *time.Time `json:"ts"`
	AgeS     *float64   `json:"age_s"`
	Readings uint64     `json:"readings"`
}

// Alert is one row of /api/alerts.
type Alert struct {
	Rule     string            `json:"rule"`
	Expr     string            `json:"expr"`
	State    string            `json:"state"` // inactive | pending | firing
	Severity string            `json:"severity"`
	Since    *time.Time        `json:"since"`
	Value    *float64          `json:"value"`
	Message  string            `json:"message"`
	Labels   map[string]string `json:"labels,omitempty"`
	Acked    bool              `json:"acked"` // an operator acknowledged the firing alert
}

// Machine is one row of /api/machines.
type Machine struct {
	Name           string     `json:"name"`
	State          string     `json:"state"` // up | down | unknown
	Since          *time.Time `json:"since"`
	StopStart      *time.Time `json:"stop_start"` // the open stop's start, null when running
	DowntimeTodayS float64    `json:"downtime_today_s"`
	StopsToday     int        `json:"stops_today"`
	Availability   float64    `json:"availability"` // 0..1 over today so far
	Reason         *float64   `json:"reason"`       // the last stop's reason code, from the machine's reason sensor
	Running        string     `json:"running"`
}

// Health is the gateway's own state, shown on the page and in /readyz.
type Health struct {
	Gateway         string `json:"gateway"`
	Version         string `json:"version"`
	UplinkConnected bool   `json:"uplink_connected"`
	SpoolRecords    int64  `json:"spool_records"`
	SpoolBytes      int64  `json:"spool_bytes"`
	Ready           bool   `json:"ready"`
}

// Options wires the server to the gateway.
type Options struct {
	Listen   string
	Registry *prometheus.Registry
	Sensors  func() []Sensor
	Alerts   func() []Alert
	Machines func() []Machine
	Health   func() Health
	Logger   *slog.Logger
	// AckToken is the bearer token POST /api/alerts/{rule}/ack requires
	// (alerts.ack_token_file's content). Empty: acknowledging is disabled
	// and the route answers 403.
	AckToken string
	// Ack acknowledges rule's firing alert. Its error wraps ErrUnknownRule
	// (answered 404) or ErrNotFiring (409); any other error is a 500.
	Ack func(rule string) error
}

// Server is the HTTP server.
type Server struct {
	opts Options
	srv  *http.Server
	ln   net.Listener
}

//go:embed static
var static embed.FS

// Listen binds the address at once, so a port already taken is an error at
// start rather than a log line later.
func Listen(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	return s, nil
}

// Addr is the bound address (useful with port 0 in tests).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done, then shuts down within two seconds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Handler is the routing table, exported for httptest.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Alive and serving: 200 even while Kafka or a port is away.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		h := s.opts.Health()
		code := http.StatusOK
		if !h.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, h)
	})
	mux.HandleFunc("GET /api/sensors", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(s.opts.Sensors()))
	})
	mux.HandleFunc("GET /api/alerts", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(s.opts.Alerts()))
	})
	mux.HandleFunc("POST /api/alerts/{rule}/ack", s.ack)
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, _ *http.Request) {
		var ms []Machine
		if s.opts.Machines != nil {
			ms = s.opts.Machines()
		}
		writeJSON(w, http.StatusOK, nonNil(ms))
	})
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.opts.Health())
	})
	if s.opts.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		page, _ := static.ReadFile("static/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(page)
	})
	return mux
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
