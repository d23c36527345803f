package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"go.etcd.io/bbolt"
)

// These tests damage a spool that Open still accepts (it checks the
// metadata, the freelist and both ends of the records, not every page: that
// would read the whole file at each start) and check that the damage costs
// only the records it hit.

// damagedSpool commits n sample records and hands their chunks to damage.
func damagedSpool(t *testing.T, n int, damage func(b *bbolt.Bucket, keys [][]byte) error) *harness {
	t.Helper()
	path := testPath(t)
	h := start(t, path, nil)
	h.appendN(0, n)
	h.flush()
	h.stop()
	withBolt(t, path, func(tx *bbolt.Tx) error {
		b := tx.Bucket(recordsBucket)
		var keys [][]byte
		_ = b.ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil })
		return damage(b, keys)
	})
	h = start(t, path, nil)
	if h.s.Recovered() != "" {
		t.Fatalf("Open moved the file aside: %s", h.s.Recovered())
	}
	return h
}

// chunkRange is the seqs the chunk keys[i] holds.
func chunkRange(keys [][]byte, i int, last uint64) (uint64, uint64) {
	first := binary.BigEndian.Uint64(keys[i])
	if i+1 < len(keys) {
		return first, binary.BigEndian.Uint64(keys[i+1]) - 1
	}
	return first, last
}

func TestGarbledChunkIsSkipped(t *testing.T) {
	const n = 3000
	var lo, hi uint64
	h := damagedSpool(t, n, func(b *bbolt.Bucket, keys [][]byte) error {
		if len(keys) < 3 {
			t.Fatalf("only %d chunks", len(keys))
		}
		mid := len(keys) / 2
		lo, hi = chunkRange(keys, mid, n)
		junk := make([]byte, len(b.Get(keys[mid])))
		for i := range junk {
			junk[i] = 0xff // an endless uvarint: no record boundary survives
		}
		return b.Put(keys[mid], junk)
	})
	recs := h.readAll()
	if want := n - int(hi-lo+1); len(recs) != want {
		t.Fatalf("read %d records, want %d (all but seqs %d..%d)", len(recs), want, lo, hi)
	}
	for _, r := range recs {
		if r.Seq >= lo && r.Seq <= hi || !sameRecord(r, sample(int(r.Seq-1)), r.Seq) {
			t.Fatalf("record %d read wrongly (garbled chunk %d..%d)", r.Seq, lo, hi)
		}
	}
	if err := h.s.AckThrough(n); err != nil {
		t.Fatal(err)
	}
	if st := h.s.Stats(); st.Records != 0 || st.Bytes != 0 {
		t.Errorf("after acknowledging everything: %+v, want empty", st)
	}
	if got, want := dropped(h, metrics.DropMalformed), float64(hi-lo+1); got != want {
		t.Errorf("dropped{malformed} = %v, want %v", got, want)
	}
}

func TestUndecodableRecordIsSkipped(t *testing.T) {
	const n, badSeq = 100, 42
	h := damagedSpool(t, n, func(b *bbolt.Bucket, keys [][]byte) error {
		first := binary.BigEndian.Uint64(keys[0])
		var out []byte
		err := walkChunk(first, b.Get(keys[0]), func(seq uint64, rec []byte) bool {
			out = binary.AppendUvarint(out, uint64(len(rec)))
			start := len(out)
			out = append(out, rec...)
			if seq == badSeq {
				out[start] = 0x7f // an unknown format version
			}
			return true
		})
		if err != nil || len(keys) != 1 {
			t.Fatalf("%d chunks, walk: %v", len(keys), err)
		}
		return b.Put(keys[0], out)
	})
	for range 2 { // read twice, as the uplink does after a Kafka failure: counted once
		recs := h.readAll()
		if len(recs) != n-1 {
			t.Fatalf("read %d records, want %d", len(recs), n-1)
		}
		for _, r := range recs {
			if r.Seq == badSeq {
				t.Fatal("the undecodable record was returned")
			}
		}
	}
	if got := dropped(h, metrics.DropMalformed); got != 1 {
		t.Errorf("dropped{malformed} = %v, want 1", got)
	}
}

