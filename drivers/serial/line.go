package serial

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/serialport"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// line is one port and the sensors reading it. Everything in it but the
// configuration is owned by its run goroutine.
type line struct {
	clock    clockwork.Clock
	log      *slog.Logger
	metrics  *metrics.Set
	port     serialport.Config
	settings settings
	first    string // the id of the sensor that set the settings
	request  []byte
	split    *lineSplitter

	patterns []*regexp.Regexp // distinct patterns, matched once per line
	sensors  []lineSensor

	errs       map[string]prometheus.Counter
	notANumber prometheus.Counter // edgegw_dropped_total{reason="not_a_number"}
	logged     map[string]time.Time
	suppressed map[string]int
}

type lineSensor struct {
	id, unit string
	pattern  int // index in patterns
	group    int // submatch index of the sensor's group
}

// newLine makes the line for a checked sensor's port.
func newLine(env drivers.Env, s config.Sensor) *line {
	delim, _ := unescape(s.Delimiter) // checked
	req, _ := unescape(s.Request)
	l := &line{
		clock: env.Clock, log: env.Logger.With("driver", Name, "port", s.Port), metrics: env.Metrics,
		port: portConfig(s), settings: settingsOf(s), first: s.ID, request: req,
		split:      newLineSplitter(delim, s.MaxLine),
		errs:       map[string]prometheus.Counter{},
		notANumber: env.Metrics.Dropped.WithLabelValues(metrics.DropNotANumber),
		logged:     map[string]time.Time{}, suppressed: map[string]int{},
	}
	for _, k := range []string{ErrUnmatched, ErrOverlong, ErrBinary, ErrPartial, ErrNotANumber, ErrNoAnswer, ErrWrite, ErrPort} {
		l.errs[k] = env.Metrics.DriverErrors.WithLabelValues(Name, k)
	}
	return l
}

// add adds a checked sensor that agrees with the line's settings.
func (l *line) add(s config.Sensor) {
	i := 0
	for i < len(l.patterns) && l.patterns[i].String() != s.Pattern {
		i++
	}
	if i == len(l.patterns) {
		l.patterns = append(l.patterns, regexp.MustCompile(s.Pattern)) // checked
	}
	l.sensors = append(l.sensors, lineSensor{id: s.ID, unit: s.Unit, pattern: i, group: l.patterns[i].SubexpIndex(s.Group)})
}

// run keeps the port open and reads it until ctx is done.
func (l *line) run(ctx context.Context, sink drivers.Sink) {
	var tick <-chan time.Time
	if len(l.request) > 0 && l.settings.Interval > 0 {
		t := l.clock.NewTicker(l.settings.Interval)
		defer t.Stop()
		tick = t.Chan()
	}
	onError := func(kind string) { l.errs[kind].Inc() } // Keep logs its outages itself
	_ = serialport.Keep(ctx, l.port, l.clock, l.log, onError, func(ctx context.Context, p *serialport.Port) error {
		return l.read(ctx, p, tick, sink)
	})
}

// read reads one open port until it fails or ctx is done. The requests
// are written from here, between reads, so one goroutine owns the port.
func (l *line) read(ctx context.Context, p *serialport.Port, tick <-chan time.Time, sink drivers.Sink) error {
	awaiting := false // a request was sent and no line came back yet
	poll := func() error {
		if _, err := p.Write(l.request); err != nil {
			l.problem(ErrWrite, fmt.Sprintf("request %q: %v", l.request, err))
			return err
		}
		awaiting = true
		return nil
	}
	select {
	case <-tick: // ticked while the port was away: the request below serves
	default:
	}
	if len(l.request) > 0 {
		if err := poll(); err != nil {
			return err
		}
	}
	buf := make([]byte, 4096)
	for {
		select {
		case <-ctx.Done():
			l.split.Drop()
			return nil
		case <-tick:
			if awaiting {
				l.problem(ErrNoAnswer, fmt.Sprintf("no line after request %q", l.request))
			}
			if err := poll(); err != nil {
				return err
			}
		default:
		}
		n, err := p.Read(buf)
		if n > 0 {
			now := l.clock.Now()
			l.split.Feed(buf[:n], func(text string) {
				awaiting = false
				l.handle(ctx, sink, now, text)
			}, func(kind string, sample []byte) {
				l.problem(kind, fmt.Sprintf("%q", sample))
			})
		}
		if err != nil {
			if l.split.Drop() && ctx.Err() == nil {
				l.problem(ErrPartial, "the port dropped within a line")
			}
			return err
		}
	}
}

// handle matches one line against the sensors and emits their readings.
func (l *line) handle(ctx context.Context, sink drivers.Sink, ts time.Time, text string) {
	matches := make([][]string, len(l.patterns))
	for i, re := range l.patterns {
		matches[i] = re.FindStringSubmatch(text)
	}
	matched := false
	for _, s := range l.sensors {
		m := matches[s.pattern]
		if m == nil {
			continue
		}
		matched = true
		v, err := parseNumber(m[s.group])
		if err != nil {
			l.notANumber.Inc()
			l.problem(ErrNotANumber, fmt.Sprintf("sensor %s: %v in %q", s.id, err, sample(text)))
			continue
		}
		r := reading.Reading{Sensor: s.id, TS: ts, Value: v, Unit: s.unit, Quality: reading.Good}
		if sink.Emit(ctx, r, nil) != nil {
			return // ctx is done
		}
	}
	if !matched {
		l.problem(ErrUnmatched, fmt.Sprintf("%q", sample(text)))
	}
}

func sample(s string) string {
	if len(s) > sampleLen {
		return s[:sampleLen] + "..."
	}
	return s
}

// problem counts a skipped line or a failed request, and logs it unless
// the same kind was logged on this port within logEvery.
func (l *line) problem(kind, detail string) {
	l.errs[kind].Inc()
	now := l.clock.Now()
	if last, ok := l.logged[kind]; ok && now.Sub(last) < logEvery {
		l.suppressed[kind]++
		return
	}
	l.log.Warn("serial line problem", "kind", kind, "detail", detail, "more_since_last_log", l.suppressed[kind])
	l.logged[kind] = now
	l.suppressed[kind] = 0
}
