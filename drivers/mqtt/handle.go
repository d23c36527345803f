package mqtt

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/reading"
)

// handle turns one message into readings. paho calls it on its router
// goroutine, one message at a time (SetOrderMatters), or, at QoS 0, the
// connection on paho's reader goroutine (conn.go); either way blocking in
// Emit is the back-pressure and per-sensor order is the broker's order.
// handleMu keeps the calls one at a time across a reconnect too.
func (d *Driver) handle(_ paho.Client, m paho.Message) {
	d.handleMu.Lock()
	defer d.handleMu.Unlock()
	ctx := d.ctx
	if ctx.Err() != nil {
		return // not acknowledged: the broker delivers it again after the restart
	}
	now := d.env.Clock.Now()
	topic := m.Topic()
	pm, direct := m.(*publishMsg) // QoS 0, from the connection (conn.go)
	var targets []*sensor
	if direct && pm.ref != nil {
		if !pm.ref.resolved {
			pm.ref.targets, pm.ref.resolved = d.routes.match(topic, nil), true
		}
		targets = pm.ref.targets
	} else {
		targets = d.routes.match(topic, d.scratch[:0])
		d.scratch = targets
	}
	if len(targets) == 0 {
		// A persistent session keeps the subscriptions of an earlier config.
		d.unknown.Inc()
		if ok, held := d.limit.allow("\x00unknown"); ok {
			d.log.Warn("message on a topic no sensor reads dropped", "topic", topic, "held_back", held)
		}
		m.Ack()
		return
	}

	var mark drivers.Mark
	marker, marks := d.sink.(drivers.Marker)
	marks = marks && m.Qos() > 0
	if marks {
		mark = drivers.Mark{ID: m.MessageID(), Hash: messageHash(topic, m.Payload())}
		if m.Duplicate() {
			if marker.Redelivered(mark) {
				// Committed before a crash, never acknowledged: the broker
				// gets its acknowledgement now, the spool nothing twice.
				d.dedup.Inc()
				m.Ack()
				marker.Forget(mark.ID)
				return
			}
			d.redelivered.Inc()
		} else {
			// A broker reuses a packet id only once the message that had
			// it was acknowledged: a mark left for the id is stale.
			marker.Reused(mark.ID)
		}
	}

	// Every reading first, so that the last one, which carries the mark,
	// is known before any is handed over. QoS 0 readings from the
	// connection go straight among those held for the next batch: the
	// connection calls flush once it has handled what one read brought.
	held := direct && !marks && d.batch != nil
	payload := m.Payload()
	valid := 0 // whether payload is JSON: 0 not yet known, 1 yes, -1 no
	rs := d.readings[:0]
	if held {
		rs = d.pending
	}
	for _, s := range targets {
		v, err := s.value(payload, &valid)
		if err != nil {
			d.bad(s, topic, err)
			continue // counted as done: a bad payload is acknowledged, not redelivered forever
		}
		rs = append(rs, reading.Reading{Sensor: s.id, TS: now, Value: v, Unit: s.unit, Quality: reading.Good})
	}
	if held {
		d.pending = rs
		if len(d.pending) >= maxHeld {
			d.flushPending()
		}
		return
	}
	d.readings = rs

	var ack *messageAck
	if m.Qos() > 0 {
		ack = &messageAck{msg: m, acks: &d.acks}
		if marks {
			ack.forget = func() { marker.Forget(mark.ID) }
		}
		ack.pending.Store(1) // held by this function until every reading is handed over
		d.acks.add()
	}
	for i, r := range rs {
		var done func()
		if ack != nil {
			ack.pending.Add(1)
			done = ack.done
		}
		var err error
		if marks && i == len(rs)-1 {
			err = marker.EmitMarked(ctx, r, done, mark)
		} else {
			err = d.sink.Emit(ctx, r, done)
		}
		if err != nil {
			if ack != nil {
				// Not accepted, so the sink never calls done; leaving the
				// message unacknowledged makes the broker send it again.
				ack.failed.Store(true)
				ack.done()
			}
			break
		}
	}
	if ack != nil {
		ack.done()
	}
}

// maxHeld is the most QoS 0 readings handle holds before it hands them
// over without waiting for the end of the read.
const maxHeld = 256

