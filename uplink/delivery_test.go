package uplink

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// seqOf reads the seq from a record's JSON value.
func seqOf(t testing.TB) func(*kgo.Record) uint64 {
	return func(r *kgo.Record) uint64 {
		var v struct{ Seq uint64 }
		if err := json.Unmarshal(r.Value, &v); err != nil || v.Seq == 0 {
			t.Fatalf("%s: value %q: no seq (%v)", r.Topic, r.Value, err)
		}
		return v.Seq
	}
}

func jsonTime(ts time.Time) any {
	if ts.IsZero() {
		return nil
	}
	return ts.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// wantValue is the JSON DESIGN.md ("Kafka records") asks for, written out
// field by field rather than through reading.AppendJSON.
func wantValue(gw string, r reading.Record) (topic, key, schema string, v map[string]any) {
	seq := float64(r.Seq)
	switch r.Kind {
	case reading.KindAlert:
		a := r.Alert
		return DefaultAlertsTopic, a.Rule, "edgegw.alert.v1", map[string]any{
			"gateway": gw, "rule": a.Rule, "state": a.State, "severity": a.Severity, "value": a.Value,
			"since": jsonTime(a.Since), "ts": jsonTime(a.TS), "message": a.Message, "seq": seq}
	case reading.KindEvent:
		e := r.Event
		return DefaultEventsTopic, e.Machine, "edgegw.event.v1", map[string]any{
			"gateway": gw, "machine": e.Machine, "state": e.State, "start": jsonTime(e.Start),
			"end": jsonTime(e.End), "duration_s": e.Duration.Seconds(), "seq": seq}
	}
	x := r.Reading
	return DefaultReadingsTopic, x.Sensor, "edgegw.reading.v1", map[string]any{
		"gateway": gw, "sensor": x.Sensor, "ts": jsonTime(x.TS), "value": x.Value, "unit": x.Unit,
		"quality": x.Quality.String(), "seq": seq}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestDelivery(t *testing.T) {
	const n = 2500
	c := newCluster(t)
	src := newMemSource()
	recs := mixedRecords(n, 17, 0)
	last := src.Append(recs[:n/2]...)
	env := startUplink(t, c.ListenAddrs(), src, nil)
	waitFor(t, 10*time.Second, "first half sent", func() bool { return env.u.Sent() > 0 })
	last = src.Append(recs[n/2:]...) // arrives while the uplink runs
	env.waitDrained(t, 10*time.Second, last)
	if !env.u.Connected() {
		t.Error("Connected() = false after a drain")
	}

	bySeq := map[uint64]reading.Record{}
	for i := range recs {
		recs[i].Seq = uint64(i + 1)
		bySeq[recs[i].Seq] = recs[i]
	}
	got := consume(t, c.ListenAddrs(), allTopics, n, seqOf(t))
	if len(got) != n {
		t.Errorf("consumed %d records, want %d (duplicates without any failure)", len(got), n)
	}
	partitioner := kgo.StickyKeyPartitioner(nil)
	lastSeq := map[string]uint64{} // topic/partition
	perTopic := map[string]int{}
	for _, r := range got {
		seq := seqOf(t)(r)
		topic, key, schema, want := wantValue("gw-test-01", bySeq[seq])
		perTopic[r.Topic]++
		if r.Topic != topic || string(r.Key) != key || header(r, "schema") != schema {
			t.Errorf("seq %d: topic/key/schema %s/%s/%s, want %s/%s/%s",
				seq, r.Topic, r.Key, header(r, "schema"), topic, key, schema)
		}
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("seq %d: %v: %s", seq, err, r.Value)
		}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("seq %d value\n got %v\nwant %v", seq, v, want)
		}
		if wantTS := recordTime(ptr(bySeq[seq])); !r.Timestamp.Equal(wantTS.Truncate(time.Millisecond)) {
			t.Errorf("seq %d: record time %v, want %v", seq, r.Timestamp, wantTS)
		}
		// The partition the Java client (murmur2) picks for this key.
		if p := partitioner.ForTopic(r.Topic).Partition(&kgo.Record{Key: r.Key}, 3); int32(p) != r.Partition {
			t.Errorf("seq %d key %s: partition %d, want %d", seq, r.Key, r.Partition, p)
		}
		tp := r.Topic + "/" + strconv.Itoa(int(r.Partition))
		if seq <= lastSeq[tp] {
			t.Errorf("%s: seq %d after %d", tp, seq, lastSeq[tp])
		}
		lastSeq[tp] = seq
	}
	if perTopic[DefaultReadingsTopic] != 2000 || perTopic[DefaultAlertsTopic] != 250 || perTopic[DefaultEventsTopic] != 250 {
		t.Errorf("records per topic: %v", perTopic)
	}
	for topic, want := range map[string]float64{DefaultReadingsTopic: 2000, DefaultAlertsTopic: 250, DefaultEventsTopic: 250} {
		if got := testutil.ToFloat64(env.m.UplinkSent.WithLabelValues(topic)); got != want {
			t.Errorf("edgegw_uplink_sent_total{topic=%q} = %v, want %v", topic, got, want)
		}
	}
	if got := testutil.ToFloat64(env.m.UplinkErrors); got != 0 {
		t.Errorf("edgegw_uplink_errors_total = %v", got)
	}
	if got := testutil.CollectAndCount(env.m.UplinkLatency); got != 1 {
		t.Errorf("latency histogram series = %d", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestCompression(t *testing.T) {
	c := newCluster(t, kfake.AllowAutoTopicCreation())
	// Record attribute codes of the Kafka protocol.
	codes := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	for _, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(name, func(t *testing.T) {
			topic := "plant.readings." + name // created on first produce
			src := newMemSource()
			last := src.Append(mixedRecords(300, 5, 0)...)
			env := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
				o.Compression = name
				o.ReadingsTopic, o.AlertsTopic, o.EventsTopic = topic, topic, topic
			})
			env.waitDrained(t, 10*time.Second, last)
			got := consume(t, c.ListenAddrs(), []string{topic}, 300, seqOf(t))
			for _, r := range got {
				if ct := r.Attrs.CompressionType(); ct != codes[name] {
					t.Fatalf("compression type %d, want %d", ct, codes[name])
				}
				if !strings.HasPrefix(string(r.Value), `{"gateway":"gw-test-01",`) {
					t.Fatalf("value %q", r.Value)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	ok := Options{Brokers: []string{"127.0.0.1:1"}, Gateway: "gw"}
	for name, edit := range map[string]func(*Options){
		"unknown compression": func(o *Options) { o.Compression = "brotli" },
		"no brokers":          func(o *Options) { o.Brokers = nil },
		"no gateway":          func(o *Options) { o.Gateway = "" },
		"backoff max < min":   func(o *Options) { o.BackoffMin, o.BackoffMax = time.Second, time.Millisecond },
		"negative batch":      func(o *Options) { o.BatchSize = -1 },
	} {
		o := ok
		edit(&o)
		if _, err := New(o, newMemSource()); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
	if _, err := New(ok, nil); err == nil {
		t.Error("New accepted a nil source")
	}
	u, err := New(ok, newMemSource())
	if err != nil {
		t.Fatal(err)
	}
	if o := u.opts; o.BatchSize != 1000 || o.Linger != 200*time.Millisecond || o.WriteTimeout != 10*time.Second ||
		o.BackoffMin != 100*time.Millisecond || o.BackoffMax != 10*time.Second || o.ReadingsTopic != "plant.readings" ||
		o.AlertsTopic != "plant.alerts" || o.EventsTopic != "plant.events" {
		t.Errorf("defaults: %+v", o)
	}
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	for n, want := range []time.Duration{1: 100 * ms, 2: 200 * ms, 3: 400 * ms, 4: 800 * ms, 5: time.Second, 60: time.Second} {
		if want == 0 {
			continue
		}
		if got := backoff(n, 100*ms, time.Second); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// A delivered batch's buffers carry the next batch; a batch with a failed
// attempt is never filled again (kafka-go may still be reading it).
func TestBatchReuse(t *testing.T) {
	u := &Uplink{spare: make(chan *batch, spareBatches), opts: Options{Gateway: "gw-test-01",
		ReadingsTopic: DefaultReadingsTopic, AlertsTopic: DefaultAlertsTopic, EventsTopic: DefaultEventsTopic}}
	recs := mixedRecords(1000, 5, 0)
	for i := range recs {
		recs[i].Seq = uint64(i + 1)
	}
	a := u.encode(recs)
	u.recycle(a)
	b := u.encode(recs[990:])
	if b != a || len(b.msgs) != 10 || b.first != 991 || b.last != 1000 {
		t.Fatalf("not reused, or wrong: reused %v, %d msgs, seqs %d..%d", b == a, len(b.msgs), b.first, b.last)
	}
	for i, m := range b.msgs {
		r := recs[990+i]
		if string(m.Value) != string(r.AppendJSON(nil, "gw-test-01")) || string(m.Key) != r.Key() {
			t.Fatalf("msg %d: %s %s", i, m.Key, m.Value)
		}
	}
	if n := b.perTopic[0] + b.perTopic[1] + b.perTopic[2]; n != 10 {
		t.Errorf("per topic %v", b.perTopic)
	}
	b.failed = true
	u.recycle(b)
	if c := u.encode(recs[:1]); c == b {
		t.Error("a batch with a failed attempt was filled again")
	}
}
