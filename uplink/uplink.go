// Package uplink drains the spool into Kafka.
//
// Promises:
//   - A record is acknowledged to the spool (Source.AckThrough) only after
//     Kafka acknowledged it, and every record below it, with acks=all.
//   - Records are produced in spool order, one batch at a time. A failed
//     batch is retried whole, in the same order, until it succeeds or Run's
//     context ends; a later batch is never sent before an earlier one was
//     acknowledged. Together with one partition per key (murmur2, as the Java
//     client does) this keeps per-key order: the first arrival of each seq
//     in a partition is in seq order.
//   - Delivery is at least once. A produce whose answer was lost, or a batch
//     that failed on some partitions only, is sent again with the same seq;
//     consumers dedupe on (gateway, seq).
//
// Three goroutines overlap the work: one reads and encodes the next batch
// while the current one is in flight, one produces, and one acknowledges to
// the spool (a bbolt commit with fsync, coalesced when it lags behind, and
// held while more batches are ready to go, up to eight batches).
package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/jonboulle/clockwork"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Source is what the uplink needs from the spool.
type Source interface {
	// ReadBatch returns up to max committed records with seq > after, in
	// ascending seq order, with Seq set.
	ReadBatch(after uint64, max int) ([]reading.Record, error)
	// AckThrough deletes the records with seq <= seq.
	AckThrough(seq uint64) error
	// WaitCommitted returns once a committed record with seq > after
	// exists, or ctx.Err() when ctx ends first.
	WaitCommitted(ctx context.Context, after uint64) error
}

// Default topic names, as in the demo stack and DESIGN.md.
const (
	DefaultReadingsTopic = "plant.readings"
	DefaultAlertsTopic   = "plant.alerts"
	DefaultEventsTopic   = "plant.events"
)

// Options configure an Uplink. Zero values take the documented defaults.
type Options struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// Topics by record kind. Defaults: plant.readings, plant.alerts, plant.events.
	ReadingsTopic, AlertsTopic, EventsTopic string
	// Gateway is the gateway id written into every JSON value. Required.
	Gateway string

	// BatchSize is the most records sent in one produce. Default 1000.
	BatchSize int
	// Linger is how long a batch that is not full waits for more records
	// before it is sent: more records per request against up to Linger of
	// latency. A batch that follows a full one does not wait. Default
	// 200ms; negative sends at once.
	Linger time.Duration
	// Compression is none, gzip, snappy, lz4 or zstd. Default none.
	Compression string
	// TLS enables TLS to the brokers; nil is plaintext.
	TLS *tls.Config
	// SASL authenticates to the brokers; nil is none.
	SASL sasl.Mechanism
	// Hints name the settings behind TLS and SASL in the errors Outage
	// and the log show (see Hints).
	Hints Hints
	// WriteTimeout bounds one produce attempt. Default 10s.
	WriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between failed attempts,
	// doubling from Min up to Max. Defaults 100ms and 10s.
	BackoffMin, BackoffMax time.Duration

	Clock   clockwork.Clock // default: the real clock
	Logger  *slog.Logger    // default: discard
	Metrics *metrics.Set    // default: a private set
}

// Uplink produces the spool's records to Kafka. Create it with New and
// start it with Run.
type Uplink struct {
	opts        Options
	src         Source
	compression kafka.Compression
	log         *slog.Logger
	m           *metrics.Set
	clock       clockwork.Clock
	sec         *security

	sent      atomic.Uint64 // highest seq Kafka acknowledged
	spare     chan *batch   // delivered batches to fill again (batch.go)
	connected atomic.Bool
	running   sync.Mutex // one Run at a time: each owns the read position

	// Outage bookkeeping, touched only by the producing goroutine.
	down      bool
	downSince time.Time
	failures  int
	logged    map[string]bool // the kinds of error logged in this outage (errClass)

	// What Outage reports, for the dashboard and the uplink-down alert.
	outageMu    sync.Mutex
	outageSince time.Time
	outageErr   string
}

