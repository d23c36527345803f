package rules

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/expr-lang/expr/ast"
)

// History functions. An expression calls them over a sensor it names
// directly, as an identifier:
//
//	age(press_temp) > 30            seconds since press_temp's latest reading
//	avg(oven_temp, "5m") > 200      mean of the readings in the last 5 minutes
//	min(s, "W"), max(s, "W")        least and greatest reading in the window
//	rate(press_parts, "1m") < 0.5   per-second increase of a counter
//	delta(s, "W")                   last minus first reading in the window
//	changes(s, "W")                 how many times the value changed in it
//
// The window is a Go duration string literal ("30s", "5m", "1h30m"). A
// window W at time now holds the readings recorded in (now-W, now], so a
// reading leaves the window exactly W after it arrived.
//
// min and max are history functions when their second argument is a
// string; with numbers they stay expr's builtins (max(a, b) > 80).
//
// Data that is not there: a function with nothing to compute from makes
// the whole evaluation false, as a plain sensor without a value does. So
// avg/min/max/changes need a reading in the window, rate and delta two;
// otherwise the rule is not firing (a clear: expression is not true).
// age() always has a value: for a sensor never seen it counts from the
// gateway's start, so a sensor that never reports goes stale too.
//
// Time is the engine's: a reading is recorded at the `now` Observe is
// given, and windows and age() are measured to the `now` of the Observe
// or Tick evaluating them. Bad-quality and NaN readings are not recorded
// and do not reset age().
//
// How it is compiled: Check parses the expression, validates each call,
// and turns it into a query (function, sensor index, window); an ast
// visitor (expr.Patch) then replaces each call by a call without
// arguments to a function registered for that one query, which reads the
// engine's history directly. No string is parsed at evaluation time.
// Windowed functions keep running state per query and slide it with the
// window rather than going through all its points (see window.go).

// MaxHistoryPoints caps each sensor's ring buffer. A window holding more
// readings than this (a 10 Hz sensor over more than 16 minutes) is
// computed over the newest MaxHistoryPoints of them: the oldest are
// dropped first.
const MaxHistoryPoints = 10000

type queryKind uint8

const (
	qAge queryKind = iota
	qAvg
	qMin
	qMax
	qRate
	qDelta
	qChanges
)

var queryKinds = map[string]queryKind{
	"age": qAge, "avg": qAvg, "min": qMin, "max": qMax,
	"rate": qRate, "delta": qDelta, "changes": qChanges,
}

var queryNames = [...]string{qAge: "age", qAvg: "avg", qMin: "min", qMax: "max", qRate: "rate", qDelta: "delta", qChanges: "changes"}

func (k queryKind) String() string { return queryNames[k] }

// query is one distinct history function call: what, of which sensor,
// over which window (0 for age).
type query struct {
	kind   queryKind
	sensor int
	window time.Duration
}

// historyCall tells whether node is a history function call and, if it
// is, the query it asks or why it is wrong (q.sensor -1 and no message: an unknown sensor, which
// the caller reports). locals are the expression's
// `let` names, which are not sensors.
func (t *sensorTable) historyCall(node ast.Node, locals map[string]bool) (q query, isHistory bool, msg string) {
	name, args := callOf(node)
	kind, ok := queryKinds[name]
	if !ok {
		return q, false, ""
	}
	if kind == qMin || kind == qMax {
		// min(a, b) of numbers is expr's builtin.
		if len(args) != 2 {
			return q, false, ""
		}
		if _, ok := args[1].(*ast.StringNode); !ok {
			return q, false, ""
		}
	}
	q.kind = kind
	if kind == qAge {
		if len(args) != 1 {
			return q, true, "age: wants one sensor, as age(press_temp)"
		}
	} else if len(args) != 2 {
		return q, true, fmt.Sprintf("%s: wants a sensor and a window, as %[1]s(press_temp, \"5m\")", name)
	}
	id, ok := args[0].(*ast.IdentifierNode)
	if !ok || locals[id.Value] {
		return q, true, fmt.Sprintf("%s: first argument must be a sensor id, not %s", name, args[0].String())
	}
	q.sensor, ok = t.index[id.Value]
	if !ok {
		q.sensor = -1
		return q, true, "" // reported as an unknown sensor
	}
	if kind == qAge {
		return q, true, ""
	}
	w, ok := args[1].(*ast.StringNode)
	if !ok {
		return q, true, fmt.Sprintf("%s: window must be a quoted duration such as \"5m\", not %s", name, args[1].String())
	}
	d, err := time.ParseDuration(w.Value)
	if err != nil {
		return q, true, fmt.Sprintf("%s: window %q is not a duration", name, w.Value)
	}
	if d <= 0 {
		return q, true, fmt.Sprintf("%s: window %q is not positive", name, w.Value)
	}
	q.window = d
	return q, true, ""
}

