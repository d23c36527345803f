package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// On disk, the records bucket holds chunks: the key is the 8-byte
// big-endian seq of the chunk's first record, the value the records of a run
// of consecutive seqs, each as a uvarint length and its reading.AppendBinary
// form. Seqs dropped before they were committed (a full disk: see
// batch.dropPending) are a length of 0 followed by a uvarint count, so
// the seqs stay contiguous. A group commit writes its records as chunks of about chunkTarget
// bytes. One bbolt Put per record costs 1.5-3.5 µs (a cursor seek from the
// root, a key copy, node growth), which caps a spool at ~300k records/s; a
// Put per chunk leaves little more than a copy per record.
var (
	recordsBucket = []byte("records")
	metaBucket    = []byte("meta")
	stateKey      = []byte("state")
)

// chunkTarget stays within four bbolt pages, so that a chunk is a small
// contiguous allocation and a partly acknowledged chunk wastes little.
const chunkTarget = 16 << 10

// The state value: a magic, the next seq, the acknowledged-through
// watermark and the byte total, rewritten in every transaction that changes
// any of them, so that Open knows them without scanning. The records held
// are exactly the seqs acked+1 .. next-1: appends take seqs in order and
// acknowledgements and drops only ever move acked forward. A chunk is
// deleted once acked reaches its last record.
const (
	stateMagic = "EGS2"
	stateSize  = 4 + 8 + 8 + 8
	keyLen     = 8
)

// state is the committed content of the spool.
type state struct {
	last     uint64 // highest seq ever committed; the next seq is last+1
	acked    uint64 // every seq <= acked is gone (acknowledged or dropped)
	bytes    int64  // sum over the records held of keyLen + encoded size
	holes    uint64 // seqs above acked that were dropped before their commit (runs)
	oldestTS time.Time
	thinFrom uint64 // no chunk before the one with this key holds a reading (thinReadings); not stored
}

// seqs is how many seqs the records bucket spans: records and holes.
func (st *state) seqs() uint64 { return st.last - st.acked }

func (st *state) records() int64 { return int64(st.seqs() - min(st.holes, st.seqs())) }

// first is the seq of the oldest record held, 0 when empty.
func (st *state) first() uint64 {
	if st.last == st.acked {
		return 0
	}
	return st.acked + 1
}

func encodeState(st *state) []byte {
	b := make([]byte, 0, stateSize)
	b = append(b, stateMagic...)
	b = binary.BigEndian.AppendUint64(b, st.last+1)
	b = binary.BigEndian.AppendUint64(b, st.acked)
	return binary.BigEndian.AppendUint64(b, uint64(st.bytes))
}

// holesKey holds state.holes while it is not zero: a key of its own, so
// that the state value keeps the form older versions read.
var holesKey = []byte("holes")

func putState(tx *bbolt.Tx, st *state) error {
	meta := tx.Bucket(metaBucket)
	if err := meta.Put(stateKey, encodeState(st)); err != nil {
		return err
	}
	if st.holes == 0 {
		return meta.Delete(holesKey) // nothing is written when it is absent
	}
	return meta.Put(holesKey, binary.BigEndian.AppendUint64(nil, st.holes))
}

func decodeState(v []byte) (state, error) {
	if len(v) != stateSize || string(v[:4]) != stateMagic {
		return state{}, corrupt("garbled metadata %x", v)
	}
	next := binary.BigEndian.Uint64(v[4:])
	st := state{acked: binary.BigEndian.Uint64(v[12:]), bytes: int64(binary.BigEndian.Uint64(v[20:]))}
	if next == 0 || st.acked >= next || st.bytes < 0 {
		return state{}, corrupt("impossible metadata next=%d acked=%d bytes=%d", next, st.acked, st.bytes)
	}
	st.last = next - 1
	return st, nil
}

func seqKey(dst []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(dst, seq) }