// New checks opts, fills in defaults and returns an Uplink that reads from
// src. It does not connect: Run does.
func New(opts Options, src Source) (*Uplink, error) {
	if src == nil {
		return nil, errors.New("uplink: nil source")
	}
	if len(opts.Brokers) == 0 {
		return nil, errors.New("uplink: no brokers")
	}
	if opts.Gateway == "" {
		return nil, errors.New("uplink: no gateway id")
	}
	comp, err := parseCompression(opts.Compression)
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	if comp == kafka.Zstd {
		useZstdCodec() // zstd.go
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&opts.ReadingsTopic, DefaultReadingsTopic)
	def(&opts.AlertsTopic, DefaultAlertsTopic)
	def(&opts.EventsTopic, DefaultEventsTopic)
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defDur(&opts.Linger, 200*time.Millisecond)
	defDur(&opts.WriteTimeout, 10*time.Second)
	defDur(&opts.BackoffMin, 100*time.Millisecond)
	defDur(&opts.BackoffMax, 10*time.Second)
	if opts.BatchSize == 0 {
		opts.BatchSize = 1000
	}
	switch {
	case opts.BatchSize < 0:
		return nil, fmt.Errorf("uplink: batch size %d < 0", opts.BatchSize)
	case opts.WriteTimeout < 0 || opts.BackoffMin < 0:
		return nil, errors.New("uplink: negative write timeout or backoff")
	case opts.BackoffMax < opts.BackoffMin:
		return nil, fmt.Errorf("uplink: backoff max %s < min %s", opts.BackoffMax, opts.BackoffMin)
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	u := &Uplink{
		spare:       make(chan *batch, spareBatches),
		opts:        opts,
		src:         src,
		compression: comp,
		log:         opts.Logger.With("component", "uplink"),
		m:           opts.Metrics,
		clock:       opts.Clock,
		sec:         newSecurity(opts.TLS, opts.Hints),
	}
	u.m.UplinkConnected.Set(0)
	return u, nil
}

// Connected reports whether the last produce succeeded. It is false until
// the first batch was acknowledged.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// Outage tells whether produce attempts are failing now: since when (zero
// when not) and the last attempt's error, summarised.
func (u *Uplink) Outage() (since time.Time, lastErr string) {
	u.outageMu.Lock()
	defer u.outageMu.Unlock()
	return u.outageSince, u.outageErr
}

// Sent is the highest seq Kafka acknowledged, together with every record
// before it. The spool is acknowledged through it shortly after, and always
// before Run returns; a bounded flush on shutdown waits for Sent to reach
// the spool's last seq.
func (u *Uplink) Sent() uint64 { return u.sent.Load() }

// Run produces until ctx ends, then waits for its goroutines, acknowledges
// to the spool what Kafka acknowledged, closes its connections and returns
// nil. A batch in flight when ctx ends is not acknowledged to the spool and
// is sent again by the next Run (at least once). Errors of Kafka or of the
// spool are retried, never returned.
func (u *Uplink) Run(ctx context.Context) error {
	u.running.Lock()
	defer u.running.Unlock()

	// TLS is done by our dialer, not kafka-go, so that a failed
	// handshake names the broker and what to check (security.go).
	transport := &kafka.Transport{
		ClientID: "edgegw-" + u.opts.Gateway,
		Dial:     u.sec.Dial,
		SASL:     u.sec.watchSASL(u.opts.SASL),
	}
	p := u.newProducer(transport)
	defer transport.CloseIdleConnections()

	batches := make(chan *batch, 1)
	acks := newAcker(u)
	var wg sync.WaitGroup
	wg.Go(func() { u.prepare(ctx, batches) })
	wg.Go(acks.run)

	// Acknowledgements to the spool wait while the next batch is ready to
	// go, up to ackAfter records: draining a backlog, or the burst that
	// follows each spool commit, costs one bbolt commit (two fsyncs) per
	// burst instead of one per batch. They go at once when the uplink
	// catches up, when a produce fails, and when the source's producers
	// wait for them (outage mode).
	ackAfter := ackBatches * u.opts.BatchSize
	unacked := 0
	flushAcks := func() {
		if unacked > 0 {
			acks.through(u.sent.Load())
			unacked = 0
		}
	}
	for {
		var b *batch
		select {
		case <-ctx.Done():
		case b = <-batches:
		}
		if b == nil || u.send(ctx, p, b, flushAcks) != nil {
			break
		}
		u.sent.Store(b.last)
		unacked += len(b.msgs)
		if len(batches) == 0 || unacked >= ackAfter || u.waited() {
			flushAcks()
		}
		u.recycle(b)
	}
	flushAcks()
	acks.stop()
	wg.Wait()
	return nil
}

func (u *Uplink) newProducer(t *kafka.Transport) *producer {
	return &producer{
		client:      &kafka.Client{Addr: kafka.TCP(u.opts.Brokers...), Transport: t, Timeout: u.opts.WriteTimeout},
		transport:   t,
		compression: u.compression,
	}
}

// ackBatches is how many full batches Kafka may acknowledge before the
// spool is told, while more are ready to send.
const ackBatches = 8

// send produces b until Kafka acknowledges all of it or ctx ends. After a
// failed attempt it calls flushAcks, so that what Kafka already has leaves
// the spool during an outage.
func (u *Uplink) send(ctx context.Context, p *producer, b *batch, flushAcks func()) error {
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, u.opts.WriteTimeout)
		err := p.write(wctx, b.msgs)
		cancel()
		if err == nil {
			u.delivered(b)
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		b.failed = true
		u.failed(b, err)
		flushAcks()
		sleep(ctx, u.clock, backoff(u.failures, u.opts.BackoffMin, u.opts.BackoffMax))
	}
	return ctx.Err()
}

