package uplink

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/jonboulle/clockwork"
	"github.com/segmentio/kafka-go"
)

// batch is one produce: records first..last of the spool, encoded. A batch
// whose first produce succeeded is used again for a later one (its
// buffers: a 1,000-record batch is some 350 KB, garbage at every batch
// otherwise); one that ever failed is not, because a produce that
// returned on a timeout may still be reading it inside kafka-go.
type batch struct {
	first, last uint64
	msgs        []kafka.Message
	perTopic    [3]int      // readings, alerts, events
	readingTS   []time.Time // for the latency histogram
	buf         []byte      // keys and values
	ends        []int
	failed      bool // an attempt failed: never reused
}

// spareBatches is how many delivered batches wait to be reused: one is
// encoded while another is in flight.
const spareBatches = 2

// newBatch is a delivered batch to fill again, or a new one.
func (u *Uplink) newBatch() *batch {
	select {
	case b := <-u.spare:
		return b
	default:
		return &batch{}
	}
}

// recycle keeps b, delivered at its first attempt, for a later batch.
func (u *Uplink) recycle(b *batch) {
	if b.failed || cap(b.buf) > 4<<20 {
		return
	}
	clear(b.msgs) // drop the references to headers and topics
	select {
	case u.spare <- b:
	default:
	}
}

// The schema headers are shared by every message: kafka-go only reads them.
var schemaHeaders = map[reading.Kind][]kafka.Header{
	reading.KindReading: {{Key: "schema", Value: []byte(reading.SchemaReading)}},
	reading.KindAlert:   {{Key: "schema", Value: []byte(reading.SchemaAlert)}},
	reading.KindEvent:   {{Key: "schema", Value: []byte(reading.SchemaEvent)}},
}

// topicIndex maps a kind to its slot in perTopic; anything unknown travels
// as a reading, as reading.Record's Key, Schema and AppendJSON treat it.
func topicIndex(k reading.Kind) int {
	switch k {
	case reading.KindAlert:
		return 1
	case reading.KindEvent:
		return 2
	}
	return 0
}

// recordTime is the record's own timestamp, used as the Kafka record time:
// when a reading was read, when an alert transition happened, when a
// downtime event was written (its end, or start plus duration so far).
func recordTime(r *reading.Record) time.Time {
	switch r.Kind {
	case reading.KindAlert:
		if r.Alert != nil {
			return r.Alert.TS
		}
	case reading.KindEvent:
		if e := r.Event; e != nil {
			if !e.End.IsZero() {
				return e.End
			}
			if !e.Start.IsZero() {
				return e.Start.Add(e.Duration)
			}
		}
	default:
		return r.Reading.TS
	}
	return time.Time{}
}

// encode turns records (non-empty, ascending seq) into one batch. Keys and
// values share one buffer: one allocation per batch instead of two per
// record.
func (u *Uplink) encode(recs []reading.Record) *batch {
	b := u.newBatch()
	b.first, b.last = recs[0].Seq, recs[len(recs)-1].Seq
	b.perTopic = [3]int{}
	b.msgs = slices.Grow(b.msgs[:0], len(recs))[:len(recs)]
	b.readingTS = b.readingTS[:0]
	topics := [3]string{u.opts.ReadingsTopic, u.opts.AlertsTopic, u.opts.EventsTopic}
	ends := slices.Grow(b.ends[:0], 2*len(recs))[:2*len(recs)]
	buf := slices.Grow(b.buf[:0], 160*len(recs))
	for i := range recs {
		r := &recs[i]
		buf = append(buf, r.Key()...)
		ends[2*i] = len(buf)
		buf = r.AppendJSON(buf, u.opts.Gateway)
		ends[2*i+1] = len(buf)

		t := topicIndex(r.Kind)
		b.perTopic[t]++
		ts := recordTime(r)
		if t == 0 {
			b.readingTS = append(b.readingTS, ts)
		}
		h := schemaHeaders[r.Kind]
		if h == nil {
			h = schemaHeaders[reading.KindReading]
		}
		b.msgs[i] = kafka.Message{Topic: topics[t], Headers: h, Time: ts}
	}
	start := 0
	for i := range b.msgs {
		k, v := ends[2*i], ends[2*i+1]
		// Full slice expressions, so nothing can append into a neighbour.
		b.msgs[i].Key = buf[start:k:k]
		b.msgs[i].Value = buf[k:v:v]
		start = v
	}
	b.buf, b.ends = buf, ends
	return b
}

