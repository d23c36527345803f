package reading

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The binary form is what the spool writes to disk, so it is compact and
// versioned: a format byte, the kind, then the kind's fields (strings
// length-prefixed with a uvarint, times as varint Unix nanoseconds with a
// flag for the zero time, floats as 8 little-endian bytes). The seq is not
// part of it: the spool keeps it as the record's key.
const codecV1 = 1

// codecV2 is codecV1 with one more byte of flags after a reading's
// quality; it is written only for a reading with a flag set (clock not
// synchronised), so that other records keep the v1 bytes.
const codecV2 = 2

const flagClockUnsynced = 1

// ErrCorrupt is returned by DecodeRecord for bytes that are not a record.
var ErrCorrupt = errors.New("reading: corrupt record encoding")

// EncodedKind is the kind of the record whose binary form is b, read from
// its first two bytes without decoding the rest; 0 if b is not one.
func EncodedKind(b []byte) Kind {
	if len(b) < 2 || (b[0] != codecV1 && b[0] != codecV2) {
		return 0
	}
	return Kind(b[1])
}

// AppendBinary appends the binary form of r (without its Seq) to dst.
func (r *Record) AppendBinary(dst []byte) []byte {
	format := byte(codecV1)
	if r.Kind == KindReading && r.Reading.ClockUnsynced {
		format = codecV2
	}
	dst = append(dst, format, byte(r.Kind))
	switch r.Kind {
	case KindReading:
		x := &r.Reading
		dst = appendString(dst, x.Sensor)
		dst = appendTime(dst, x.TS)
		dst = appendFloat(dst, x.Value)
		dst = appendString(dst, x.Unit)
		dst = append(dst, byte(x.Quality))
		if format == codecV2 {
			dst = append(dst, flagClockUnsynced)
		}
	case KindAlert:
		x := r.Alert
		if x == nil {
			x = &Alert{}
		}
		dst = appendString(dst, x.Rule)
		dst = appendString(dst, x.State)
		dst = appendString(dst, x.Severity)
		dst = appendFloat(dst, x.Value)
		dst = appendTime(dst, x.Since)
		dst = appendTime(dst, x.TS)
		dst = appendString(dst, x.Message)
	case KindEvent:
		x := r.Event
		if x == nil {
			x = &Event{}
		}
		dst = appendString(dst, x.Machine)
		dst = appendString(dst, x.State)
		dst = appendTime(dst, x.Start)
		dst = appendTime(dst, x.End)
		dst = binary.AppendVarint(dst, int64(x.Duration))
	}
	return dst
}

// DecodeRecord parses the binary form written by AppendBinary. The result
// does not alias b. Seq is left zero for the caller to fill in.
func DecodeRecord(b []byte) (Record, error) {
	d := decoder{b: b}
	format := d.byte()
	if format != codecV1 && format != codecV2 {
		return Record{}, fmt.Errorf("%w: unknown format", ErrCorrupt)
	}
	r := Record{Kind: Kind(d.byte())}
	if format == codecV2 && r.Kind != KindReading {
		return Record{}, fmt.Errorf("%w: flags on a %s", ErrCorrupt, r.Kind)
	}
	switch r.Kind {
	case KindReading:
		x := &r.Reading
		x.Sensor = d.string()
		x.TS = d.time()
		x.Value = d.float()
		x.Unit = d.string()
		x.Quality = Quality(d.byte())
		if format == codecV2 {
			flags := d.byte()
			if flags != flagClockUnsynced {
				d.fail("flags")
			}
			x.ClockUnsynced = true
		}
	case KindAlert:
		x := &Alert{}
		x.Rule = d.string()
		x.State = d.string()
		x.Severity = d.string()
		x.Value = d.float()
		x.Since = d.time()
		x.TS = d.time()
		x.Message = d.string()
		r.Alert = x
	case KindEvent:
		x := &Event{}
		x.Machine = d.string()
		x.State = d.string()
		x.Start = d.time()
		x.End = d.time()
		x.Duration = time.Duration(d.varint())
		r.Event = x
	default:
		return Record{}, fmt.Errorf("%w: unknown kind %d", ErrCorrupt, r.Kind)
	}
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return r, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	return binary.AppendVarint(dst, t.UnixNano())
}

func appendFloat(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// decoder reads the binary form; the first error sticks and every later
// read returns a zero value, so callers check d.err once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: short %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.fail("string")
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.varint()).UTC()
	}
	d.fail("time")
	return time.Time{}
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.fail("float")
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}
