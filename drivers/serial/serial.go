// Package serial reads devices that print lines of text on a serial port —
// scales, barcode readers, legacy controllers — registered as driver
// "serial".
//
// Sensors naming the same `port` share one open line and one goroutine
// reading it (serialport.Keep, which reopens an unplugged USB adapter by
// its path until it returns); their line settings must agree. Each line,
// cut at `delimiter` (default "\n", a trailing "\r" trimmed), is matched
// against every sensor's `pattern`, and a sensor whose pattern matches
// takes the text of its named group (`group`, default "value") as a
// number: so two sensors can take gross and tare from one line.
//
// With `request`, the driver writes it when the port opens and then every
// `interval`, for devices that answer a poll; without, the device pushes
// lines. A reading's time is the gateway clock's when the read that
// completed its line returned.
//
// What is not a good line is counted in edgegw_driver_errors_total
// {driver="serial",kind} (kinds ErrUnmatched ... ErrPort) and skipped;
// each kind is logged at most once a minute per port, never per line.
// Readings are emitted without an ack: a serial device cannot resend.
package serial

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/serialport"
	"github.com/edgegw/edgegw/gateway/config"
)

// Name is the `driver:` value of serial line sensors.
const Name = "serial"

// Defaults and bounds of the serial fields.
const (
	DefaultGroup     = "value"
	DefaultDelimiter = "\n"
	DefaultMaxLine   = 256
	MaxMaxLine       = 64 << 10
	MaxDelimiter     = 8 // bytes
	DefaultInterval  = config.Duration(time.Second)
)

// logEvery bounds how often one kind of bad line is logged per port.
const logEvery = time.Minute

func init() {
	drivers.Register(Name, drivers.Factory{Check: Check, CheckAll: CheckAll, New: New})
}

// Check validates a serial sensor and fills in group, delimiter, max_line,
// and interval when it has a request.
func Check(s *config.Sensor, report func(field, format string, args ...any)) {
	serialport.Check(portConfig(*s), report)
	if s.Group == "" {
		s.Group = DefaultGroup
	}
	if s.Delimiter == "" {
		s.Delimiter = DefaultDelimiter
	}
	if s.MaxLine == 0 {
		s.MaxLine = DefaultMaxLine
	}
	if s.Request != "" && s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.MaxLine < 1 || s.MaxLine > MaxMaxLine {
		report("max_line", "%d is not between 1 and %d bytes", s.MaxLine, MaxMaxLine)
	}
	if s.Interval < 0 {
		report("interval", "%v is negative", s.Interval)
	}
	if s.Timeout < 0 {
		report("timeout", "%v is negative", s.Timeout)
	}
	if d, err := unescape(s.Delimiter); err != nil {
		report("delimiter", "%v", err)
	} else if len(d) == 0 || len(d) > MaxDelimiter {
		report("delimiter", "%q: must be 1 to %d bytes", d, MaxDelimiter)
	}
	if _, err := unescape(s.Request); err != nil {
		report("request", "%v", err)
	}
	if s.Pattern == "" {
		report("pattern", `required: a regular expression with a named group, e.g. 'GS,\s*(?P<value>[-+ 0-9.]+)'`)
		return
	}
	re, err := regexp.Compile(s.Pattern)
	if err != nil {
		report("pattern", "%v", err)
		return
	}
	if re.SubexpIndex(s.Group) < 0 {
		var names []string
		for _, n := range re.SubexpNames() {
			if n != "" {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			report("pattern", "has no named group: mark the value with (?P<%s>...)", s.Group)
		} else {
			report("group", "the pattern has no group %q (it has %s)", s.Group, strings.Join(names, ", "))
		}
	}
}

func portConfig(s config.Sensor) serialport.Config {
	return serialport.Config{Path: s.Port, Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits, ReadTimeout: s.Timeout.D()}
}

// Driver is the running serial driver: one line per port.
type Driver struct {
	lines []*line
}

// New builds the driver for all serial sensors, checking each as Check
// does and that sensors sharing a port agree on its settings.
func New(env drivers.Env, sensors []config.Sensor) (drivers.Driver, error) {
	env = env.WithDefaults()
	d := &Driver{}
	byPort := map[string]*line{}
	for _, s := range sensors {
		var problems []string
		Check(&s, func(field, format string, args ...any) {
			problems = append(problems, field+": "+fmt.Sprintf(format, args...))
		})
		if len(problems) > 0 {
			return nil, fmt.Errorf("sensor %s: %s", s.ID, strings.Join(problems, "; "))
		}
		l := byPort[s.Port]
		if l == nil {
			l = newLine(env, s)
			byPort[s.Port] = l
			d.lines = append(d.lines, l)
		} else if err := l.agrees(s); err != nil {
			return nil, err
		}
		l.add(s)
	}
	return d, nil
}

// Run reads every port until ctx is done.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	var wg sync.WaitGroup
	for _, l := range d.lines {
		wg.Go(func() { l.run(ctx, sink) })
	}
	wg.Wait()
	return nil
}

// settings are what sensors sharing a port must agree on, with defaults
// filled in.
type settings struct {
	Baud, DataBits, StopBits int
	Parity                   string
	Timeout                  time.Duration
	Delimiter, Request       string
	Interval                 time.Duration // only with a request
	MaxLine                  int
}

func settingsOf(s config.Sensor) settings {
	c := portConfig(s)
	st := settings{Baud: c.Baud, DataBits: c.DataBits, StopBits: c.StopBits, Parity: c.Parity, Timeout: c.ReadTimeout,
		Delimiter: s.Delimiter, Request: s.Request, MaxLine: s.MaxLine}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&st.Baud, 9600)
	def(&st.DataBits, 8)
	def(&st.StopBits, 1)
	if st.Timeout <= 0 {
		st.Timeout = 100 * time.Millisecond // serialport's default
	}
	if st.Parity == "" {
		st.Parity = "none"
	}
	if st.Request != "" {
		st.Interval = s.Interval.D()
	}
	return st
}

func (l *line) agrees(s config.Sensor) error {
	a, b := l.settings, settingsOf(s)
	if a == b {
		return nil
	}
	for _, f := range []struct {
		key      string
		mine, it any
	}{
		{"baud", b.Baud, a.Baud}, {"data_bits", b.DataBits, a.DataBits}, {"parity", b.Parity, a.Parity},
		{"stop_bits", b.StopBits, a.StopBits}, {"timeout", b.Timeout, a.Timeout},
		{"delimiter", fmt.Sprintf("%q", b.Delimiter), fmt.Sprintf("%q", a.Delimiter)},
		{"request", fmt.Sprintf("%q", b.Request), fmt.Sprintf("%q", a.Request)},
		{"interval", b.Interval, a.Interval}, {"max_line", b.MaxLine, a.MaxLine},
	} {
		if f.mine != f.it {
			return fmt.Errorf("sensor %s: %s %v differs from %v of sensor %s: sensors on port %s share its line settings",
				s.ID, f.key, f.mine, f.it, l.first, s.Port)
		}
	}
	return errors.New("unreachable: settings differ in no field")
}
