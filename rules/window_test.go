package rules

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

// exactSum is the correctly rounded sum of xs (finite), through big.Float
// with enough bits to hold any sum of float64s exactly.
func exactSum(xs []float64) float64 {
	s := new(big.Float).SetPrec(4200)
	for _, x := range xs {
		s.Add(s, new(big.Float).SetPrec(4200).SetFloat64(x))
	}
	f, _ := s.Float64()
	return f
}

func naiveSum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

func same(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || a != a && b != b
}

// randFloat gives values of widely varying magnitude and sign, so that
// sums round and partials pile up.
func randFloat(rng *rand.Rand) float64 {
	v := rng.Float64() * math.Pow(10, float64(rng.IntN(40)-20))
	if rng.IntN(2) == 0 {
		v = -v
	}
	return v
}

func TestXsumExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var s xsum
		var in []float64 // what is in the sum, oldest first
		for range 200 {
			if len(in) > 0 && rng.IntN(3) == 0 {
				// Take out the oldest, as a window does.
				s.remove(in[0])
				in = in[1:]
			} else {
				x := randFloat(rng)
				if round%2 == 0 {
					x = float64(rng.IntN(2001) - 1000) // exact: naive sums too
				}
				s.add(x)
				in = append(in, x)
			}
			got, want := s.value(), exactSum(in)
			if !same(got, want) {
				t.Fatalf("round %d: sum of %d terms = %v, exact %v", round, len(in), got, want)
			}
			if round%2 == 0 && !same(got, naiveSum(in)) {
				t.Fatalf("round %d: sum of integers %v, naive %v", round, got, naiveSum(in))
			}
			// The correctly rounded sum is within the naive sum's error
			// bound of it.
			abs := 0.0
			for _, x := range in {
				abs += math.Abs(x)
			}
			if d := math.Abs(got - naiveSum(in)); d > float64(len(in))*0x1p-52*abs {
				t.Fatalf("round %d: sum %v, naive %v: differ by %v", round, got, naiveSum(in), d)
			}
		}
		if len(s.p) > 40 {
			t.Fatalf("%d partials", len(s.p))
		}
	}
}

func TestXsumSpecial(t *testing.T) {
	inf := math.Inf(1)
	var s xsum
	if v := s.value(); !same(v, 0) {
		t.Errorf("empty sum = %v, want +0", v)
	}
	s.add(math.Copysign(0, -1))
	if v := s.value(); !same(v, 0) {
		t.Errorf("sum of -0 = %v, want +0 as 0.0 + -0", v)
	}
	s.add(1)
	s.add(inf)
	if v := s.value(); !math.IsInf(v, 1) {
		t.Errorf("with +Inf: %v", v)
	}
	s.add(-inf)
	if v := s.value(); !math.IsNaN(v) {
		t.Errorf("with both infinities: %v", v)
	}
	s.remove(inf)
	if v := s.value(); !math.IsInf(v, -1) {
		t.Errorf("with -Inf: %v", v)
	}
	s.remove(-inf)
	s.add(math.NaN())
	if v := s.value(); !math.IsNaN(v) {
		t.Errorf("with NaN: %v", v)
	}
	s.remove(math.NaN())
	if v := s.value(); v != 1 {
		t.Errorf("specials gone: %v, want 1", v)
	}
	s.add(math.MaxFloat64)
	s.add(math.MaxFloat64)
	if !s.overflow {
		t.Error("no overflow")
	}
}

