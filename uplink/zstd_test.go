package uplink

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go/compress"
	kzstd "github.com/segmentio/kafka-go/compress/zstd"
)

// batchOf is n reading records as JSON, like a produce request's values.
func batchOf(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"gateway":"gw-line1-01","sensor":"s%04d","ts":"2026-11-28T03:%02d:%02d.%03dZ","value":%.3f,"unit":"C","quality":"good","seq":%d}`,
			r.IntN(1000), i/3600%60, i/60%60, i%1000, r.Float64()*100, i)
	}
	return b.Bytes()
}

// Batches compressed by zstdCodec, several at once, read back whole with
// kafka-go's own decoder and with a plain zstd decoder; batches larger
// than the window too.
func TestZstdCodecRoundTrip(t *testing.T) {
	c := &zstdCodec{Codec: new(kzstd.Codec)}
	plain, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	sizes := []int{0, 1, 10, 1000, 8000} // 8,000 records: about 1.1 MB, over the window
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, n := range sizes {
				in := batchOf(n, uint64(g*10+i))
				var z bytes.Buffer
				w := c.NewWriter(&z)
				if _, err := w.Write(in); err != nil {
					errs <- err
					return
				}
				if err := w.Close(); err != nil {
					errs <- err
					return
				}
				r := c.NewReader(bytes.NewReader(z.Bytes()))
				out, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(out, in) {
					errs <- fmt.Errorf("%d records: kafka-go's reader gave %d bytes of %d, %v", n, len(out), len(in), err)
					return
				}
				if out, err := plain.DecodeAll(z.Bytes(), nil); err != nil || !bytes.Equal(out, in) {
					errs <- fmt.Errorf("%d records: zstd decoder: %v", n, err)
					return
				}
				if n >= 1000 && z.Len()*3 > len(in) {
					errs <- fmt.Errorf("%d records: %d bytes compressed to %d", n, len(in), z.Len())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(c.free) == 0 || len(c.free) > zstdEncoders {
		t.Errorf("%d encoders kept, want 1..%d", len(c.free), zstdEncoders)
	}
}

// BenchmarkZstdBatch compresses a 1,000-record batch with kafka-go's codec
// and with ours, with a garbage collection every 20 batches, as the
// gateway's other allocations bring about at 10,000 readings/s: bytes
// allocated per batch (garbage, and between collections resident memory),
// and the heap one encoder keeps.
func BenchmarkZstdBatch(b *testing.B) {
	in := batchOf(1000, 1)
	for _, c := range []struct {
		name  string
		codec func() compress.Codec
	}{
		{"kafka-go", func() compress.Codec { return new(kzstd.Codec) }},
		{"edgegw", func() compress.Codec { return &zstdCodec{Codec: new(kzstd.Codec)} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			codec := c.codec()
			var z bytes.Buffer
			w := codec.NewWriter(&z)
			_, _ = w.Write(in)
			_ = w.Close()
			runtime.ReadMemStats(&after)
			kept := float64(after.HeapAlloc - before.HeapAlloc)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			n := 0
			for b.Loop() {
				if n++; n%20 == 0 {
					b.StopTimer()
					runtime.GC()
					b.StartTimer()
				}
				z.Reset()
				w := codec.NewWriter(&z)
				_, _ = w.Write(in)
				_ = w.Close()
			}
			b.ReportMetric(float64(len(in))/float64(z.Len()), "ratio")
			b.ReportMetric(kept, "B/encoder")
		})
	}
}
