package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/edgegw/edgegw/gateway/reading"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ReadBatch returns up to limit committed records with seq > after, in
// ascending seq order, with Seq set. The records do not alias the file.
//
// A record that no longer decodes (bit rot) is skipped, logged, and counted
// once as edgegw_dropped_total{reason="malformed"}; once it reaches the
// front of the spool with nothing readable behind it, it is deleted, so
// that it cannot stall the uplink.
func (s *Spool) ReadBatch(after uint64, limit int) ([]reading.Record, error) {
	if limit <= 0 || after == math.MaxUint64 {
		return nil, nil
	}
	s.mu.Lock()
	held := s.st.records()
	if (held == 0 || after >= s.st.last) && s.memReadableLocked() {
		return s.readMemLocked(after, limit) // unlocks
	}
	s.mu.Unlock()
	if held == 0 {
		return nil, nil
	}
	recs := make([]reading.Record, 0, min(int64(limit), held))
	var (
		from, skippedThrough uint64
		atFront              bool
		bad                  []uint64
	)
	err := s.view(func(tx *bbolt.Tx) error {
		st, err := decodeState(tx.Bucket(metaBucket).Get(stateKey))
		if err != nil {
			return err
		}
		from = max(after+1, st.acked+1)
		atFront = from == st.acked+1
		if from > st.last {
			return nil
		}
		c := tx.Bucket(recordsBucket).Cursor()
		garbledChunk := false
		for k, v := seekChunk(c, from); k != nil && len(recs) < limit; k, v = c.Next() {
			first := binary.BigEndian.Uint64(k)
			if garbledChunk {
				skippedThrough = first - 1 // the rest of the previous chunk
			}
			werr := walkChunk(first, v, func(seq uint64, rec []byte) bool {
				if seq < from {
					return true
				}
				if rec == nil { // dropped before its commit, and counted then
					skippedThrough = seq
					return true
				}
				r, derr := reading.DecodeRecord(rec)
				if derr != nil {
					bad = append(bad, seq)
					skippedThrough = seq
					return true
				}
				r.Seq = seq
				recs = append(recs, r)
				return len(recs) < limit
			})
			garbledChunk = werr != nil
		}
		if garbledChunk && len(recs) < limit {
			skippedThrough = st.last
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("buffer: read after %d: %w", after, s.mapErr(err))
	}
	s.noteUndecodable(bad)
	if len(recs) == 0 && skippedThrough >= from && atFront {
		// Nothing readable is left before skippedThrough, and nothing
		// before it is waiting for Kafka: it can only be deleted.
		if err := s.AckThrough(skippedThrough); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// seekChunk positions c on the chunk holding seq (or the first chunk after
// it) and returns it.
func seekChunk(c *bbolt.Cursor, seq uint64) (k, v []byte) {
	var key [keyLen]byte
	k, v = c.Seek(seqKey(key[:0], seq))
	if k != nil && binary.BigEndian.Uint64(k) == seq {
		return k, v
	}
	// The chunk holding seq starts before it: the one before the seek.
	var pk, pv []byte
	if k == nil {
		pk, pv = c.Last()
	} else {
		pk, pv = c.Prev()
	}
	if pk != nil {
		return pk, pv
	}
	return c.Seek(seqKey(key[:0], seq))
}

// noteUndecodable logs and counts records that did not decode, each once:
// the uplink may read the same records again after a Kafka failure.
func (s *Spool) noteUndecodable(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	s.mu.Lock()
	n := 0
	for _, seq := range seqs {
		if seq > s.badThrough {
			s.badThrough = seq
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.malformed.Add(float64(n))
		s.log.Warn("skipping undecodable spool records", "first_seq", seqs[0], "count", n)
	}
}

// countGarbled counts records lost with a chunk whose lengths no longer
// add up; they are counted when deleted, since only then is their number
// known.
func (s *Spool) countGarbled(n int) {
	if n > 0 {
		s.malformed.Add(float64(n))
		s.log.Warn("deleted a garbled spool chunk", "records", n)
	}
}

// AckThrough deletes every record with seq <= seq: Kafka has them. Acks
// that go back or repeat are no-ops. In outage mode it drops them from
// memory, calls their done callbacks, and may switch back to memory
// (outage.go).
func (s *Spool) AckThrough(seq uint64) error {
	s.mu.Lock()
	s.ackedThrough = max(s.ackedThrough, seq)
	dones := s.mem.ackThrough(seq)
	if len(dones) > 0 {
		s.signalLocked() // Flush waits for this too
	}
	s.mu.Unlock()
	for _, d := range dones {
		d.fn()
	}
	err := s.ackFile(seq)
	if err == nil {
		s.maybeMemory()
	}
	return err
}

func (s *Spool) ackFile(seq uint64) error {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	st := s.snapshot()
	if st.seqs() == 0 || seq <= st.acked {
		return nil
	}
	var garbled int
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		if _, garbled, err = dropFront(tx.Bucket(recordsBucket), &st, func(k uint64, _ []byte) bool { return k > seq }); err != nil {
			return err
		}
		return putState(tx, &st)
	})
	if err != nil {
		return fmt.Errorf("buffer: ack through %d: %w", seq, s.mapErr(err))
	}
	s.countGarbled(garbled)
	s.publish(st, false)
	return nil
}

func (s *Spool) mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