// callOf returns the name and arguments of a call; "" if node is none.
// expr parses a call of one of its builtins (min, max) as a BuiltinNode,
// any other as a CallNode.
func callOf(node ast.Node) (string, []ast.Node) {
	switch n := node.(type) {
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			return id.Value, n.Arguments
		}
	case *ast.BuiltinNode:
		return n.Name, n.Arguments
	}
	return "", nil
}

// queryIndex returns q's index in the history's query table, adding it.
func (h *history) queryIndex(q query) int {
	i, ok := h.qindex[q]
	if !ok {
		i = len(h.queries)
		h.queries = append(h.queries, q)
		h.qindex[q] = i
	}
	return i
}

// queryFunc is the name of the function a call asking query i becomes.
// It is no valid identifier, so no expression can call it by itself.
func queryFunc(q query, i int) string { return fmt.Sprintf("%s#%d", q.kind, i) }

// historyPatcher replaces every history call (already validated) by a
// call of its query's function. It runs inside expr.Compile, on expr's
// own parse of the same source.
type historyPatcher struct{ t *sensorTable }

func (p historyPatcher) Visit(node *ast.Node) {
	q, isHistory, msg := p.t.historyCall(*node, nil)
	if !isHistory || msg != "" {
		return
	}
	i := p.t.hist.queryIndex(q)
	ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: queryFunc(q, i)}})
}

// history is what history functions read: every sensor's latest reading
// time, and a ring of recent readings for each sensor a window names.
// The engine writes it under its lock before evaluating.
type history struct {
	start time.Time // the gateway's start: age() of a sensor never seen
	now   time.Time // of the evaluation running
	// missing is set by a function that had no data during the
	// evaluation running: that evaluation counts as false.
	missing bool

	seen  []time.Time // per sensor: latest good reading; zero if none yet
	rings []*ring     // per sensor; nil if no window names it

	queries []query
	qindex  map[query]int
	// aggs are per query (index as in queries) the running state of a
	// windowed one, nil for age; boxes its latest result.
	aggs  []*agg
	boxes []box
}

func newHistory() *history { return &history{qindex: map[query]int{}} }

// size allocates what the queries need for n sensors: a ring per sensor
// some window names, keeping that sensor's largest window. interval is a
// sensor's configured reading period (0 if unknown), to size the ring's
// first allocation; it grows up to maxPoints as readings come.
func (h *history) size(n int, interval func(int) time.Duration, maxPoints int) {
	h.seen = make([]time.Time, n)
	h.rings = make([]*ring, n)
	for _, q := range h.queries {
		if q.window == 0 {
			continue
		}
		r := h.rings[q.sensor]
		if r == nil {
			r = &ring{max: maxPoints}
			h.rings[q.sensor] = r
		}
		r.keep = max(r.keep, int64(q.window))
	}
	for s, r := range h.rings {
		if r == nil {
			continue
		}
		r.first = 16
		if iv := interval(s); iv > 0 {
			r.first = int(r.keep/int64(iv)) + 2
		}
		r.first = min(max(r.first, 4), r.max)
	}
	h.aggs = make([]*agg, len(h.queries))
	h.boxes = make([]box, len(h.queries))
	for i, q := range h.queries {
		if q.window != 0 {
			r := h.rings[q.sensor]
			h.aggs[i] = newAgg(q, r)
			r.aggs = append(r.aggs, h.aggs[i])
		}
	}
}

