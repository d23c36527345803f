package rules

import "math"

// Windowed history functions kept incrementally. Each windowed query
// (function, sensor, window) has an agg: the span of its sensor's ring it
// covered at its latest evaluation and the running state of that span.
// An evaluation slides the span to the new window, adding the points that
// entered and taking out those that left, so it costs O(points moved)
// rather than O(points in the window):
//
//	avg      exact running sum of the values (xsum)
//	rate     exact running sum of the counter increases between neighbours
//	changes  running count of neighbours that differ
//	min, max a monotonic deque of the points that can still be the answer
//	delta    nothing: first and last point of the span
//
// The results are those of a scan over the window (history.scan, kept as
// the reference and for what an agg cannot answer), bit for bit, except
// that sums are correctly rounded (see xsum) where the scan's
// left-to-right sum rounded.
//
// When the window moves backwards (the caller's clock stepped back) the
// agg is rebuilt from the points in the window. Points the ring evicts are
// taken out of every agg first (ring.add), so an agg never loses track.
type agg struct {
	q      query
	r      *ring
	window int64
	valid  bool
	// lo, hi are the ring sequence numbers of the span [lo, hi).
	lo, hi uint64

	sum     xsum   // avg: values; rate: increases
	changes int    // changes
	dq      deque  // min, max: sequence numbers
	nan     uint64 // min, max: 1 + sequence number of the latest NaN point seen; 0 none
}

func newAgg(q query, r *ring) *agg {
	return &agg{q: q, r: r, window: int64(q.window)}
}

// slide moves a to the window (now-window, now] of its ring.
func (a *agg) slide(now int64) {
	r := a.r
	from, to := now-a.window, now
	end := r.base + uint64(r.n)
	lo, hi := a.lo, a.hi
	if !a.valid || lo < r.base ||
		hi > r.base && r.at(hi-1) > to || lo > r.base && r.at(lo-1) > from {
		a.rebuild(from, to)
		return
	}
	for hi < end && r.at(hi) <= to {
		a.push(hi)
		hi++
		a.hi = hi
	}
	for lo < hi && r.at(lo) <= from {
		a.popFront()
		lo++
	}
}

// rebuild sets a to the points in (from, to], from scratch.
func (a *agg) rebuild(from, to int64) {
	r := a.r
	l, h := r.span(from, to)
	a.lo, a.hi = r.base+uint64(l), r.base+uint64(l)
	a.sum.reset()
	a.changes = 0
	a.dq.reset()
	a.nan = 0
	a.valid = true
	for s := a.lo; s < r.base+uint64(h); s++ {
		a.push(s)
		a.hi = s + 1
	}
}

// push adds point s, the one at a.hi, to the span's state (the caller
// then advances a.hi).
func (a *agg) push(s uint64) {
	r := a.r
	switch a.q.kind {
	case qAvg:
		a.sum.add(r.value(s))
	case qRate:
		if s > a.lo {
			a.sum.add(increaseStep(r.value(s-1), r.value(s)))
		}
	case qChanges:
		if s > a.lo && r.value(s) != r.value(s-1) {
			a.changes++
		}
	case qMin, qMax:
		v := r.value(s)
		if v != v {
			a.nan = s + 1
			return
		}
		// Drop from the back what v makes unreachable. Ties go to the
		// newer point (same value, later to leave), except that among
		// zeros min keeps a -0 and max a +0, as math's min and max do.
		for a.dq.n > 0 {
			b := r.value(a.dq.back())
			if a.q.kind == qMin && !zlt(b, v) || a.q.kind == qMax && !zlt(v, b) {
				a.dq.popBack()
				continue
			}
			break
		}
		a.dq.pushBack(s)
	}
}

// popFront takes the oldest point of the span, a.lo, out of it.
func (a *agg) popFront() {
	r, s := a.r, a.lo
	switch a.q.kind {
	case qAvg:
		a.sum.remove(r.value(s))
	case qRate:
		if s+1 < a.hi {
			a.sum.remove(increaseStep(r.value(s), r.value(s+1)))
		}
	case qChanges:
		if s+1 < a.hi && r.value(s+1) != r.value(s) {
			a.changes--
		}
	case qMin, qMax:
		if a.dq.n > 0 && a.dq.front() == s {
			a.dq.popFront()
		}
	}
	a.lo++
}

// evict is told by the ring that its oldest point, s, is about to go.
func (a *agg) evict(s uint64) {
	if !a.valid || a.lo != s {
		return
	}
	if a.hi == s {
		// An empty span just before s: s was not in it, it moves past.
		a.lo, a.hi = s+1, s+1
		return
	}
	a.popFront()
}

// result answers a's query over its span; missing when there is no data.
// It reads the ring, so it comes right after slide.
func (a *agg) result() (v float64, missing bool) {
	r := a.r
	n := a.hi - a.lo
	if n == 0 || n < 2 && (a.q.kind == qRate || a.q.kind == qDelta) {
		return math.NaN(), true
	}
	switch a.q.kind {
	case qAvg:
		if a.sum.overflow {
			break
		}
		return a.sum.value() / float64(n), false
	case qMin, qMax:
		if a.nan > a.lo {
			return math.NaN(), false
		}
		return r.value(a.dq.front()), false
	case qDelta:
		return r.value(a.hi-1) - r.value(a.lo), false
	case qChanges:
		return float64(a.changes), false
	case qRate:
		secs := float64(r.at(a.hi-1)-r.at(a.lo)) / 1e9
		if secs <= 0 {
			return math.NaN(), true
		}
		if a.sum.overflow {
			break
		}
		return a.sum.value() / secs, false
	}
	// The exact sum overflowed: add up as the scan does, and start over
	// at the next evaluation.
	a.valid = false
	l := int(a.lo - r.base)
	return scan(a.q.kind, r, l, l+int(n))
}

// zlt is a < b with -0 below +0: the order in which min and max resolve
// ties between zeros.
func zlt(a, b float64) bool {
	return a < b || a == b && math.Signbit(a) && !math.Signbit(b)
}

// increaseStep is what a counter going from prev to v adds to its
// increase (see increase).
func increaseStep(prev, v float64) float64 {
	if v >= prev {
		return v - prev
	}
	return v
}

// deque is a double-ended queue of sequence numbers in a circular buffer.
type deque struct {
	buf  []uint64
	head int
	n    int
}

func (d *deque) reset() { d.head, d.n = 0, 0 }

func (d *deque) front() uint64 { return d.buf[d.head] }

func (d *deque) back() uint64 { return d.buf[d.pos(d.n-1)] }

func (d *deque) pos(i int) int {
	j := d.head + i
	if j >= len(d.buf) {
		j -= len(d.buf)
	}
	return j
}

func (d *deque) popFront() {
	d.head = d.pos(1)
	d.n--
}

func (d *deque) popBack() { d.n-- }

func (d *deque) pushBack(s uint64) {
	if d.n == len(d.buf) {
		buf := make([]uint64, max(2*len(d.buf), 16))
		for i := range d.n {
			buf[i] = d.buf[d.pos(i)]
		}
		d.buf, d.head = buf, 0
	}
	d.buf[d.pos(d.n)] = s
	d.n++
}
