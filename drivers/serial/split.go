package serial

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// Kinds of edgegw_driver_errors_total{driver="serial"}: what was wrong with
// a line that was skipped, or with the port.
const (
	ErrUnmatched  = "unmatched"    // a text line that no sensor's pattern matches
	ErrOverlong   = "overlong"     // a line longer than max_line
	ErrBinary     = "binary"       // a line that is not valid UTF-8 or holds control characters
	ErrPartial    = "partial"      // the port dropped before the line's delimiter arrived
	ErrNotANumber = "not_a_number" // a pattern matched, but its group is not a number
	ErrNoAnswer   = "no_answer"    // a polled device sent no line between two requests
	ErrWrite      = "write"        // the request could not be written
	ErrPort       = "port"         // the port is missing or went away (one per outage)
)

// stx is the start-of-text byte some scales put before each line (with
// ETX as the delimiter); it is dropped rather than counted as binary.
const stx = 0x02

// sampleLen bounds the piece of a bad line kept for the log.
const sampleLen = 40

// lineSplitter cuts a byte stream into lines at a delimiter. It is pure (no
// I/O, no clock) so it can be fuzzed.
//
// Invariants: a line it yields is valid UTF-8 without control characters
// (tab allowed), holds no delimiter, is not empty and is at most max bytes
// long; it never holds more than max+len(delim)+1 bytes of an unfinished
// line, whatever it is fed. A trailing "\r" and a leading STX (0x02) are
// trimmed; empty lines are skipped without counting.
type lineSplitter struct {
	delim []byte
	max   int
	buf   []byte // the unfinished line
	// skipping: the unfinished line was already found over-long and
	// counted; it is discarded up to its delimiter.
	skipping bool
}

func newLineSplitter(delim []byte, max int) *lineSplitter {
	if len(delim) == 0 {
		delim = []byte(DefaultDelimiter)
	}
	if max < 1 {
		max = DefaultMaxLine
	}
	return &lineSplitter{delim: delim, max: max}
}

// limit is the longest unfinished line that may still become a good one:
// max bytes of text, a leading STX, a trailing \r, and all but the last
// byte of the delimiter.
func (s *lineSplitter) limit() int { return s.max + 2 + len(s.delim) - 1 }

// Feed takes the next bytes read from the port. It calls line for each
// good line completed by them and bad for each line skipped, with the kind
// (ErrOverlong, ErrBinary) and the line's start for a log message. Neither
// argument may be kept after the call returns.
func (s *lineSplitter) Feed(b []byte, line func(string), bad func(kind string, sample []byte)) {
	from := max(0, len(s.buf)-len(s.delim)+1) // a delimiter may span the two reads
	s.buf = append(s.buf, b...)
	start := 0
	for {
		i := bytes.Index(s.buf[from:], s.delim)
		if i < 0 {
			break
		}
		end := from + i
		s.complete(s.buf[start:end], line, bad)
		start = end + len(s.delim)
		from = start
	}
	rest := s.buf[start:]
	if len(rest) > s.limit() {
		if !s.skipping {
			bad(ErrOverlong, rest[:min(len(rest), sampleLen)])
			s.skipping = true
		}
		// Keep only what may be the start of the delimiter.
		rest = rest[len(rest)-(len(s.delim)-1):]
	}
	s.buf = s.buf[:copy(s.buf, rest)]
}

// complete handles one line cut at its delimiter.
func (s *lineSplitter) complete(l []byte, line func(string), bad func(string, []byte)) {
	if s.skipping {
		s.skipping = false // the end of a line counted over-long already
		return
	}
	if len(l) > 0 && l[0] == stx {
		l = l[1:]
	}
	l = bytes.TrimSuffix(l, []byte("\r"))
	switch {
	case len(l) == 0:
	case len(l) > s.max:
		bad(ErrOverlong, l[:min(len(l), sampleLen)])
	case !isText(l):
		bad(ErrBinary, l[:min(len(l), sampleLen)])
	default:
		line(string(l))
	}
}

// Drop discards the unfinished line, as when the port went away, and
// reports whether there was one to count as partial (an over-long one was
// counted already).
func (s *lineSplitter) Drop() (partial bool) {
	partial = len(s.buf) > 0 && !s.skipping
	s.buf = s.buf[:0]
	s.skipping = false
	return partial
}

// isText reports whether b is UTF-8 text without control characters other
// than tab.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != '\t' && unicode.IsControl(r) {
			return false
		}
		b = b[n:]
	}
	return true
}