// flush hands over the QoS 0 readings handle holds. The connection calls
// it once it has handled what one read brought, before it waits or reads
// again, and before it returns an error.
func (d *Driver) flush() {
	d.handleMu.Lock()
	defer d.handleMu.Unlock()
	d.flushPending()
}

// flushPending is flush under handleMu. Readings the sink does not take
// (it stops) are dropped, as Emit's are at QoS 0.
func (d *Driver) flushPending() {
	if len(d.pending) == 0 {
		return
	}
	if d.ctx.Err() == nil {
		_ = d.batch.EmitBatch(d.ctx, d.pending)
	}
	d.pending = d.pending[:0]
}

// messageHash is FNV-1a (64 bits) of topic, a zero byte and payload: with
// the packet id it tells a redelivery from another message. It must not
// change between versions (marks outlive the process).
func messageHash(topic string, payload []byte) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(topic); i++ {
		h = (h ^ uint64(topic[i])) * prime
	}
	h *= prime // the zero byte
	for _, c := range payload {
		h = (h ^ uint64(c)) * prime
	}
	return h
}

// value reads the sensor's number from a payload. valid caches the JSON
// check across the sensors sharing one message.
func (s *sensor) value(payload []byte, valid *int) (float64, error) {
	if !s.json {
		return parseNumber(payload)
	}
	if *valid == 0 {
		*valid = -1
		if json.Valid(payload) {
			*valid = 1
		}
	}
	if *valid < 0 {
		return 0, ErrNotJSON
	}
	raw, err := s.path.extract(payload)
	if err != nil {
		return 0, err
	}
	return jsonNumber(raw)
}

// bad counts a payload that gave no reading and logs it, rate-limited per
// sensor: a device publishing garbage ten times a second must not flood
// the journal.
func (d *Driver) bad(s *sensor, topic string, err error) {
	if errors.Is(err, ErrNaN) {
		d.notANumber.Inc()
		d.errNaN.Inc()
	} else {
		d.malformed.Inc()
		d.errMalformed.Inc()
	}
	if ok, held := d.limit.allow(s.id); ok {
		d.log.Warn("bad payload dropped", "sensor", s.id, "topic", topic, "err", err, "held_back", held)
	}
}

// messageAck acknowledges one QoS 1 message once every reading made from
// it was acknowledged by the sink.
type messageAck struct {
	msg     paho.Message
	forget  func() // drops the message's redelivery mark once acknowledged; nil without marks
	acks    *counter
	pending atomic.Int32
	failed  atomic.Bool
}

func (a *messageAck) done() {
	if a.pending.Add(-1) != 0 {
		return
	}
	if !a.failed.Load() {
		// After a reconnect paho 1.5.1 drops this PUBACK (its issue
		// #726); the broker then delivers the message again, DUP set.
		a.msg.Ack()
		if a.forget != nil {
			a.forget()
		}
	}
	a.acks.done()
}

// counter counts outstanding work and tells when none is left.
type counter struct {
	mu   sync.Mutex
	n    int
	zero chan struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *counter) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.zero = make(chan struct{})
	}
	c.n++
}

func (c *counter) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 {
		close(c.zero)
	}
}

// idle is closed once nothing is outstanding.
func (c *counter) idle() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return closedChan
	}
	return c.zero
}

func (c *counter) value() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// logLimiter lets one log line per key through per period and counts the
// ones it held back, so the next line can say how many there were.
type logLimiter struct {
	clock clockwork.Clock
	every time.Duration
	mu    sync.Mutex
	seen  map[string]*limitState
}

type limitState struct {
	last time.Time
	held int
}

func newLogLimiter(clock clockwork.Clock, every time.Duration) *logLimiter {
	return &logLimiter{clock: clock, every: every, seen: map[string]*limitState{}}
}

// allow reports whether to log for key now, and how many were held back
// since the last line.
func (l *logLimiter) allow(key string) (bool, int) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.seen[key]
	if st == nil {
		l.seen[key] = &limitState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < l.every {
		st.held++
		return false, 0
	}
	held := st.held
	st.last, st.held = now, 0
	return true, held
}
