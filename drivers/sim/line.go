package sim

import (
	"math"
	"math/rand/v2"
	"time"
)

// step is the model's resolution. The line advances in fixed steps of
// simulated time, whatever the sensors' intervals, so a seed gives the same
// line however it is sampled.
const step = 100 * time.Millisecond

// Shape of the simulated press line.
const (
	strokeEvery = 2 * time.Second // one part per stroke while running

	tempStart    = 60.0 // C, oil temperature at power-on
	tempStopped  = 55.0 // C, where the oil cools to while stopped
	tempRunning  = 68.0 // C, where it settles while running
	tempOverheat = 95.0 // C, where a cooling fault drives it
	tauNormal    = 20 * time.Second
	tauOverheat  = 4 * time.Second // fast, so 85 C is crossed seconds after a fault

	pressureRunning = 180.0 // bar, mean hydraulic pressure while running
	pressureSwing   = 6.0   // bar, the stroke's swing around the mean
)

// line is the simulated press line all sim sensors of a gateway share, so
// that parts stop counting while running is 0.
type line struct {
	rng             *rand.Rand
	runFor, stopFor time.Duration

	t         time.Duration // simulated time since start
	running   bool
	phaseLeft time.Duration // of the current run or stop
	stops     int

	parts      uint64
	strokeLeft time.Duration

	temp         float64
	overheatIn   time.Duration // until the next cooling fault
	overheatLeft time.Duration // of the current fault

	// Noise is drawn per step, not per sample, for the same reason as step.
	tempNoise, pressureNoise float64
}

func newLine(seed uint64, runFor, stopFor time.Duration) *line {
	l := &line{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		runFor:  runFor,
		stopFor: stopFor,
		running: true,
		temp:    tempStart,
	}
	// The first run is short and the first stop long, so a demo shows a
	// downtime event (min_downtime defaults to 30s) within about a minute.
	l.phaseLeft = l.around(runFor/2, 0.2)
	l.strokeLeft = strokeEvery
	// The first cooling fault comes early for the same reason: threshold
	// rules fire in the first minute.
	l.overheatIn = 12*time.Second + l.around(6*time.Second, 0.5)
	return l
}

// around returns d varied by up to ±frac of itself.
func (l *line) around(d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 + frac*(2*l.rng.Float64()-1)))
}

// advanceTo runs the model up to simulated time t.
func (l *line) advanceTo(t time.Duration) {
	for l.t+step <= t {
		l.step()
	}
}

func (l *line) step() {
	l.t += step
	l.phaseLeft -= step
	if l.phaseLeft <= 0 {
		l.running = !l.running
		if l.running {
			l.phaseLeft = l.around(l.runFor, 0.4)
		} else {
			l.stops++
			// Alternate long and short stops so that both sides of a
			// typical min_downtime (30s with the default stop_for) occur.
			if l.stops%2 == 1 {
				l.phaseLeft = l.around(2*l.stopFor, 0.2)
			} else {
				l.phaseLeft = l.around(l.stopFor/2, 0.5)
			}
		}
	}

	if l.running {
		l.strokeLeft -= step
		if l.strokeLeft <= 0 {
			l.parts++
			l.strokeLeft = l.around(strokeEvery, 0.1)
		}
	}

	target, tau := tempStopped, tauNormal
	if l.running {
		target = tempRunning
	}
	switch {
	case l.overheatLeft > 0:
		l.overheatLeft -= step
		target, tau = tempOverheat, tauOverheat
	default:
		l.overheatIn -= step
		if l.overheatIn <= 0 {
			l.overheatLeft = l.around(35*time.Second, 0.3)
			l.overheatIn = l.around(5*time.Minute, 0.4)
		}
	}
	l.temp += (target - l.temp) * float64(step) / float64(tau)
	l.tempNoise = 0.15 * l.rng.NormFloat64()
	l.pressureNoise = 1.5 * l.rng.NormFloat64()
}

// value is the current value of a signal, as a sensor reads it.
func (l *line) value(signal string) float64 {
	switch signal {
	case Running:
		if l.running {
			return 1
		}
		return 0
	case Parts:
		return float64(l.parts)
	case Temperature:
		return round(l.temp+l.tempNoise, 2)
	case Pressure:
		if !l.running {
			return 0
		}
		phase := 2 * math.Pi * float64(l.t%strokeEvery) / float64(strokeEvery)
		return round(pressureRunning+pressureSwing*math.Sin(phase)+l.pressureNoise, 1)
	}
	return math.NaN()
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