func TestUnreadableFrontIsDeleted(t *testing.T) {
	// Nothing readable left: WaitCommitted must not keep saying there is,
	// or the uplink would spin on empty batches.
	h := damagedSpool(t, 10, func(b *bbolt.Bucket, keys [][]byte) error {
		v := append([]byte(nil), b.Get(keys[0])...)
		err := walkChunk(binary.BigEndian.Uint64(keys[0]), v, func(_ uint64, rec []byte) bool {
			rec[0] = 0x7f // rec aliases v: every record gets an unknown format version
			return true
		})
		if err != nil || len(keys) != 1 {
			t.Fatalf("%d chunks, walk: %v", len(keys), err)
		}
		return b.Put(keys[0], v)
	})
	if recs, err := h.s.ReadBatch(0, 100); err != nil || len(recs) != 0 {
		t.Fatalf("ReadBatch = %d records, %v; want none, no error", len(recs), err)
	}
	if st := h.s.Stats(); st.Records != 0 || st.LastSeq != 10 {
		t.Errorf("Stats = %+v, want empty through seq 10", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.s.WaitCommitted(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitCommitted = %v, want context.Canceled", err)
	}
	if got := dropped(h, metrics.DropMalformed); got != 10 {
		t.Errorf("dropped{malformed} = %v, want 10", got)
	}
}

func TestCorruptPageAtRuntimeIsAnError(t *testing.T) {
	path := testPath(t)
	h := start(t, path, nil)
	h.appendN(0, 3000)
	h.flush()
	h.stop()
	leaves := chunkLeaves(t, path)
	if len(leaves) < 3 {
		t.Fatalf("only %d leaf pages", len(leaves))
	}
	overwrite(t, path, leaves[len(leaves)/2]+16, leaves[len(leaves)/2]+32) // its first element header

	h = start(t, path, nil)
	if h.s.Recovered() != "" {
		t.Fatalf("Open moved the file aside: %s", h.s.Recovered())
	}
	_, err := h.s.ReadBatch(0, 1<<30)
	var ce *corruptError
	if !errors.As(err, &ce) {
		t.Fatalf("ReadBatch over a garbled page = %v, want a corruption error", err)
	}
	t.Logf("ReadBatch: %v", err)
}

// chunkLeaves returns the file offsets of the bbolt leaf pages holding
// chunks, walking the 4 KiB pages by their headers (id u64, flags u16,
// count u16, overflow u32; leaf = 0x02) and the first element's key size.
func chunkLeaves(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := 2 * 4096; off+4096 <= len(b); {
		flags, count := binary.LittleEndian.Uint16(b[off+8:]), binary.LittleEndian.Uint16(b[off+10:])
		if flags == 0x02 && count > 0 && binary.LittleEndian.Uint32(b[off+24:]) == keyLen {
			offs = append(offs, int64(off))
		}
		off += 4096 * (1 + int(binary.LittleEndian.Uint32(b[off+12:])))
	}
	return offs
}

// drop_oldest over a garbled chunk, with alert transitions and events
// (two thirds of sample's records) alone over the bound: thinning leaves
// the garbled chunk as it is and drops every reading, the newest too; then
// the oldest records go from the front, the garbled chunk with them. The
// bound holds, nothing fails, and what is left is the newest alerts and
// events.
func TestDropOldestOverGarbledChunk(t *testing.T) {
	const n, maxBytes = 3000, 4 << 10
	h := damagedSpool(t, n, func(b *bbolt.Bucket, keys [][]byte) error {
		mid := len(keys) / 2
		junk := make([]byte, len(b.Get(keys[mid])))
		for i := range junk {
			junk[i] = 0xff
		}
		return b.Put(keys[mid], junk)
	})
	h.stop()
	h = start(t, h.path, func(o *Options) { o.MaxBytes = maxBytes })
	for i := range 200 {
		if _, err := h.s.Append(sampleReading(n+i), nil); err != nil {
			t.Fatal(err)
		}
	}
	h.flush()
	recs := h.readAll()
	st := h.s.Stats()
	if st.Bytes > maxBytes || st.Records != int64(len(recs)) || len(recs) == 0 {
		t.Fatalf("Stats %+v with %d records read, want at most %d bytes", st, len(recs), maxBytes)
	}
	for i, r := range recs {
		if r.Kind == reading.KindReading || !sameRecord(r, sample(int(r.Seq-1)), r.Seq) {
			t.Fatalf("kept record %d (seq %d) is a reading or not the one appended with its seq", i, r.Seq)
		}
	}
	if last := recs[len(recs)-1].Seq; last != n {
		t.Errorf("newest kept record %d, want %d, the newest event", last, n)
	}
	if dropped(h, metrics.DropMalformed) == 0 {
		t.Error("the garbled chunk's records were not counted as malformed")
	}
}
