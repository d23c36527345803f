package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	gomodbus "github.com/goburrow/modbus"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/serialport"
	"github.com/edgegw/edgegw/gateway/reading"
)

// A slave that misses deadAfter answers in a row is dead: its blocks are
// then asked only every probeEvery-th interval (each skipped poll still
// gives their sensors a Bad reading), so a dead slave costs the port one
// timeout per few intervals instead of one per interval.
const (
	deadAfter  = 3
	probeEvery = 5
)

// exceptionLogEvery bounds how often one block's exception answers are logged.
const exceptionLogEvery = time.Minute

// slaveState is what the poller knows of one slave's health.
type slaveState struct {
	misses int // timeouts in a row
	client gomodbus.Client
}

// poller reads every block of one port, one request at a time.
type poller struct {
	env    drivers.Env
	log    *slog.Logger
	plan   *portPlan
	slaves map[byte]*slaveState
	tr     transport

	lastExceptionLog map[*block]time.Time
	suppressed       map[*block]int
}

func newPoller(env drivers.Env, p *portPlan) *poller {
	pl := &poller{
		env: env, plan: p,
		log:              env.Logger.With("driver", Name, "port", p.line.Path),
		slaves:           map[byte]*slaveState{},
		lastExceptionLog: map[*block]time.Time{},
		suppressed:       map[*block]int{},
	}
	for _, b := range p.blocks {
		if pl.slaves[b.slave] == nil {
			// goburrow's RTU handler is used only as the packager (framing,
			// CRC, exception decoding); the bytes move through pl.tr.
			h := &gomodbus.RTUClientHandler{}
			h.SlaveId = b.slave
			pl.slaves[b.slave] = &slaveState{client: gomodbus.NewClient2(h, &pl.tr)}
		}
	}
	return pl
}

func (pl *poller) count(kind string) {
	if pl.env.Metrics != nil {
		pl.env.Metrics.DriverErrors.WithLabelValues(Name, kind).Inc()
	}
}

// run polls until ctx is done, the port kept open by serialport.Keep.
func (pl *poller) run(ctx context.Context, sink drivers.Sink) error {
	line := pl.plan.line
	line.ReadTimeout = 100 * time.Millisecond // the finest tarm/serial has
	err := serialport.Keep(ctx, line, pl.env.Clock, pl.log, pl.count, func(ctx context.Context, port *serialport.Port) error {
		pl.tr.port = port
		return pl.poll(ctx, sink)
	})
	if errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// poll serves the blocks in order of their due time until the port fails
// (returned, for Keep to reopen) or ctx is done.
func (pl *poller) poll(ctx context.Context, sink drivers.Sink) error {
	clock := pl.env.Clock
	now := clock.Now()
	for _, b := range pl.plan.blocks {
		if b.due.IsZero() || b.due.Before(now) {
			b.due = now // first poll, or back from an outage: at once
		}
	}
	for {
		b := pl.plan.blocks[0]
		for _, o := range pl.plan.blocks[1:] {
			if o.due.Before(b.due) {
				b = o
			}
		}
		if wait := b.due.Sub(clock.Now()); wait > 0 {
			t := clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.Chan():
			}
		}
		if err := pl.pollBlock(ctx, b, sink); err != nil {
			return err
		}
		// The next poll one interval after this one was due; a poll that
		// fell behind (a slow sink, timeouts) skips what it missed rather
		// than sending a burst.
		b.due = b.due.Add(b.interval)
		if now := clock.Now(); b.due.Before(now) {
			b.due = now
		}
	}
}

// pollBlock reads one block and emits its sensors' readings. It returns an
// error only for a failed port or a done ctx.
func (pl *poller) pollBlock(ctx context.Context, b *block, sink drivers.Sink) error {
	st := pl.slaves[b.slave]
	ts := pl.env.Clock.Now()
	if b.skip > 0 {
		b.skip--
		return pl.emitBad(ctx, b, ts, sink)
	}
	data, err := pl.read(st.client, b)
	var pe *portError
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, ErrTimeout) {
		st.misses++
		pl.count("timeout")
		if st.misses == deadAfter {
			pl.log.Warn("modbus slave not answering; polling it less often", "slave", b.slave, "every_intervals", probeEvery, "err", err)
		}
		if st.misses >= deadAfter {
			b.skip = probeEvery - 1
		}
		return pl.emitBad(ctx, b, ts, sink)
	}
	if st.misses >= deadAfter {
		pl.log.Info("modbus slave answers again", "slave", b.slave)
		for _, o := range pl.plan.blocks {
			if o.slave == b.slave {
				o.skip = 0
			}
		}
	}
	st.misses = 0
	if err != nil {
		pl.failed(b, err)
		return pl.emitBad(ctx, b, ts, sink)
	}
	for _, s := range b.sensors {
		v, err := b.value(s, data)
		q := reading.Good
		if err != nil {
			pl.failed(b, err)
			v, q = math.NaN(), reading.Bad
		}
		if err := sink.Emit(ctx, reading.Reading{Sensor: s.id, TS: ts, Value: v, Unit: s.unit, Quality: q}, nil); err != nil {
			return err
		}
	}
	return nil
}

// read sends b's request through the slave's client.
func (pl *poller) read(c gomodbus.Client, b *block) ([]byte, error) {
	pl.tr.timeout = b.timeout
	addr, n := uint16(b.start), uint16(b.count)
	var data []byte
	var err error
	switch b.kind {
	case KindCoil:
		data, err = c.ReadCoils(addr, n)
	case KindDiscrete:
		data, err = c.ReadDiscreteInputs(addr, n)
	case KindInput:
		data, err = c.ReadInputRegisters(addr, n)
	default:
		data, err = c.ReadHoldingRegisters(addr, n)
	}
	if err == nil {
		want := 2 * b.count
		if isBits(b.kind) {
			want = (b.count + 7) / 8
		}
		if len(data) != want {
			err = fmt.Errorf("%w: %d data bytes, want %d", ErrFrame, len(data), want)
		}
	}
	return data, err
}

// failed counts and logs an answer that was not a value: a CRC error, an
// exception, a malformed frame. Exceptions are a configuration problem
// (a wrong register or slave) and repeat every interval, so their log is
// rate-limited per block; CRC errors are line noise, counted, logged at
// debug.
func (pl *poller) failed(b *block, err error) {
	var ex *gomodbus.ModbusError
	switch {
	case errors.As(err, &ex):
		pl.count("exception")
		now := pl.env.Clock.Now()
		if last, ok := pl.lastExceptionLog[b]; ok && now.Sub(last) < exceptionLogEvery {
			pl.suppressed[b]++
			return
		}
		pl.log.Warn("modbus exception answer", "slave", b.slave, "kind", b.kind, "register", b.start, "count", b.count,
			"exception", ex.ExceptionCode, "err", err, "suppressed", pl.suppressed[b])
		pl.lastExceptionLog[b] = now
		pl.suppressed[b] = 0
	case errors.Is(err, ErrCRC):
		pl.count("crc")
		pl.log.Debug("modbus CRC error", "slave", b.slave, "register", b.start)
	default:
		pl.count("frame")
		pl.log.Debug("modbus malformed answer", "slave", b.slave, "register", b.start, "err", err)
	}
}

func (pl *poller) emitBad(ctx context.Context, b *block, ts time.Time, sink drivers.Sink) error {
	for _, s := range b.sensors {
		if err := sink.Emit(ctx, reading.Reading{Sensor: s.id, TS: ts, Value: math.NaN(), Unit: s.unit, Quality: reading.Bad}, nil); err != nil {
			return err
		}
	}
	return nil
}
