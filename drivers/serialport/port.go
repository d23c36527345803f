// Package serialport opens the serial lines the serial and modbus drivers
// read (tarm/serial), and keeps them open: a USB adapter that is unplugged
// makes its device node vanish, and Keep reopens the port by its path, at
// least every 2 seconds, until it returns.
package serialport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/tarm/serial"
)

// Config is a port's line settings.
type Config struct {
	Path     string
	Baud     int    // default 9600
	DataBits int    // default 8
	Parity   string // none (default) | even | odd
	StopBits int    // 1 (default) | 2
	// ReadTimeout is how long one Read waits for a byte before returning
	// no data; tarm/serial rounds it to 100 ms steps. Default 100ms.
	ReadTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Baud == 0 {
		c.Baud = 9600
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.Parity == "" {
		c.Parity = "none"
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 100 * time.Millisecond
	}
	return c
}

// Check reports what is wrong with the line settings, by config key.
func Check(c Config, report func(field, format string, args ...any)) {
	if c.Path == "" {
		report("port", "required: the device path, e.g. /dev/ttyUSB0")
	}
	switch c.Baud {
	case 0, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600:
	default:
		report("baud", "%d is not a standard rate (1200 ... 921600)", c.Baud)
	}
	switch c.DataBits {
	case 0, 5, 6, 7, 8:
	default:
		report("data_bits", "%d is not 5, 6, 7 or 8", c.DataBits)
	}
	switch c.Parity {
	case "", "none", "even", "odd":
	default:
		report("parity", "%q is not none, even or odd", c.Parity)
	}
	switch c.StopBits {
	case 0, 1, 2:
	default:
		report("stop_bits", "%d is not 1 or 2", c.StopBits)
	}
}

// Port is an open line. A Read that times out returns 0 bytes and a nil
// error (tarm/serial reports it as io.EOF, which is not the end of a
// serial line); any other error means the port is gone.
type Port struct {
	p       *serial.Port
	timeout time.Duration
	quick   int // zero-byte reads in a row that came back well within the timeout
}

// ErrHungUp is Read's error for a port the kernel hung up.
var ErrHungUp = errors.New("the port was hung up (adapter unplugged?)")

// hungUpReads is how many zero-byte reads in a row, each back in less than
// half the read timeout, mean the port was hung up. An unplugged adapter
// (or a pty whose other end closed) fails the Read in progress with EIO,
// but once the kernel has hung the tty up every later read returns 0 bytes
// at once, which tarm/serial reports as io.EOF, as it does a timeout: a
// port unplugged while nobody was reading looked idle for ever, and the
// read loop spun. A real timeout takes the whole timeout (at least 100 ms).
const hungUpReads = 3

// Open opens the port with its settings.
func Open(c Config) (*Port, error) {
	c = c.withDefaults()
	sc := &serial.Config{Name: c.Path, Baud: c.Baud, ReadTimeout: c.ReadTimeout, Size: byte(c.DataBits)}
	switch c.Parity {
	case "even":
		sc.Parity = serial.ParityEven
	case "odd":
		sc.Parity = serial.ParityOdd
	default:
		sc.Parity = serial.ParityNone
	}
	if c.StopBits == 2 {
		sc.StopBits = serial.Stop2
	} else {
		sc.StopBits = serial.Stop1
	}
	p, err := serial.OpenPort(sc)
	if err != nil {
		return nil, err
	}
	return &Port{p: p, timeout: effectiveTimeout(c.ReadTimeout)}, nil
}

// effectiveTimeout is the read timeout tarm/serial sets: whole tenths of a
// second (VTIME), truncated, at least 0.1 s and at most 25.5 s.
func effectiveTimeout(d time.Duration) time.Duration {
	return time.Duration(min(max(int64(d/(100*time.Millisecond)), 1), 255)) * 100 * time.Millisecond
}

func (p *Port) Read(b []byte) (int, error) {
	start := time.Now() // the kernel's timing, not an injected clock
	n, err := p.p.Read(b)
	if n == 0 && errors.Is(err, io.EOF) {
		if time.Since(start) < p.timeout/2 {
			if p.quick++; p.quick >= hungUpReads {
				return 0, ErrHungUp
			}
		} else {
			p.quick = 0
		}
		return 0, nil
	}
	p.quick = 0
	if errors.Is(err, io.EOF) {
		return n, nil
	}
	return n, err
}

func (p *Port) Write(b []byte) (int, error) { return p.p.Write(b) }

// Flush discards what was received and not read, and what was written and
// not sent: used before a request so a late answer to the previous one is
// not taken for this one's.
func (p *Port) Flush() error { return p.p.Flush() }

// Close closes the port.
func (p *Port) Close() error { return p.p.Close() }

// RetryEvery is the longest Keep waits between attempts to open a port
// that is missing.
const RetryEvery = 2 * time.Second

// Keep opens the port and runs use with it; when use returns an error (the
// port went away) or the port cannot be opened, it waits and opens it
// again, by path, at least every RetryEvery, until ctx is done. Each outage
// is logged once, when it starts, and once when the port is back. use must
// return when ctx is done; Keep returns ctx.Err() then.
func Keep(ctx context.Context, c Config, clock clockwork.Clock, log *slog.Logger, onError func(kind string), use func(context.Context, *Port) error) error {
	down := false
	wait := 100 * time.Millisecond
	for {
		p, err := Open(c)
		if err == nil {
			if down {
				log.Info("serial port is back", "port", c.Path)
				down = false
			}
			wait = 100 * time.Millisecond
			err = use(ctx, p)
			_ = p.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err = fmt.Errorf("lost: %w", err)
		}
		if !down {
			log.Warn("serial port unavailable; retrying", "port", c.Path, "every", RetryEvery, "err", err)
			if onError != nil {
				onError("port")
			}
			down = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clock.After(wait):
		}
		wait = min(wait*2, RetryEvery)
	}
}
