package mqtt

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// fakeMessage is a received message without a broker, for the handler's
// benchmark.
type fakeMessage struct {
	topic   string
	payload []byte
	qos     byte
}

func (m *fakeMessage) Duplicate() bool   { return false }
func (m *fakeMessage) Qos() byte         { return m.qos }
func (m *fakeMessage) Retained() bool    { return false }
func (m *fakeMessage) Topic() string     { return m.topic }
func (m *fakeMessage) MessageID() uint16 { return 1 }
func (m *fakeMessage) Payload() []byte   { return m.payload }
func (m *fakeMessage) Ack()              {}

// ackingSink acknowledges at once, like a spool that has just committed.
type ackingSink struct{ n int }

func (s *ackingSink) Emit(_ context.Context, _ reading.Reading, ack func()) error {
	s.n++
	if ack != nil {
		ack()
	}
	return nil
}

// BenchmarkHandle is the driver's share of the per-message cost: routing,
// JSON path extraction for two sensors, ack bookkeeping.
func BenchmarkHandle(b *testing.B) {
	env := drivers.Env{Gateway: config.Gateway{ID: "gw"}, Clock: clockwork.NewRealClock(),
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()}
	d, err := newDriver(env, []config.Sensor{
		{ID: "temp", Topic: "line1/press", Value: "$.temp"},
		{ID: "bar", Topic: "line1/press", Value: "$.hyd.bar[1]"},
		{ID: "other", Topic: "line1/+/other"},
	}, testTiming)
	if err != nil {
		b.Fatal(err)
	}
	sink := &ackingSink{}
	d.ctx, d.sink = context.Background(), sink
	m := &fakeMessage{topic: "line1/press", payload: []byte(`{"temp": 61.5, "hyd": {"bar": [180.2, 181]}}`), qos: 1}
	b.ReportAllocs()
	for b.Loop() {
		d.handle(nil, m)
	}
	if sink.n == 0 {
		b.Fatal("no readings")
	}
}
