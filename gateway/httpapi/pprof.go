package httpapi

import (
	"net"
	"net/http"
	"net/http/pprof"
)

// mountPprof serves Go's runtime profiles (http.pprof: true) for diagnosis
// in the field:
//
//	go tool pprof http://127.0.0.1:8080/debug/pprof/profile?seconds=30
//
// They show the program's insides (goroutine stacks, the command line) and
// a CPU profile costs a few per cent while it runs, so a client must be on
// loopback (an engineer logged in on the gateway, or an ssh tunnel) or
// present the acknowledgement token as a bearer token.
func (s *Server) mountPprof(mux *http.ServeMux) {
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !loopback(r.RemoteAddr) {
				if s.opts.AckToken == "" {
					http.Error(w, "pprof: only for loopback clients (no acknowledgement token is configured)", http.StatusForbidden)
					return
				}
				if !s.bearer(w, r, "pprof") {
					return
				}
			}
			// net/http/pprof itself moves the write deadline on by
			// ?seconds= for a CPU profile or a trace.
			h(w, r)
		}
	}
	mux.HandleFunc("GET /debug/pprof/", guard(pprof.Index)) // also heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("GET /debug/pprof/cmdline", guard(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", guard(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", guard(pprof.Symbol))
	mux.HandleFunc("POST /debug/pprof/symbol", guard(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", guard(pprof.Trace))
}

// loopback reports whether a request's remote address is on this host.
func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