// record notes a good reading of sensor s at now.
func (h *history) record(s int, v float64, now time.Time) {
	h.seen[s] = now
	if r := h.rings[s]; r != nil {
		r.add(now.UnixNano(), v)
	}
}

// eval answers q at h.now; NaN (and h.missing set) if there is no data.
// A windowed query compiled into some rule is answered by its agg; any
// other (tests ask some) by a scan of the window.
func (h *history) eval(q query) float64 {
	if i, ok := h.qindex[q]; ok && i < len(h.aggs) && h.aggs[i] != nil {
		return h.evalAgg(h.aggs[i])
	}
	if q.kind == qAge {
		return h.age(q.sensor)
	}
	now := h.now.UnixNano()
	r := h.rings[q.sensor]
	lo, hi := r.span(now-int64(q.window), now)
	v, missing := scan(q.kind, r, lo, hi)
	if missing {
		h.missing = true
	}
	return v
}

// evalQuery answers query i of h.queries as an expression sees it: boxed,
// reusing the previous box when the value is the same (bit for bit), so
// that a window that has not moved costs no allocation.
func (h *history) evalQuery(i int) any {
	var v float64
	if a := h.aggs[i]; a != nil {
		v = h.evalAgg(a)
	} else {
		v = h.age(h.queries[i].sensor)
	}
	b := &h.boxes[i]
	if bits := math.Float64bits(v); b.v == nil || bits != b.bits {
		b.v, b.bits = v, bits
	}
	return b.v
}

// box is a float64 as an interface value (a query's latest result, a
// recent reading value), with its bits to tell whether it can be reused.
type box struct {
	v    any
	bits uint64
}

func (h *history) evalAgg(a *agg) float64 {
	a.slide(h.now.UnixNano())
	v, missing := a.result()
	if missing {
		h.missing = true
	}
	return v
}

// age is age(sensor s) at h.now.
func (h *history) age(s int) float64 {
	since := h.seen[s]
	if since.IsZero() {
		since = h.start
	}
	return max(h.now.Sub(since).Seconds(), 0)
}

// scan answers a windowed query of kind k over the points [lo, hi) of r
// by going through all of them; missing when there is no data. It is
// what every evaluation did before aggs, their reference in tests.
func scan(k queryKind, r *ring, lo, hi int) (v float64, missing bool) {
	n := hi - lo
	if n == 0 || n < 2 && (k == qRate || k == qDelta) {
		return math.NaN(), true
	}
	t1, v1, t2, v2 := r.slices(lo, hi)
	switch k {
	case qAvg:
		sum := 0.0
		for _, v := range v1 {
			sum += v
		}
		for _, v := range v2 {
			sum += v
		}
		return sum / float64(n), false
	case qMin:
		m := math.Inf(1)
		for _, v := range v1 {
			m = min(m, v)
		}
		for _, v := range v2 {
			m = min(m, v)
		}
		return m, false
	case qMax:
		m := math.Inf(-1)
		for _, v := range v1 {
			m = max(m, v)
		}
		for _, v := range v2 {
			m = max(m, v)
		}
		return m, false
	case qDelta:
		return last(v1, v2) - v1[0], false
	case qChanges:
		c, prev := 0, v1[0]
		for _, v := range v1[1:] {
			if v != prev {
				c++
			}
			prev = v
		}
		for _, v := range v2 {
			if v != prev {
				c++
			}
			prev = v
		}
		return float64(c), false
	case qRate:
		secs := float64(last(t1, t2)-t1[0]) / 1e9
		if secs <= 0 {
			return math.NaN(), true
		}
		return increase(v1, v2) / secs, false
	}
	panic("rules: unknown query kind") // unreachable: kinds come from queryKinds
}