func (u *Uplink) delivered(b *batch) {
	now := u.clock.Now()
	for i, topic := range [...]string{u.opts.ReadingsTopic, u.opts.AlertsTopic, u.opts.EventsTopic} {
		if n := b.perTopic[i]; n > 0 {
			u.m.UplinkSent.WithLabelValues(topic).Add(float64(n))
		}
	}
	for _, ts := range b.readingTS {
		u.m.UplinkLatency.Observe(now.Sub(ts).Seconds())
	}
	u.m.UplinkBatches.Inc()
	u.m.UplinkConnected.Set(1)
	u.connected.Store(true)
	if u.down {
		u.log.Info("kafka reachable again", "brokers", u.opts.Brokers,
			"down_for", now.Sub(u.downSince).Round(time.Millisecond), "failed_attempts", u.failures)
	}
	u.down, u.failures = false, 0
	clear(u.logged)
	u.sec.reset() // exchanges cut short before this success explain nothing later
	u.outageMu.Lock()
	u.outageSince, u.outageErr = time.Time{}, ""
	u.outageMu.Unlock()
}

// failed records a failed attempt. An outage is logged when it starts and
// again for each new kind of error in it (the network, then a rejected
// certificate, say), not on every attempt. Errors of trust or identity
// (AuthError) are logged as errors: retrying alone will not fix them.
func (u *Uplink) failed(b *batch, err error) {
	err = u.explain(err)
	msg := describe(err)
	u.m.UplinkErrors.Inc()
	u.m.UplinkConnected.Set(0)
	u.connected.Store(false)
	u.failures++
	u.outageMu.Lock()
	if !u.down {
		u.outageSince = u.clock.Now()
	}
	u.outageErr = msg
	u.outageMu.Unlock()
	if !u.down {
		u.down, u.downSince = true, u.clock.Now()
	}
	class := errClass(err)
	if u.logged[class] {
		return
	}
	if u.logged == nil {
		u.logged = map[string]bool{}
	}
	u.logged[class] = true
	var ae *AuthError
	if errors.As(err, &ae) {
		u.log.Error("kafka refused the connection; keeping the records in the spool and retrying, but the configuration must change",
			"brokers", u.opts.Brokers, "err", msg, "records", len(b.msgs), "first_seq", b.first)
		return
	}
	u.log.Warn("kafka produce failed; keeping the batch and retrying until it succeeds",
		"brokers", u.opts.Brokers, "err", msg, "records", len(b.msgs), "first_seq", b.first)
}

// summarize shortens kafka.WriteErrors, which holds one entry per message.
func summarize(err error) string {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err.Error()
	}
	for _, e := range we {
		if e != nil {
			return fmt.Sprintf("%d of %d records failed: %v", we.Count(), len(we), e)
		}
	}
	return err.Error()
}

// backoff is the wait after the n-th consecutive failure (n >= 1):
// min, 2·min, 4·min, ... capped at max.
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return clampDur(d, min, max)
}

func clampDur(d, min, max time.Duration) time.Duration {
	if d > max {
		return max
	}
	if d < min {
		return min
	}
	return d
}

// sleep waits d on clock; false if ctx ended first.
func sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return true
	case <-ctx.Done():
		return false
	}
}
