package buffer

import (
	"os"
	"testing"
)

// TestTornPages tears each page of a spool file in turn, as a power cut in
// the middle of a page write does (its second half still holds the old
// bytes, here zeros), and opens it again: the spool always opens (moving a
// file it cannot use aside), takes and commits new records, and reads what
// it holds without an error. Never a crash loop.
func TestTornPages(t *testing.T) {
	path := testPath(t)
	h := start(t, path, nil)
	h.appendN(0, 2000)
	h.flush()
	last := h.s.Stats().LastSeq
	h.stop()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := len(orig) / page
	moved, readable := 0, 0
	for p := 0; p < pages; p++ {
		torn := append([]byte(nil), orig...)
		clear(torn[p*page+page/2 : (p+1)*page])
		dir := t.TempDir()
		tp := dir + "/buffer.db"
		if err := os.WriteFile(tp, torn, 0o600); err != nil {
			t.Fatal(err)
		}
		if seq, err := os.ReadFile(path + ".seq"); err == nil {
			_ = os.WriteFile(tp+".seq", seq, 0o600)
		}
		h := start(t, tp, nil)
		if h.s.Recovered() != "" {
			moved++
		}
		recs := h.readAll() // fails the test on an error
		readable += len(recs)
		seq, err := h.s.Append(sample(0), nil)
		if err != nil {
			t.Fatalf("page %d torn: Append: %v", p, err)
		}
		if seq <= last {
			t.Errorf("page %d torn: new seq %d not above the file's %d", p, seq, last)
		}
		h.flush()
		h.stop()
	}
	t.Logf("%d pages torn one at a time: every time the spool opened and took records; %d times the file was moved aside; %d records readable in all",
		pages, moved, readable)
}