// increase is a counter's increase over the points, as Prometheus counts
// it: a value lower than the one before is a counter reset (a restarted
// PLC, a power cycle), after which the counter counted up from 0, so it
// adds the new value rather than subtracting.
func increase(v1, v2 []float64) float64 {
	inc, prev := 0.0, v1[0]
	for _, vs := range [2][]float64{v1[1:], v2} {
		for _, v := range vs {
			if v >= prev {
				inc += v - prev
			} else {
				inc += v
			}
			prev = v
		}
	}
	return inc
}

func last[T any](a, b []T) T {
	if len(b) > 0 {
		return b[len(b)-1]
	}
	return a[len(a)-1]
}

// ring is one sensor's recent readings, oldest first, in a circular
// buffer: times in Unix nanoseconds, never decreasing.
type ring struct {
	ts   []int64
	vs   []float64
	head int // index of the oldest point
	n    int // points held
	// base is the sequence number of the oldest point: every point added
	// takes the next number, by which aggs refer to it.
	base uint64
	// aggs are told of each point before it is evicted.
	aggs []*agg
	// keep is the largest window over this sensor: a point that old
	// relative to the newest can be in no window any more.
	keep  int64
	first int // capacity of the first allocation
	max   int // capacity cap; past it the oldest point is dropped
	// dropped counts points dropped for the cap while still in a window.
	dropped uint64
}

func (r *ring) idx(i int) int {
	j := r.head + i
	if j >= len(r.ts) {
		j -= len(r.ts)
	}
	return j
}

func (r *ring) add(t int64, v float64) {
	if r.n > 0 {
		// Keep the ring sorted should the caller's clock step back.
		t = max(t, r.ts[r.idx(r.n-1)])
	}
	for r.n > 0 && r.ts[r.head] <= t-r.keep {
		r.evict()
	}
	if r.n == len(r.ts) {
		if len(r.ts) < r.max {
			r.grow()
		} else {
			r.evict()
			r.dropped++
		}
	}
	j := r.idx(r.n)
	r.ts[j], r.vs[j] = t, v
	r.n++
}

// evict drops the oldest point, first taking it out of every agg.
func (r *ring) evict() {
	for _, a := range r.aggs {
		a.evict(r.base)
	}
	r.head = r.idx(1)
	r.n--
	r.base++
}

// at and value are the time and value of the point of sequence number s,
// which the ring holds.
func (r *ring) at(s uint64) int64      { return r.ts[r.idx(int(s-r.base))] }
func (r *ring) value(s uint64) float64 { return r.vs[r.idx(int(s-r.base))] }

func (r *ring) grow() {
	c := r.first
	if len(r.ts) > 0 {
		c = min(2*len(r.ts), r.max)
	}
	ts, vs := make([]int64, c), make([]float64, c)
	t1, v1, t2, v2 := r.slices(0, r.n)
	copy(ts[copy(ts, t1):], t2)
	copy(vs[copy(vs, v1):], v2)
	r.ts, r.vs, r.head = ts, vs, 0
}

// span returns the logical indices [lo, hi) of the points in (from, to].
func (r *ring) span(from, to int64) (lo, hi int) {
	lo = sort.Search(r.n, func(i int) bool { return r.ts[r.idx(i)] > from })
	hi = lo + sort.Search(r.n-lo, func(i int) bool { return r.ts[r.idx(lo+i)] > to })
	return lo, hi
}

// slices returns the points [lo, hi) as at most two runs of the buffer.
func (r *ring) slices(lo, hi int) (t1 []int64, v1 []float64, t2 []int64, v2 []float64) {
	if lo >= hi {
		return nil, nil, nil, nil
	}
	a, b := r.idx(lo), r.idx(hi-1)+1
	if a < b {
		return r.ts[a:b], r.vs[a:b], nil, nil
	}
	return r.ts[a:], r.vs[a:], r.ts[:b], r.vs[:b]
}