// walkChunk calls fn for each seq of the chunk v whose first seq is first,
// until fn returns false: with the record, or with nil for a seq that was
// dropped before it was committed (a run). It returns errChunk if the
// lengths do not add up (after calling fn for the seqs before the damage).
func walkChunk(first uint64, v []byte, fn func(seq uint64, rec []byte) bool) error {
	for seq := first; len(v) > 0; {
		n, k := binary.Uvarint(v)
		if k <= 0 || n > uint64(len(v)-k) {
			return errChunk
		}
		if n == 0 { // a run: 0, then how many seqs were dropped
			c, j := binary.Uvarint(v[k:])
			if j <= 0 || c == 0 {
				return errChunk
			}
			v = v[k+j:]
			for end := seq + c; seq < end; seq++ {
				if !fn(seq, nil) {
					return nil
				}
			}
			continue
		}
		rec := v[k : k+int(n)]
		v = v[k+int(n):]
		if !fn(seq, rec) {
			return nil
		}
		seq++
	}
	return nil
}

var errChunk = errors.New("garbled chunk")

// corruptError marks a spool file that must be moved aside.
type corruptError struct{ why string }

func (e *corruptError) Error() string { return "corrupt spool file: " + e.why }

func corrupt(format string, args ...any) error {
	return &corruptError{why: fmt.Sprintf(format, args...)}
}

// isCorrupt tells corruption apart from trouble that moving the file aside
// would not cure and might make worse: a file locked by a running gateway, a
// permission problem, a full or read-only disk.
func isCorrupt(err error) bool {
	var ce *corruptError
	if errors.As(err, &ce) {
		return true
	}
	for _, e := range []error{berrors.ErrTimeout, fs.ErrPermission, fs.ErrNotExist,
		syscall.ENOSPC, syscall.EROFS, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// guard turns a panic, and (through SetPanicOnFault) a fault on bbolt's
// memory map such as SIGBUS past the end of a truncated file, into a
// corruptError, so that a bad page costs a recovery instead of the process.
// Use as: defer guard(&err)().
func guard(err *error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			*err = corrupt("panic: %v", r)
		}
	}
}

// lockTimeout bounds the wait for the file lock, held by another gateway
// process on the same file; a variable so that the test need not wait long.
var lockTimeout = 5 * time.Second

// openBolt opens the file with the options the spool relies on.
//
// NoFreelistSync is deliberately off: with it, bbolt rebuilds the freelist
// at Open by walking every page in a goroutine of its own, where a corrupt
// page crashes the process beyond any recover (a crash loop), and Open costs
// a read of the whole file. PreLoadFreelist reads the freelist here, under
// guard, rather than in the first commit.
func openBolt(path string) (db *bbolt.DB, err error) {
	defer guard(&err)()
	return bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         lockTimeout,
		FreelistType:    bbolt.FreelistMapType,
		PreLoadFreelist: true,
	})
}

// loadState reads and checks the spool's metadata. fresh is true for a file
// that holds no spool yet (new, or created by a crash before the first
// commit).
func loadState(db *bbolt.DB) (st state, fresh bool, err error) {
	defer guard(&err)()
	info, err := os.Stat(db.Path())
	if err != nil {
		return st, false, err
	}
	err = db.View(func(tx *bbolt.Tx) error {
		if info.Size() < tx.Size() {
			return corrupt("file is %d bytes, its metadata says %d", info.Size(), tx.Size())
		}
		meta, recs := tx.Bucket(metaBucket), tx.Bucket(recordsBucket)
		if meta == nil {
			if recs == nil || firstKey(recs) == nil {
				fresh = true
				return nil
			}
			return corrupt("records without metadata")
		}
		var err error
		if st, err = decodeState(meta.Get(stateKey)); err != nil {
			return err
		}
		if v := meta.Get(holesKey); len(v) == 8 {
			st.holes = min(binary.BigEndian.Uint64(v), st.seqs())
		}
		if recs == nil {
			return corrupt("records bucket missing")
		}
		c := recs.Cursor()
		fk, _ := c.First()
		lk, _ := c.Last()
		if (fk == nil) != (st.seqs() == 0) {
			return corrupt("metadata says %d records, the bucket disagrees", st.seqs())
		}
		if fk == nil {
			return nil
		}
		if len(fk) != keyLen || len(lk) != keyLen ||
			binary.BigEndian.Uint64(fk) > st.acked+1 || binary.BigEndian.Uint64(lk) > st.last {
			return corrupt("chunks %x..%x do not hold seqs %d..%d", fk, lk, st.acked+1, st.last)
		}
		if end := lastSeq(c); end != st.last {
			return corrupt("the last chunk ends at seq %d, metadata says %d", end, st.last)
		}
		refreshOldest(recs, &st)
		return nil
	})
	return st, fresh, err
}

