package buffer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/jonboulle/clockwork"
	"go.etcd.io/bbolt"
)

// Open opens or creates the spool at opts.Path, recovering from a corrupt
// file by moving it aside (see Recovered). Call Run to start committing.
func Open(opts Options) (*Spool, error) {
	switch {
	case opts.Path == "":
		return nil, errors.New("buffer: Options.Path is empty")
	case opts.Metrics == nil:
		return nil, errors.New("buffer: Options.Metrics is nil")
	case opts.MaxBytes < 0:
		return nil, fmt.Errorf("buffer: MaxBytes %d is negative", opts.MaxBytes)
	case opts.CommitInterval < 0:
		return nil, fmt.Errorf("buffer: CommitInterval %s is negative", opts.CommitInterval)
	case opts.WhenFull != DropOldest && opts.WhenFull != RejectNew:
		return nil, fmt.Errorf("buffer: unknown %s", opts.WhenFull)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	if opts.CommitInterval == 0 {
		opts.CommitInterval = defaultCommitInterval
	}
	switch {
	case opts.Mode != Durable && opts.Mode != Outage:
		return nil, fmt.Errorf("buffer: unknown %s", opts.Mode)
	case opts.OutageAfter < 0:
		return nil, fmt.Errorf("buffer: OutageAfter %s is negative", opts.OutageAfter)
	case opts.OutageAfter == 0:
		opts.OutageAfter = defaultOutageAfter
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Spool{
		opts:         opts,
		seqPath:      opts.Path + ".seq",
		log:          opts.Logger,
		clock:        opts.Clock,
		m:            opts.Metrics,
		dropOld:      opts.Metrics.Dropped.WithLabelValues(metrics.DropSpoolFullOldest),
		dropRej:      opts.Metrics.Dropped.WithLabelValues(metrics.DropSpoolFullReject),
		dropDiskFull: opts.Metrics.Dropped.WithLabelValues(metrics.DropDiskFull),
		dropBacklog:  opts.Metrics.Dropped.WithLabelValues(metrics.DropSpoolBacklog),
		malformed:    opts.Metrics.Dropped.WithLabelValues(metrics.DropMalformed),
		kick:         make(chan struct{}, 1),
		runDone:      make(chan struct{}),
		pend:         &batch{},
		spare:        &batch{},
		changed:      make(chan struct{}),
	}
	resv, err := readSeqFile(s.seqPath)
	if err != nil {
		s.log.Warn("ignoring the spool's seq reservation", "path", s.seqPath, "err", err)
	}
	s.reserved = resv
	if s.st, err = s.openStore(resv); err != nil {
		return nil, err
	}
	if s.marks, err = loadMarks(s.db); err != nil {
		s.log.Warn("redelivery marks not read; a message redelivered after the crash may be stored twice", "err", err)
		s.marks = map[uint16]uint64{}
	}
	s.nextSeq = s.st.last + 1
	if s.memFlag, err = loadMemFlag(s.db); err != nil || s.memFlag {
		// Seqs above the last committed one may have been handed out in
		// memory (outage mode), all below the reservation.
		if resv == 0 {
			s.log.Error("the spool held records in memory but has no seq reservation; seqs may repeat", "path", s.seqPath, "err", err)
		}
		s.nextSeq = max(s.nextSeq, resv)
		s.memFlag = true
	}
	s.memCeil = s.nextSeq
	s.memLimit = resv
	s.m.BufferRecords.Set(float64(s.st.records()))
	s.m.BufferMemoryMode.Set(0)
	s.m.BufferBytes.Set(float64(s.st.bytes))
	return s, nil
}

// openStore opens the bbolt file, or moves a corrupt one aside and starts a
// fresh spool whose seqs continue from the reservation resv.
func (s *Spool) openStore(resv uint64) (state, error) {
	path := s.opts.Path
	var (
		db    *bbolt.DB
		st    state
		fresh bool
		err   error
	)
	if info, serr := os.Stat(path); serr == nil && info.Size() == 0 && resv > 0 {
		// bbolt would silently initialise an empty file, but the reservation
		// says records were committed to it: they are lost, and that is
		// worth the alert.
		err = corrupt("empty file, though seqs below %d were reserved", resv)
	} else if db, err = openBolt(path); err == nil {
		if st, fresh, err = loadState(db); err != nil {
			_ = db.Close()
		}
	}
	if err != nil {
		if !isCorrupt(err) {
			return st, fmt.Errorf("buffer: open %s: %w", path, err)
		}
		moved, merr := moveAside(path, s.clock.Now())
		if merr != nil {
			return st, fmt.Errorf("buffer: %s is corrupt (%v) and cannot be moved aside: %w", path, err, merr)
		}
		s.recovered = moved
		s.log.Error("spool file corrupt; moved aside, starting a fresh spool", "path", path, "moved_to", moved, "err", err)
		if db, err = openBolt(path); err != nil {
			return st, fmt.Errorf("buffer: open fresh %s: %w", path, err)
		}
		fresh = true
	}
	if fresh {
		if s.recovered != "" && resv == 0 {
			s.log.Error("no seq reservation to continue from; seqs may repeat those of the lost file", "path", s.seqPath)
		}
		st, err = initState(db, max(resv, 1))
		if err == nil {
			err = syncDir(filepath.Dir(path)) // make the new file's name durable
		}
		if err != nil {
			_ = db.Close()
			return st, fmt.Errorf("buffer: initialise %s: %w", path, err)
		}
	}
	s.db = db
	return st, nil
}

// Recovered is the path the corrupt spool file was moved to by Open, or ""
// if the file was sound. The gateway raises edgegw_spool_corrupt on it.
func (s *Spool) Recovered() string { return s.recovered }

// loadMemFlag reads whether memFlagKey is set.
func loadMemFlag(db *bbolt.DB) (set bool, err error) {
	defer guard(&err)()
	err = db.View(func(tx *bbolt.Tx) error {
		if m := tx.Bucket(metaBucket); m != nil {
			set = m.Get(memFlagKey) != nil
		}
		return nil
	})
	return set, err
}
