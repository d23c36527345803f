package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var allTopics = []string{DefaultReadingsTopic, DefaultAlertsTopic, DefaultEventsTopic}

// memSource is an in-memory stand-in for the spool, with its contract:
// committed records in seq order, deleted by AckThrough.
type memSource struct {
	mu      sync.Mutex
	recs    []reading.Record
	seq     uint64
	acked   uint64
	acks    int
	changed chan struct{} // closed and replaced on every append
	// onRead, if set, is called with each ReadBatch's after, before it reads.
	onRead func(after uint64)
}

func newMemSource() *memSource { return &memSource{changed: make(chan struct{})} }

// Append assigns seqs to recs, stores them and returns the last seq.
func (s *memSource) Append(recs ...reading.Record) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.seq++
		r.Seq = s.seq
		s.recs = append(s.recs, r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return s.seq
}

func (s *memSource) ReadBatch(after uint64, max int) ([]reading.Record, error) {
	if s.onRead != nil {
		s.onRead(after)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.recs), func(i int) bool { return s.recs[i].Seq > after })
	j := min(i+max, len(s.recs))
	return append([]reading.Record(nil), s.recs[i:j]...), nil
}

func (s *memSource) AckThrough(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.acked {
		return fmt.Errorf("ack went back from %d to %d", s.acked, seq)
	}
	i := sort.Search(len(s.recs), func(i int) bool { return s.recs[i].Seq > seq })
	s.recs = s.recs[i:]
	s.acked = seq
	s.acks++
	return nil
}

func (s *memSource) WaitCommitted(ctx context.Context, after uint64) error {
	for {
		s.mu.Lock()
		ok, ch := len(s.recs) > 0 && s.recs[len(s.recs)-1].Seq > after, s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ackCount is how many times AckThrough was called.
func (s *memSource) ackCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks
}

func (s *memSource) state() (pending int, acked uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs), s.acked
}

var t0 = time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)

// mixedRecords returns n records cycling over keys: mostly readings, every
// 10th an alert and every 10th (offset by 5) a downtime event.
func mixedRecords(n, keys int, from int) []reading.Record {
	out := make([]reading.Record, 0, n)
	for i := from; i < from+n; i++ {
		k := i % keys
		ts := t0.Add(time.Duration(i) * time.Millisecond)
		switch i % 10 {
		case 3:
			out = append(out, reading.FromAlert(reading.Alert{
				Rule: fmt.Sprintf("rule_%d", k), State: reading.StateFiring, Severity: "critical",
				Value: 80.5 + float64(i), Since: ts.Add(-10 * time.Second), TS: ts,
				Message: fmt.Sprintf("Press \"oil\" %d C", i),
			}))
		case 8:
			e := reading.Event{Machine: fmt.Sprintf("press_%d", k), State: reading.StateDown,
				Start: ts.Add(-30 * time.Second), Duration: 30 * time.Second}
			if i%20 == 18 {
				e.State, e.End, e.Duration = reading.StateUp, ts, 45500*time.Millisecond
			}
			out = append(out, reading.FromEvent(e))
		default:
			out = append(out, reading.FromReading(reading.Reading{
				Sensor: fmt.Sprintf("sensor_%d", k), TS: ts, Value: float64(i) / 4,
				Unit: "C", Quality: reading.Quality(i % 3),
			}))
		}
	}
	return out
}

func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, allTopics...)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type testEnv struct {
	u      *Uplink
	src    *memSource
	m      *metrics.Set
	cancel context.CancelFunc
	done   chan error
}

// startUplink runs an uplink against brokers on an in-memory source, 100
// records a batch; edit adjusts the options.
func startUplink(t testing.TB, brokers []string, src *memSource, edit func(*Options)) *testEnv {
	t.Helper()
	env := startUplinkOn(t, brokers, src, metrics.New(), func(o *Options) {
		o.BatchSize = 100
		if edit != nil {
			edit(o)
		}
	})
	env.src = src
	return env
}

// startUplinkOn runs an uplink on src with the test defaults (500 records
// a batch, a 2 ms linger, short backoffs); edit adjusts the options.
func startUplinkOn(t testing.TB, brokers []string, src Source, m *metrics.Set, edit func(*Options)) *testEnv {
	t.Helper()
	opts := Options{
		Brokers: brokers, Gateway: "gw-test-01", BatchSize: 500, Linger: 2 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		WriteTimeout: 5 * time.Second, Metrics: m, Logger: slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&opts)
	}
	u, err := New(opts, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	env := &testEnv{u: u, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { env.done <- u.Run(ctx) }()
	t.Cleanup(func() { env.stop(t) })
	return env
}

func (e *testEnv) stop(t testing.TB) {
	e.cancel()
	select {
	case err, ok := <-e.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(e.done)
		}
	case <-time.After(15 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDrained waits until Kafka acknowledged last and the source is empty.
func (e *testEnv) waitDrained(t testing.TB, d time.Duration, last uint64) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("seq %d sent and acked", last), func() bool {
		n, acked := e.src.state()
		return e.u.Sent() == last && n == 0 && acked == last
	})
}

// consume reads topics from the start until it has seen want distinct seqs
// (counted by the caller's seqOf) and returns every record fetched.
func consume(t testing.TB, brokers []string, topics []string, want int, seqOf func(*kgo.Record) uint64, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	seen := map[uint64]bool{}
	for len(seen) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d distinct records before timeout", len(seen), want)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			seen[seqOf(r)] = true
		})
	}
	return out
}