// lastSeq returns the seq of the last record of the last chunk, or 0 if
// that chunk does not parse.
func lastSeq(c *bbolt.Cursor) uint64 {
	k, v := c.Last()
	var last uint64
	if walkChunk(binary.BigEndian.Uint64(k), v, func(seq uint64, _ []byte) bool { last = seq; return true }) != nil {
		return 0
	}
	return last
}

func firstKey(b *bbolt.Bucket) []byte {
	k, _ := b.Cursor().First()
	return k
}

// initState creates the buckets of a fresh spool whose first seq is next.
func initState(db *bbolt.DB, next uint64) (st state, err error) {
	defer guard(&err)()
	st = state{last: next - 1, acked: next - 1}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{recordsBucket, metaBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return putState(tx, &st)
	})
	return st, err
}

// moveAside renames a corrupt file to <path>.corrupt-<UTC time>, adding a
// counter in the rare case that two recoveries fall in the same second.
func moveAside(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	dst := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, dst); err != nil {
		return "", err
	}
	return dst, syncDir(filepath.Dir(path))
}

// recordTime is the time of a record's reading, alert transition or event,
// or zero if the value does not decode.
func recordTime(v []byte) time.Time {
	rec, err := reading.DecodeRecord(v)
	if err != nil {
		return time.Time{}
	}
	switch rec.Kind {
	case reading.KindAlert:
		return rec.Alert.TS
	case reading.KindEvent:
		if !rec.Event.End.IsZero() {
			return rec.Event.End
		}
		return rec.Event.Start
	}
	return rec.Reading.TS
}

// refreshOldest sets st.oldestTS from the oldest record held.
func refreshOldest(b *bbolt.Bucket, st *state) {
	st.oldestTS = time.Time{}
	if st.records() == 0 {
		return
	}
	k, v := b.Cursor().First()
	if len(k) != keyLen {
		return
	}
	_ = walkChunk(binary.BigEndian.Uint64(k), v, func(seq uint64, rec []byte) bool {
		if seq <= st.acked || rec == nil {
			return true
		}
		st.oldestTS = recordTime(rec)
		return false
	})
}

// dropFront removes records from the front of the spool, oldest first, up
// to the first one for which keep is true (called with nil for a seq
// dropped before its commit, and before each chunk with nil for the first
// seq held), deleting each chunk once all its records are gone. It returns
// how many records it removed and how many of those were in a chunk too
// garbled to parse.
func dropFront(b *bbolt.Bucket, st *state, keep func(seq uint64, rec []byte) bool) (n, garbled int, err error) {
	c := b.Cursor()
	for st.seqs() > 0 && !keep(st.acked+1, nil) {
		k, v := c.First()
		if len(k) != keyLen {
			return n, garbled, corrupt("chunk key %x", k)
		}
		stopped := false
		werr := walkChunk(binary.BigEndian.Uint64(k), v, func(seq uint64, rec []byte) bool {
			if seq <= st.acked {
				return true
			}
			if keep(seq, rec) {
				stopped = true
				return false
			}
			st.acked = seq
			if rec == nil { // a dropped seq, counted when it was dropped
				st.holes -= min(st.holes, 1)
			} else {
				st.bytes -= int64(keyLen + len(rec))
				n++
			}
			return true
		})
		if stopped {
			break
		}
		if werr != nil {
			// The record boundaries are lost, but the next chunk's key still
			// says where this one ends. The byte total loses the length
			// prefixes' worth of accuracy, about a byte a record.
			last := st.last
			if nk, _ := c.Next(); len(nk) == keyLen {
				last = binary.BigEndian.Uint64(nk) - 1
			}
			lost := int64(last - st.acked)
			st.bytes -= int64(len(v)) + lost*(keyLen-1)
			n += int(lost)
			garbled += int(lost)
			st.acked = last
			c.First()
		}
		if err := c.Delete(); err != nil {
			return n, garbled, err
		}
	}
	if st.seqs() == 0 {
		st.bytes, st.holes = 0, 0 // no drift survives an empty spool
	}
	st.holes = min(st.holes, st.seqs())
	refreshOldest(b, st)
	return n, garbled, nil
}

