package serial

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// splitAll feeds the chunks and returns the lines and the bad kinds.
func splitAll(s *lineSplitter, chunks ...[]byte) (lines, bad []string) {
	for _, c := range chunks {
		s.Feed(c, func(l string) { lines = append(lines, l) }, func(kind string, _ []byte) { bad = append(bad, kind) })
	}
	return lines, bad
}

func TestLineSplitter(t *testing.T) {
	long := strings.Repeat("9", 20)
	for _, tc := range []struct {
		name   string
		delim  string
		max    int
		chunks []string
		lines  []string
		bad    []string
		rest   bool // Drop reports a partial line
	}{
		{name: "crlf", chunks: []string{"ST,GS,+0012.35kg\r\nST,GS,+1.0kg\r\n"}, lines: []string{"ST,GS,+0012.35kg", "ST,GS,+1.0kg"}},
		{name: "split reads", chunks: []string{"ST,G", "S,+1", "2\r", "\nnext"}, lines: []string{"ST,GS,+12"}, rest: true},
		{name: "empty lines skipped", chunks: []string{"\n\r\n\na\n"}, lines: []string{"a"}},
		{name: "multi-byte delimiter across reads", delim: "\r\x03", chunks: []string{"\x02A 1\r", "\x03B 2\r\x03"}, lines: []string{"A 1", "B 2"}},
		{name: "over-long at once", max: 10, chunks: []string{"ok\n" + long + "\nok2\n"}, lines: []string{"ok", "ok2"}, bad: []string{ErrOverlong}},
		{name: "over-long over reads", max: 10, chunks: []string{"ok\n" + long, long, long + "\nok2\n"}, lines: []string{"ok", "ok2"}, bad: []string{ErrOverlong}},
		{name: "over-long unfinished is not also partial", max: 10, chunks: []string{long}, bad: []string{ErrOverlong}},
		{name: "exactly max with cr", max: 4, chunks: []string{"1234\r\n12345\r\n"}, lines: []string{"1234"}, bad: []string{ErrOverlong}},
		{name: "binary", chunks: []string{"a\n\x00\x01\xff\nb\x1bc\n\xc3\x28\nb\n"}, lines: []string{"a", "b"}, bad: []string{ErrBinary, ErrBinary, ErrBinary}},
		{name: "utf-8 and tab are text", chunks: []string{"Gewicht\t12 µg\n"}, lines: []string{"Gewicht\t12 µg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = DefaultMaxLine
			}
			delim := tc.delim
			if delim == "" {
				delim = "\n"
			}
			s := newLineSplitter([]byte(delim), max)
			var chunks [][]byte
			for _, c := range tc.chunks {
				chunks = append(chunks, []byte(c))
			}
			lines, bad := splitAll(s, chunks...)
			if !reflect.DeepEqual(lines, tc.lines) || !reflect.DeepEqual(bad, tc.bad) {
				t.Errorf("lines %q bad %q; want %q %q", lines, bad, tc.lines, tc.bad)
			}
			if got := s.Drop(); got != tc.rest {
				t.Errorf("Drop() = %v, want %v", got, tc.rest)
			}
			if s.Drop() {
				t.Error("second Drop() reported a partial line")
			}
		})
	}
}

// The splitter holds a bounded amount of an endless line.
func TestLineSplitterBounded(t *testing.T) {
	s := newLineSplitter([]byte("\r\n"), 16)
	junk := bytes.Repeat([]byte{'x'}, 1000)
	for range 100 {
		_, bad := splitAll(s, junk)
		if len(bad) > 1 {
			t.Fatalf("counted %v for one line", bad)
		}
		if len(s.buf) > s.limit() {
			t.Fatalf("holds %d bytes, limit %d", len(s.buf), s.limit())
		}
	}
}

// FuzzLineSplitter: whatever the bytes and however they are cut into reads,
// the splitter does not panic, yields only short text lines without the
// delimiter, stays bounded, and gives the same result as one read.
func FuzzLineSplitter(f *testing.F) {
	f.Add([]byte("ST,GS,+0012.35kg\r\nUS,GS,+0012.40kg\r\n"), "\n", 16, uint8(3))
	f.Add([]byte("\x02A 1\r\x03\x02B\x00\r\x03"), "\r\x03", 8, uint8(1))
	f.Add(bytes.Repeat([]byte("ab"), 300), "ba", 5, uint8(7))
	f.Add([]byte("\xff\xfe\n\n\r\r\n"), "\r\n", 1, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, delim string, max int, step uint8) {
		if delim == "" || len(delim) > MaxDelimiter {
			delim = "\n"
		}
		max = 1 + (max&0x7fffffff)%300
		whole := newLineSplitter([]byte(delim), max)
		wantLines, wantBad := splitAll(whole, data)

		s := newLineSplitter([]byte(delim), max)
		n := 1 + int(step)%17
		var lines, bad []string
		for i := 0; i < len(data); i += n {
			l, b := splitAll(s, data[i:min(i+n, len(data))])
			lines, bad = append(lines, l...), append(bad, b...)
			if len(s.buf) > s.limit() {
				t.Fatalf("holds %d bytes, limit %d", len(s.buf), s.limit())
			}
		}
		for _, l := range lines {
			if len(l) > max || l == "" || strings.Contains(l, delim) || !utf8.ValidString(l) || !isText([]byte(l)) {
				t.Fatalf("yielded %q (max %d, delimiter %q)", l, max, delim)
			}
		}
		if !reflect.DeepEqual(lines, wantLines) || !reflect.DeepEqual(bad, wantBad) {
			t.Fatalf("in reads of %d: %q %q; at once: %q %q", n, lines, bad, wantLines, wantBad)
		}
		if s.Drop() != whole.Drop() {
			t.Fatal("Drop differs between reads and one read")
		}
	})
}
