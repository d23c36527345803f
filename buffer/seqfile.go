package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// seqBlock is how far the side-file reservation runs ahead of the highest
// committed seq. At 500,000 records/s that is one extra fsync every two
// seconds; a fresh spool after a corruption skips at most this many seqs.
const seqBlock = 1 << 20

// The side file holds a magic, the reservation and a CRC, so that a torn or
// garbled file is recognised rather than trusted.
const (
	seqMagic    = "EGSQ"
	seqFileSize = 4 + 8 + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// readSeqFile returns the reservation stored in path: no seq at or above it
// has ever been committed. A missing file is 0 without error.
func readSeqFile(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != seqFileSize || string(b[:4]) != seqMagic ||
		crc32.Checksum(b[:12], crcTable) != binary.BigEndian.Uint32(b[12:]) {
		return 0, fmt.Errorf("seq reservation %s is garbled", path)
	}
	return binary.BigEndian.Uint64(b[4:12]), nil
}

// writeSeqFile replaces the reservation durably: a temporary file, fsynced,
// renamed over the old one, and the directory fsynced, so a crash leaves
// either the old or the new reservation, never a torn one.
func writeSeqFile(path string, v uint64) error {
	b := make([]byte, 0, seqFileSize)
	b = append(b, seqMagic...)
	b = binary.BigEndian.AppendUint64(b, v)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or a file creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