// spared tells the records drop_oldest keeps while there are readings to
// drop instead: alert transitions and downtime events, a few bytes each and
// the line's history that Kafka's consumers read.
func spared(rec []byte) bool {
	k := reading.EncodedKind(rec)
	return k == reading.KindAlert || k == reading.KindEvent
}

// dropOldest is drop_oldest: it removes the oldest readings until the
// records held fit max. Readings go from the front of the spool; once an
// alert transition or downtime event is at the front, the readings behind
// it are dropped where they are, as placeholders (runs), so that the seqs
// stay contiguous. Only when nothing but those is left do they go too,
// oldest first. It returns how many records it removed and how many of
// those were in a chunk too garbled to parse.
func dropOldest(b *bbolt.Bucket, st *state, max int64) (n, garbled int, err error) {
	fits := func() bool { return st.bytes <= max }
	n, garbled, err = dropFront(b, st, func(_ uint64, rec []byte) bool { return fits() || (rec != nil && spared(rec)) })
	if err != nil || fits() {
		return n, garbled, err
	}
	thinned, err := thinReadings(b, st, fits)
	n += thinned
	if err != nil || fits() {
		return n, garbled, err
	}
	more, g, err := dropFront(b, st, func(uint64, []byte) bool { return fits() })
	return n + more, garbled + g, err
}

// thinReadings replaces the oldest readings held with runs until fits is
// true or none is left, keeping every other record where it is. A chunk
// left with nothing but runs joins the chunk before it, as does a
// rewritten chunk that fits in the one before within chunkTarget, so that
// a long outage's spool does not turn into a trail of tiny chunks that
// every commit walks; and the next call starts where this one stopped
// (st.thinFrom), not at the front. A garbled chunk is left as it is.
func thinReadings(b *bbolt.Bucket, st *state, fits func() bool) (n int, err error) {
	type chunk struct {
		key   uint64
		buf   []byte // entries, but for a run at the end
		tail  uint64 // seqs of the run at the end, not yet in buf
		dirty bool   // buf differs from the stored value
	}
	put := func(c *chunk) error {
		if c == nil || !c.dirty {
			return nil
		}
		v := c.buf
		if c.tail > 0 {
			v = appendRun(v, c.tail)
		}
		return b.Put(seqKey(nil, c.key), v)
	}
	var prev *chunk
	defer func() {
		if prev != nil && err == nil {
			st.thinFrom = prev.key // every reading before it was dropped
		}
	}()
	for from := st.thinFrom; !fits(); {
		// A fresh cursor each time: Put and Delete invalidate one.
		k, v := b.Cursor().Seek(seqKey(nil, from))
		if k == nil {
			break
		}
		if len(k) != keyLen {
			return n, corrupt("chunk key %x", k)
		}
		key := binary.BigEndian.Uint64(k)
		from = key + 1
		cur := &chunk{key: key, buf: make([]byte, 0, len(v))}
		kept := false
		werr := walkChunk(key, v, func(seq uint64, rec []byte) bool {
			switch {
			case rec == nil || seq <= st.acked: // a run, or acknowledged already
				cur.tail++
			case !spared(rec) && !fits():
				cur.tail++
				cur.dirty = true
				st.bytes -= int64(keyLen + len(rec))
				st.holes++
				n++
			default:
				if cur.tail > 0 {
					cur.buf = appendRun(cur.buf, cur.tail)
					cur.tail = 0
				}
				cur.buf = binary.AppendUvarint(cur.buf, uint64(len(rec)))
				cur.buf = append(cur.buf, rec...)
				kept = true
			}
			return true
		})
		switch {
		case werr != nil:
			if err := put(prev); err != nil {
				return n, err
			}
			prev = nil
			continue
		case prev != nil && cur.dirty && (!kept || len(prev.buf)+len(cur.buf) < chunkTarget):
			if len(cur.buf) > 0 {
				if prev.tail > 0 {
					prev.buf = appendRun(prev.buf, prev.tail)
				}
				prev.buf = append(prev.buf, cur.buf...)
				prev.tail = 0
			}
			prev.tail += cur.tail
			prev.dirty = true
			if err := b.Delete(k); err != nil {
				return n, err
			}
			continue
		}
		if err := put(prev); err != nil {
			return n, err
		}
		prev = cur
	}
	return n, put(prev)
}
