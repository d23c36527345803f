package rules

import "math"

// xsum is an exact running sum of float64 terms that can also take terms
// out again: the sum of a sliding window, kept in O(1) per point instead
// of adding up the whole window at every evaluation.
//
// A plain running sum (add the new point, subtract the one leaving) would
// drift: every addition rounds, and a subtraction does not undo the
// rounding of the addition before it. xsum instead keeps the finite terms
// as Shewchuk's non-overlapping partials (the algorithm of Python's
// math.fsum): their sum is exactly the sum of the terms, whatever was
// added and taken out, and value rounds it once, correctly. So the result
// depends only on the terms in the window, not on the path there, and it
// equals the naive left-to-right sum wherever that sum was exact (every
// partial sum representable, as with integer or few-digit readings), and
// is the correctly rounded sum where the naive one rounded.
//
// Infinities and NaNs are counted, not summed, so that one leaving the
// window leaves no trace: the value is NaN while a NaN (or both
// infinities) is in, ±Inf while one infinity is, as a naive sum gives.
// A finite sum too large for a float64 sets overflow; the caller then
// computes naively (as before xsum existed).
type xsum struct {
	p               []float64 // partials, non-overlapping, increasing magnitude, none zero
	nan, pinf, ninf int
	overflow        bool
}

func (s *xsum) reset() {
	s.p = s.p[:0]
	s.nan, s.pinf, s.ninf = 0, 0, 0
	s.overflow = false
}

// add adds x to the sum.
func (s *xsum) add(x float64) {
	switch {
	case x != x:
		s.nan++
	case math.IsInf(x, 1):
		s.pinf++
	case math.IsInf(x, -1):
		s.ninf++
	default:
		s.grow(x)
	}
}

// remove takes x, added before, out of the sum.
func (s *xsum) remove(x float64) {
	switch {
	case x != x:
		s.nan--
	case math.IsInf(x, 1):
		s.pinf--
	case math.IsInf(x, -1):
		s.ninf--
	default:
		s.grow(-x)
	}
}

// grow adds the finite x to the partials, exactly (two-sum at each
// partial; the rounding error of each step becomes a partial).
func (s *xsum) grow(x float64) {
	i := 0
	for _, y := range s.p {
		if math.Abs(x) < math.Abs(y) {
			x, y = y, x
		}
		hi := x + y
		lo := y - (hi - x)
		if lo != 0 {
			s.p[i] = lo
			i++
		}
		x = hi
	}
	s.p = s.p[:i]
	if x != 0 {
		if math.IsInf(x, 0) || x != x {
			s.overflow = true
			return
		}
		s.p = append(s.p, x)
	}
}

// value is the sum, correctly rounded (+0 for an exact zero, as a naive
// sum starting at 0.0 gives). Meaningless when overflow is set.
func (s *xsum) value() float64 {
	switch {
	case s.nan > 0 || s.pinf > 0 && s.ninf > 0:
		return math.NaN()
	case s.pinf > 0:
		return math.Inf(1)
	case s.ninf > 0:
		return math.Inf(-1)
	}
	p := s.p
	n := len(p)
	if n == 0 {
		return 0
	}
	// Python's math.fsum: add the partials from the largest down while
	// that is exact, then correct a halfway case (round half even on the
	// exact value, not on the rounded partial sum).
	n--
	hi := p[n]
	lo := 0.0
	for n > 0 {
		x := hi
		n--
		y := p[n]
		hi = x + y
		yr := hi - x
		lo = y - yr
		if lo != 0 {
			break
		}
	}
	if n > 0 && (lo < 0 && p[n-1] < 0 || lo > 0 && p[n-1] > 0) {
		y := lo * 2
		x := hi + y
		yr := x - hi
		if y == yr {
			hi = x
		}
	}
	return hi
}
