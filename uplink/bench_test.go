package uplink

import (
	"testing"
	"time"
)

// BenchmarkUplinkDrain measures draining a backlog (as after an outage) from
// an in-memory source into a 3-partition kfake broker with the default
// batch size and linger. DESIGN.md's target is >= 100,000 records/s.
func BenchmarkUplinkDrain(b *testing.B) {
	const n = 200_000
	recs := mixedRecords(n, 1000, 0)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		// A fresh broker each time: kfake's in-memory log grows by copying,
		// which would otherwise slow later iterations.
		c := newCluster(b)
		src := newMemSource()
		last := src.Append(recs...)
		start := time.Now()
		env := startUplink(b, c.ListenAddrs(), src, func(o *Options) {
			o.BatchSize, o.Linger = 0, 0 // the defaults: 1000, 200ms
		})
		env.waitDrained(b, time.Minute, last)
		total += time.Since(start)
		env.stop(b)
		c.Close()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
}
