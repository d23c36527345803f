package buffer

import (
	"encoding/binary"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegw/edgegw/gateway/reading"
)

// Redelivery marks (DESIGN.md, delivery semantics). A source that delivers
// a message again until it is acknowledged (MQTT QoS 1) is acknowledged only
// after the spool committed the message's readings; a crash between the
// commit and the acknowledgement brings the message back, with the same
// packet id and the DUP flag set. So the commit that holds a message's last
// reading also records its Mark, and the mark is forgotten once the source
// was acknowledged: a redelivery whose mark is still there was committed
// already, and is acknowledged without being stored twice.
//
// Marks are keyed by packet id. A broker reuses an id only after the
// message that had it was acknowledged, so a new message (DUP not set) with
// an id that has a mark means that mark is stale (left by a crash after the
// acknowledgement but before the commit that forgot it): the source forgets
// it before storing the new message.

// Mark identifies one message of a source that redelivers: its packet id
// and a hash of its topic and payload.
type Mark struct {
	ID   uint16
	Hash uint64
}

var marksBucket = []byte("marks")

// markOp is a change of the marks, applied in order with a batch's commit.
type markOp struct {
	id   uint16
	hash uint64
	del  bool
}

// AppendMarked is Append that also records m in the same transaction as
// rec, for the last reading made from a message: once done is called, a
// redelivery of that message is Redelivered.
func (s *Spool) AppendMarked(rec reading.Record, done func(), m Mark) (uint64, error) {
	return s.appendRecord(rec, done, &m)
}

// Redelivered reports whether a message with m's packet id and hash was
// committed and not forgotten since.
func (s *Spool) Redelivered(m Mark) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.marks[m.ID]
	return ok && h == m.Hash
}

// forgetDelay is how long a mark outlives the acknowledgement of its
// message: the acknowledgement may still be on its way to the broker (in
// the client's queue, in a socket buffer) when the gateway is killed, and
// the broker then delivers the message again. Seen: 17 messages stored
// twice in 24 kills under load when marks went at once. A broker gives the
// id to another message only after the acknowledgement arrived, and then
// Reused drops the mark at once.
const forgetDelay = 2 * time.Second

// forget is an acknowledged message's mark, dropped at `at`.
type forget struct {
	id   uint16
	hash uint64
	at   time.Time
}

// Forget drops the mark of packet id forgetDelay from now, in memory and on
// disk with the commit after that (no commit of its own: a crash before it
// leaves a stale mark, which a later message with the id replaces).
func (s *Spool) Forget(id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.marks[id]
	if !ok {
		return
	}
	s.forgets = append(s.forgets, forget{id: id, hash: h, at: s.clock.Now().Add(forgetDelay)})
	if len(s.forgets) == 1 {
		s.wake()
	}
}

// Reused drops the mark of packet id at once: the broker gave the id to a
// new message, so the message that had it was acknowledged.
func (s *Spool) Reused(id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.marks[id]; !ok {
		return
	}
	delete(s.marks, id)
	s.pend.marks = append(s.pend.marks, markOp{id: id, del: true})
}

// expireForgetsLocked drops the marks whose delay has passed (all of them
// when the spool stops: the broker has the acknowledgements of a clean
// stop) and returns when the next one is due (zero: none waits). s.mu must
// be held.
func (s *Spool) expireForgetsLocked(now time.Time, all bool) time.Time {
	n := 0
	for ; n < len(s.forgets); n++ {
		f := s.forgets[n]
		if !all && f.at.After(now) {
			break
		}
		if h, ok := s.marks[f.id]; ok && h == f.hash { // not replaced since
			delete(s.marks, f.id)
			s.pend.marks = append(s.pend.marks, markOp{id: f.id, del: true})
		}
	}
	s.forgets = s.forgets[:copy(s.forgets, s.forgets[n:])]
	if len(s.forgets) == 0 {
		return time.Time{}
	}
	return s.forgets[0].at
}

// Marks is how many messages are marked: committed and not yet known to
// be acknowledged.
func (s *Spool) Marks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.marks)
}

// writeMarks applies ops in tx.
func writeMarks(tx *bbolt.Tx, ops []markOp) error {
	if len(ops) == 0 {
		return nil
	}
	bk, err := tx.CreateBucketIfNotExists(marksBucket)
	if err != nil {
		return err
	}
	// bbolt keeps a value's slice until the commit (keys it copies): each
	// value needs bytes of its own.
	vals := make([]byte, 8*len(ops))
	var k [2]byte
	for i, op := range ops {
		binary.BigEndian.PutUint16(k[:], op.id)
		if op.del {
			err = bk.Delete(k[:])
		} else {
			v := vals[8*i : 8*i+8]
			binary.BigEndian.PutUint64(v, op.hash)
			err = bk.Put(k[:], v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// loadMarks reads the committed marks.
func loadMarks(db *bbolt.DB) (map[uint16]uint64, error) {
	marks := map[uint16]uint64{}
	err := db.View(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(marksBucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			if len(k) == 2 && len(v) == 8 {
				marks[binary.BigEndian.Uint16(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return marks, err
}
