package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// GET /events is the page's live feed, as server-sent events: first a
// `retry: 2000` (how long a browser waits before reconnecting), then the
// whole State as `event: state` at once, every EventInterval, and soon
// after each Notify. Each event is complete, so a screen that reconnects,
// to this process or to the next one after a restart, needs nothing it
// missed. The stream ends when the client goes or the server stops.

const (
	// reconnectMillis is the `retry:` the stream announces.
	reconnectMillis = 2000
	// minGap spaces the events a burst of Notify calls causes.
	minGap = 200 * time.Millisecond
	// writeGrace is how long one event's write may take before the
	// client is given up as gone (a screen switched off mid-stream).
	writeGrace = 10 * time.Second
)

// streams tracks the open /events streams and wakes them.
type streams struct {
	mu      sync.Mutex
	open    int
	changed chan struct{} // closed by notify, then replaced
	done    chan struct{} // closed when the server stops
	once    sync.Once
	seq     atomic.Uint64 // event ids, across streams
}

func newStreams() *streams {
	return &streams{changed: make(chan struct{}), done: make(chan struct{})}
}

func (st *streams) notify() {
	st.mu.Lock()
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
}

func (st *streams) wake() <-chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.changed
}

func (st *streams) acquire(limit int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open >= limit {
		return false
	}
	st.open++
	return true
}

func (st *streams) release() {
	st.mu.Lock()
	st.open--
	st.mu.Unlock()
}

func (st *streams) close() { st.once.Do(func() { close(st.done) }) }

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	f, err := s.parseFilter(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !s.streams.acquire(s.opts.MaxStreams) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many /events streams open", http.StatusServiceUnavailable)
		return
	}
	defer s.streams.release()
	if g := s.opts.Streams; g != nil {
		g.Inc()
		defer g.Dec()
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold events back
	w.WriteHeader(http.StatusOK)

	tick := time.NewTicker(s.opts.EventInterval)
	defer tick.Stop()
	buf := []byte("retry: " + strconv.Itoa(reconnectMillis) + "\n\n")
	var last time.Time
	for {
		wake := s.streams.wake()
		buf = s.appendEvent(buf, f)
		_ = rc.SetWriteDeadline(time.Now().Add(writeGrace))
		if _, err := w.Write(buf); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		buf, last = buf[:0], time.Now()
		select {
		case <-r.Context().Done():
			return
		case <-s.streams.done:
			return
		case <-tick.C:
		case <-wake:
			if gap := time.Until(last.Add(minGap)); gap > 0 {
				select {
				case <-time.After(gap):
				case <-r.Context().Done():
					return
				case <-s.streams.done:
					return
				}
			}
		}
	}
}

// appendEvent appends one `state` event. encoding/json escapes newlines
// inside strings, so the data is one line, as the format needs.
func (s *Server) appendEvent(buf []byte, f Filter) []byte {
	data, err := json.Marshal(s.state(f))
	if err != nil {
		s.logger().Error("events: state not encoded", "err", err)
		data = []byte("null")
	}
	buf = append(buf, "id: "...)
	buf = strconv.AppendUint(buf, s.streams.seq.Add(1), 10)
	buf = append(buf, "\nevent: state\ndata: "...)
	buf = append(buf, data...)
	return append(buf, "\n\n"...)
}