// prepare reads and encodes batches ahead of the producer, in seq order,
// until ctx ends. The channel holds one batch, so at most one batch waits
// while another is in flight.
//
// A batch that is not full lingers for more records, unless the one before
// it was full: then the uplink is working through records that are already
// there (a group commit of several batches, a backlog after an outage),
// and the remainder goes at once instead of waiting for the next commit.
func (u *Uplink) prepare(ctx context.Context, out chan<- *batch) {
	after := u.sent.Load()
	linger := true
	for {
		recs, ok := u.read(ctx, after, linger)
		if !ok {
			return
		}
		linger = len(recs) < u.opts.BatchSize
		select {
		case out <- u.encode(recs):
			after = recs[len(recs)-1].Seq
		case <-ctx.Done():
			return
		}
	}
}

// read returns the next records after seq after, waiting for them and, when
// fewer than a batch are there and linger is set, lingering once for more.
// Spool errors are logged once per streak and retried with backoff. ok is
// false once ctx ended.
func (u *Uplink) read(ctx context.Context, after uint64, linger bool) (recs []reading.Record, ok bool) {
	max := u.opts.BatchSize
	failures := 0
	for ctx.Err() == nil {
		err := u.src.WaitCommitted(ctx, after)
		if err == nil {
			recs, err = u.src.ReadBatch(after, max)
		}
		if err == nil && len(recs) > 0 && len(recs) < max && linger && u.opts.Linger > 0 && !u.waited() {
			if !sleep(ctx, u.clock, u.opts.Linger) {
				return nil, false
			}
			var more []reading.Record
			more, err = u.src.ReadBatch(recs[len(recs)-1].Seq, max-len(recs))
			recs = append(recs, more...)
		}
		if err == nil {
			if len(recs) > 0 {
				return recs, true
			}
			continue
		}
		if ctx.Err() != nil {
			break
		}
		failures++
		if failures == 1 {
			u.log.Error("reading the spool failed; retrying", "after_seq", after, "err", err)
		}
		if !sleep(ctx, u.clock, backoff(failures, u.opts.BackoffMin, u.opts.BackoffMax)) {
			break
		}
	}
	return nil, false
}

// waiter is what a Source may also offer: whether a producer waits for
// Kafka's acknowledgement of the records it holds (the spool in outage
// mode holds MQTT QoS 1 messages unacknowledged until Kafka has them, and
// a broker allows only so many in flight). The uplink then sends what it
// read at once instead of lingering for a fuller batch.
type waiter interface{ Waiting() bool }

func (u *Uplink) waited() bool {
	w, ok := u.src.(waiter)
	return ok && w.Waiting()
}

// acker acknowledges to the spool in its own goroutine, so that a bbolt
// commit does not hold up the next produce. Acks only move forward and
// coalesce: after a slow commit it acknowledges through the latest seq
// Kafka acknowledged, not each batch in turn.
type acker struct {
	u       *Uplink
	latest  chan uint64 // capacity 1: the newest seq not yet acknowledged
	stopped chan struct{}
}

func newAcker(u *Uplink) *acker {
	return &acker{u: u, latest: make(chan uint64, 1), stopped: make(chan struct{})}
}

// through hands over seq, replacing an older one still waiting. Only the
// producing goroutine calls it, so the drain and the send cannot race with
// another sender.
func (a *acker) through(seq uint64) {
	select {
	case old := <-a.latest:
		seq = max(seq, old)
	default:
	}
	a.latest <- seq
}

// stop makes run acknowledge what is pending and return.
func (a *acker) stop() { close(a.stopped) }

func (a *acker) run() {
	var acked, want uint64
	failures := 0
	for {
		var retry clockwork.Timer
		var retryC <-chan time.Time
		if want > acked {
			if err := a.u.src.AckThrough(want); err != nil {
				// Kafka has these records; keep trying so the spool empties.
				failures++
				if failures == 1 {
					a.u.log.Error("acknowledging to the spool failed; retrying", "seq", want, "err", err)
				}
				retry = a.u.clock.NewTimer(backoff(failures, a.u.opts.BackoffMin, a.u.opts.BackoffMax))
				retryC = retry.Chan()
			} else {
				acked, failures = want, 0
			}
		}
		select {
		case seq := <-a.latest:
			want = max(want, seq)
		case <-retryC:
		case <-a.stopped:
			select {
			case seq := <-a.latest:
				want = max(want, seq)
			default:
			}
			if want > acked {
				if err := a.u.src.AckThrough(want); err != nil {
					a.u.log.Error("acknowledging to the spool failed; the records will be sent again", "seq", want, "err", err)
				}
			}
			if retry != nil {
				retry.Stop()
			}
			return
		}
		if retry != nil {
			retry.Stop()
		}
	}
}

func parseCompression(s string) (kafka.Compression, error) {
	switch s {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want none, gzip, snappy, lz4 or zstd)", s)
}
