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
	"mime"
	"net"
	"net/http"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sensor is one row of /api/sensors.
type Sensor struct {
	ID      string     `json:"id"`
	Driver  string     `json:"driver"`
	Unit    string     `json:"unit"`
	Value   *float64   `json:"value"` // null before the first reading or when not a number
	Quality string     `json:"quality,omitempty"`
	TS      *time.Time `json:"ts"`
	AgeS    *float64   `json:"age_s"`
	// Stale: no reading for longer than the sensor's staleness limit
	// (three intervals, at least 10 s; 60 s for a sensor without an
	// interval), or none yet.
	Stale    bool   `json:"stale"`
	Readings uint64 `json:"readings"`
	Machine  string `json:"machine"` // the machine it belongs to, "" for none
	Line     string `json:"line"`    // its machine's line, else the gateway's
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
	Acked    bool              `json:"acked"`   // an operator acknowledged the firing alert
	Machine  string            `json:"machine"` // the machine it is about, "" for none
	Line     string            `json:"line"`    // its machine's line, else the gateway's
}

// Machine is one row of /api/machines.
type Machine struct {
	Name           string     `json:"name"`
	Line           string     `json:"line"`
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
	Gateway string `json:"gateway"`
	Version string `json:"version"`
	// Ready: config loaded and spool open (what /readyz answers 200 for).
	Ready           bool   `json:"ready"`
	UplinkConnected bool   `json:"uplink_connected"`
	UplinkError     string `json:"uplink_error"` // the last produce error while not connected
	SpoolRecords    int64  `json:"spool_records"`
	SpoolBytes      int64  `json:"spool_bytes"`
	SpoolMaxBytes   int64  `json:"spool_max_bytes"`
	// SpoolOldestTS is the time of the oldest record waiting for Kafka:
	// how far behind Kafka is. Null when the spool is empty.
	SpoolOldestTS   *time.Time       `json:"spool_oldest_ts"`
	SpoolOldestAgeS *float64         `json:"spool_oldest_age_s"`
	Dropped         uint64           `json:"dropped"`
	DroppedByReason map[string]int64 `json:"dropped_by_reason"`
	// ClockSynced: whether the kernel's clock is synchronised (NTP);
	// null where that cannot be told.
	ClockSynced *bool `json:"clock_synced"`
}

// GatewayInfo names the gateway on the page.
type GatewayInfo struct {
	ID      string `json:"id"`
	Site    string `json:"site"`
	Line    string `json:"line"`
	Version string `json:"version"`
}

// Options wires the server to the gateway.
type Options struct {
	Listen   string
	Gateway  GatewayInfo
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
	// Clock gives the time the page's timers count from; default time.Now.
	Clock func() time.Time
	// EventInterval is how often /events sends the state when nothing
	// changes; default 1s.
	EventInterval time.Duration
	// MaxStreams bounds the /events streams served at once (screens on
	// the plant floor, a handful); more get 503. Default 32.
	MaxStreams int
	// Streams, if set, counts the open /events streams.
	Streams prometheus.Gauge
	// AuthFailures, if set, counts acknowledgements refused for a missing
	// or wrong token.
	AuthFailures prometheus.Counter
	// Pprof mounts Go's profiles at /debug/pprof/ (pprof.go).
	Pprof bool
}

// Server is the HTTP server.
type Server struct {
	opts Options
	srv  *http.Server
	ln   net.Listener

	streams *streams // the /events streams (events.go)
	fails   failures // wrong ack tokens per client (ack.go)
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
	s := newServer(opts)
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// An /events stream pushes its write deadline on before each
		// event; everything else answers well within this.
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(s.logger().Handler(), slog.LevelWarn),
	}
	return s, nil
}

// newServer fills in Options' defaults.
func newServer(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.EventInterval <= 0 {
		opts.EventInterval = time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 32
	}
	if opts.Machines == nil {
		opts.Machines = func() []Machine { return nil }
	}
	return &Server{opts: opts, streams: newStreams()}
}

// Addr is the bound address (useful with port 0 in tests).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done, then shuts down within two seconds. Open
// /events streams end first, so that the screens reconnect to whatever
// serves next.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.streams.close()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Notify wakes every /events stream to send the state now rather than at
// its next interval: the gateway calls it on an alert transition or a
// downtime event, so the screens show those within milliseconds.
func (s *Server) Notify() { s.streams.notify() }

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
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		f, err := s.parseFilter(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, s.state(f))
	})
	mux.HandleFunc("GET /api/sensors", func(w http.ResponseWriter, r *http.Request) {
		if st, ok := s.filtered(w, r); ok {
			writeJSON(w, http.StatusOK, st.Sensors)
		}
	})
	mux.HandleFunc("GET /api/alerts", func(w http.ResponseWriter, r *http.Request) {
		if st, ok := s.filtered(w, r); ok {
			writeJSON(w, http.StatusOK, st.Alerts)
		}
	})
	mux.HandleFunc("POST /api/alerts/{rule}/ack", s.ack)
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		if st, ok := s.filtered(w, r); ok {
			writeJSON(w, http.StatusOK, st.Machines)
		}
	})
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.opts.Health())
	})
	mux.HandleFunc("GET /events", s.events)
	if s.opts.Pprof {
		s.mountPprof(mux)
	}
	if s.opts.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}))
	}
	// The page's files, each at its own path: no file server, so no
	// directory listing and nothing but what is embedded.
	entries, _ := static.ReadDir("static")
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		route := "GET /" + name
		if name == "index.html" {
			route = "GET /{$}"
		}
		mux.HandleFunc(route, func(w http.ResponseWriter, _ *http.Request) {
			body, _ := static.ReadFile("static/" + name)
			ctype := mime.TypeByExtension(path.Ext(name))
			if ctype == "" {
				ctype = "application/octet-stream"
			}
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			if name == "index.html" {
				// The page loads only its own files and talks only to
				// its own gateway; it may not be framed by another site.
				w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
				w.Header().Set("X-Frame-Options", "DENY")
			}
			_, _ = w.Write(body)
		})
	}
	return mux
}

// filtered answers 400 for an unknown filter and otherwise returns the
// filtered state.
func (s *Server) filtered(w http.ResponseWriter, r *http.Request) (State, bool) {
	f, err := s.parseFilter(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return State{}, false
	}
	return s.state(f), true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
