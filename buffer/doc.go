// Package buffer is edgegw's store-and-forward spool: every reading, alert
// transition and downtime event is appended to it, made durable in a bbolt
// file, read back in order by the uplink, and deleted once Kafka has
// acknowledged it. An outage of the plant network or of Kafka therefore
// loses nothing that was committed.
//
// The promises a caller relies on (each one is tested in this package):
//
//   - Seq. Append gives a record its sequence number at once. Seqs are
//     strictly increasing per spool, across restarts and even across a
//     corrupt-file recovery, so Kafka consumers can dedupe on
//     (gateway, seq). The next seq is stored in every commit; a reservation
//     in the side file <path>.seq, advanced in blocks of 1<<20 seqs and
//     fsynced before any commit crosses it, lets a fresh spool continue
//     above every seq the lost file may have held.
//
//   - Committed. A record is committed once the bbolt transaction holding it
//     has been fsynced (in outage mode's memory state: once Kafka
//     acknowledged it; see below). Only committed records are seen by ReadBatch,
//     WaitCommitted and Stats, and Append's done callback fires only then,
//     from the committer goroutine, in seq order. Records are committed in
//     seq order, so the spool always holds one contiguous run of seqs,
//     FirstSeq..LastSeq, shortened only at its front (AckThrough,
//     drop_oldest); records dropped behind the front become placeholders.
//
//   - Group commit. Many records share one transaction and one fsync. A
//     record waits at most CommitInterval (200ms by default) for its commit;
//     a record with a done callback is committed at once, because a source
//     is waiting for it (MQTT QoS 1: mosquitto allows only 20 unacknowledged
//     messages per client, so holding acknowledgements for a timer would cap
//     throughput at a few hundred messages/s). While one fsync runs, new
//     appends gather for the next transaction. Append never waits for the
//     disk.
//
//   - kill -9 and power loss. Everything committed survives; the spool
//     reopens with the same records, counts and next seq. What was appended
//     but not yet committed is lost: at most CommitInterval worth of records
//     without a done callback. Records with a callback were never
//     acknowledged to their source, which sends them again.
//
//   - Full. MaxBytes bounds the size of the records held, each counted as
//     its encoded form plus 8 bytes for its seq. DropOldest (the default)
//     deletes the oldest committed readings in the commit transaction that
//     overflows, counted as edgegw_dropped_total{reason="spool_full_oldest"}.
//     It keeps alert transitions and downtime events while there are
//     readings to drop: the readings behind the oldest of those become
//     placeholders, so seqs stay contiguous, and they go too, oldest first,
//     only when nothing else is left. RejectNew makes
//     Append return ErrFull, counted as reason="spool_full_rejected", when
//     committed plus pending bytes would pass MaxBytes.
//
//   - Full disk. A commit that fails (ENOSPC, EFBIG under a file size
//     limit, EDQUOT, or any other error) leaves the file as it was: bbolt
//     rolls the transaction back, and the records go back to wait in
//     memory for the retry (with backoff, up to 5 s; logged once, and once
//     more when commits work again). Up to 32 MiB of records wait; past
//     that DropOldest drops the oldest waiting readings and RejectNew
//     refuses new ones (Append returns ErrStalled), counted as
//     reason="disk_full" (or "spool_backlog" when commits fail otherwise
//     or just lag behind the input). Records with a done callback are never
//     dropped and refused only at twice the bound: their source waits for
//     them and can resend, and its in-flight window (20 messages at a stock
//     mosquitto) keeps them few. A dropped record keeps its seq, as a
//     placeholder in the commit, so the seqs held stay contiguous; it is
//     not counted in Stats.Records. Full reports all of this for the
//     gateway's edgegw_spool_full alert, from the first failed commit on a
//     full disk. When space returns the commits resume by themselves.
//
//   - Outage mode (Options.Mode = Outage, outage.go). While Kafka
//     acknowledges, records are held in memory and read from there, and
//     nothing is written to the file for them; AckThrough is their
//     durability point, and their done callbacks run from it (from the
//     caller of AckThrough). When Kafka does not acknowledge within
//     OutageAfter, or too much waits, everything in memory is committed in
//     seq order and the spool works as in durable mode until the uplink has
//     drained the file. A power cut in memory state loses the records not
//     yet acknowledged by Kafka that have no done callback. ReadBatch,
//     WaitCommitted and AckThrough work the same in both states, so the
//     uplink does not know; DiskWrites counts what reaches the disk.
//
//   - Corrupt file. A file that bbolt cannot open, that panics or faults
//     while being read, that is shorter than its own metadata says, or whose
//     spool metadata is missing or garbled, is moved aside as
//     <path>.corrupt-<UTC time as 20060102T150405Z>, logged, reported by
//     Recovered, and replaced by a fresh spool. Open never fails, and never
//     panics, on a corrupt file, so a bad file cannot cause a crash loop. A
//     locked file, a permission problem or a full disk are not corruption:
//     Open returns those errors and leaves the file alone. Open checks the
//     metadata, the freelist and both ends of the records, not every page
//     (that would read the whole file at each start); damage found later
//     costs only the records it hit: an unreadable record is skipped and
//     counted as edgegw_dropped_total{reason="malformed"}, and a broken page
//     makes ReadBatch or the commit return an error instead of a panic.
//
// Concurrency: Append, Flush, ReadBatch, AckThrough, WaitCommitted and Stats
// may be called from any goroutine. Run owns the committer goroutine.
package buffer
