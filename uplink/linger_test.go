package uplink

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestLingerOnlyWhenInputIsSlow: the rest of a group commit after full
// batches goes at once; a batch that is not full after one that was not
// either waits the linger for more, and takes what came meanwhile.
func TestLingerOnlyWhenInputIsSlow(t *testing.T) {
	const batch = 100
	// One partition per topic and readings only: one produce per batch.
	c := newCluster(t, kfake.SeedTopics(1, allTopics...))
	var produces atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		produces.Add(1)
		return nil, nil, false
	})
	src := newMemSource()
	fc := clockwork.NewFakeClock()
	env := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
		o.Clock, o.BatchSize, o.Linger = fc, batch, time.Hour
	})

	// 250 at once, as one commit brings them: 100, 100, then the 50 left
	// without waiting for the clock, which never moves here.
	last := src.Append(readingsOnly(250)...)
	env.waitDrained(t, 10*time.Second, last)
	if n := produces.Load(); n != 3 {
		t.Errorf("250 records in %d produces, want 3", n)
	}

	// Then a trickle: 10 records wait the linger, and 5 more that come
	// meanwhile go with them.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src.Append(readingsOnly(10)...)
	if err := fc.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("10 records after a partial batch did not linger: %v", err)
	}
	if s := env.u.Sent(); s != last {
		t.Fatalf("sent through %d while lingering, want %d", s, last)
	}
	last = src.Append(readingsOnly(5)...)
	fc.Advance(time.Hour)
	env.waitDrained(t, 10*time.Second, last)
	if n := produces.Load(); n != 4 {
		t.Errorf("the 15 records of the linger went in %d produces, want 1", n-3)
	}
}