// TestAggsAgainstScan drives every windowed query's agg over random
// readings (repeated times, equal values, ±0, infinities, NaN, a clock
// that steps back, points evicted for keep and for the cap, evaluations
// at random moments, some going back) and compares each result with a
// scan of the window: bit for bit, and for the sums of values that do
// not add exactly, with the correctly rounded sum of the window.
func TestAggsAgainstScan(t *testing.T) {
	kinds := []queryKind{qAvg, qMin, qMax, qRate, qDelta, qChanges}
	windows := []time.Duration{3 * time.Second, 10 * time.Second, 25 * time.Second}
	small := []float64{0, math.Copysign(0, -1), 1, 1, 2, 3, -1, 7}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		mode := seed % 4 // 0, 1: small values; 2: with specials; 3: random floats
		h := newHistory()
		var qs []query
		for _, k := range kinds {
			for _, w := range windows {
				q := query{kind: k, sensor: 0, window: w}
				h.queryIndex(q)
				qs = append(qs, q)
			}
		}
		capacity := MaxHistoryPoints
		if seed%5 == 1 {
			capacity = 8 // windows bigger than the ring
		}
		h.size(1, func(int) time.Duration { return 0 }, capacity)
		h.start = t0
		r := h.rings[0]
		now := t0
		for step := range 3000 {
			switch rng.IntN(10) {
			case 0, 1, 2, 3, 4:
				var v float64
				switch mode {
				case 0, 1:
					v = small[rng.IntN(len(small))]
				case 2:
					v = small[rng.IntN(len(small))]
					switch rng.IntN(20) {
					case 0:
						v = math.Inf(1)
					case 1:
						v = math.Inf(-1)
					case 2:
						v = math.NaN()
					}
				case 3:
					v = randFloat(rng)
				}
				// Mostly forward, sometimes at the same time, now and then
				// back (the ring keeps its times sorted).
				switch rng.IntN(20) {
				case 0:
					now = now.Add(-time.Duration(rng.IntN(3000)) * time.Millisecond)
				case 1, 2, 3:
				default:
					now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
				}
				h.record(0, v, now)
				continue
			}
			// Evaluate some queries at a moment near now.
			at := now.Add(time.Duration(rng.IntN(4000)-1000) * time.Millisecond)
			if rng.IntN(10) == 0 {
				at = now.Add(-time.Duration(rng.IntN(30)) * time.Second)
			}
			h.now = at
			for _, q := range qs {
				if rng.IntN(3) == 0 {
					continue // lazily: an agg evaluated now and then
				}
				h.missing = false
				got := h.eval(q)
				gotMissing := h.missing
				lo, hi := r.span(at.UnixNano()-int64(q.window), at.UnixNano())
				want, wantMissing := scan(q.kind, r, lo, hi)
				if gotMissing != wantMissing {
					t.Fatalf("seed %d step %d: %v %v: missing %v, scan %v", seed, step, q.kind, q.window, gotMissing, wantMissing)
				}
				if wantMissing {
					continue
				}
				if mode == 3 && (q.kind == qAvg || q.kind == qRate) {
					_, vs1, _, vs2 := r.slices(lo, hi)
					vs := append(append([]float64(nil), vs1...), vs2...)
					terms := vs
					div := float64(len(vs))
					if q.kind == qRate {
						terms = nil
						for i := 1; i < len(vs); i++ {
							terms = append(terms, increaseStep(vs[i-1], vs[i]))
						}
						t1, _, t2, _ := r.slices(lo, hi)
						div = float64(last(t1, t2)-t1[0]) / 1e9
					}
					want = exactSum(terms) / div
					if naive, tol := want, 1e-9*math.Abs(want)+1e-300; math.Abs(naive-got) > tol {
						t.Fatalf("seed %d step %d: %v = %v, scan %v", seed, step, q.kind, got, naive)
					}
				}
				if !same(got, want) {
					t.Fatalf("seed %d step %d: %v %v at %v over %d points = %v, want %v", seed, step, q.kind, q.window, at.Sub(t0), hi-lo, got, want)
				}
			}
		}
		if capacity == 8 && r.dropped == 0 {
			t.Errorf("seed %d: nothing dropped for the cap", seed)
		}
	}
}

// TestDeque checks the deque against a slice through growth and wrap.
func TestDeque(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var d deque
	var ref []uint64
	for i := range uint64(5000) {
		switch rng.IntN(4) {
		case 0:
			if len(ref) > 0 {
				d.popFront()
				ref = ref[1:]
			}
		case 1:
			if len(ref) > 0 {
				d.popBack()
				ref = ref[:len(ref)-1]
			}
		default:
			d.pushBack(i)
			ref = append(ref, i)
		}
		if d.n != len(ref) || len(ref) > 0 && (d.front() != ref[0] || d.back() != ref[len(ref)-1]) {
			t.Fatalf("step %d: deque differs from %v", i, ref)
		}
	}
}
