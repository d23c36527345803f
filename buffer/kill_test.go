package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/metrics"
)

// kill9ChildEnv, when set to a spool path, turns this test binary into the
// child of TestKill9.
const kill9ChildEnv = "EDGEGW_BUFFER_KILL9_CHILD"

// TestKill9 runs a child process that appends records with done callbacks,
// printing each seq when its done fires, and SIGKILLs it mid-stream: every
// printed seq must be in the reopened spool with its content.
func TestKill9(t *testing.T) {
	if path := os.Getenv(kill9ChildEnv); path != "" {
		kill9Child(path)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := testPath(t)
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), kill9ChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var printed []uint64
	sc := bufio.NewScanner(stdout)
	for len(printed) < 400 && sc.Scan() {
		var seq uint64
		if _, err := fmt.Sscanf(sc.Text(), "committed %d", &seq); err == nil {
			printed = append(printed, seq)
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred code, no final commit
		t.Fatal(err)
	}
	werr := cmd.Wait()
	if len(printed) < 400 {
		t.Fatalf("child printed %d seqs before it ended (%v); stderr:\n%s", len(printed), werr, stderr.String())
	}
	if werr == nil || !strings.Contains(werr.Error(), "killed") {
		t.Fatalf("child ended with %v, want killed; stderr:\n%s", werr, stderr.String())
	}

	h := start(t, path, nil)
	if h.s.Recovered() != "" {
		t.Fatalf("spool moved aside after kill -9: %s", h.s.Recovered())
	}
	recs := h.readAll()
	bySeq := make(map[uint64]int, len(recs))
	for i, r := range recs {
		if r.Seq != uint64(i+1) || !sameRecord(r, sample(i), uint64(i+1)) {
			t.Fatalf("record %d: seq %d %+v, want seq %d %+v", i, r.Seq, r, i+1, sample(i))
		}
		bySeq[r.Seq] = i
	}
	for _, seq := range printed {
		if _, ok := bySeq[seq]; !ok {
			t.Errorf("seq %d was reported committed but is not in the spool (%d records)", seq, len(recs))
		}
	}
	st := h.s.Stats()
	if st.Records != int64(len(recs)) || st.LastSeq != uint64(len(recs)) {
		t.Errorf("Stats after kill -9 = %+v, want %d records through seq %d", st, len(recs), len(recs))
	}
	seq, err := h.s.Append(sample(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if seq <= printed[len(printed)-1] || seq <= st.LastSeq {
		t.Errorf("first seq after restart %d, not above %d", seq, max(printed[len(printed)-1], st.LastSeq))
	}
	t.Logf("child reported %d commits, spool holds %d records", len(printed), len(recs))
}

// kill9Child appends sample records like an MQTT QoS 1 source: at most 20
// unacknowledged, each acknowledged (printed) from its done callback. It
// runs until killed.
func kill9Child(path string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(3)
	}
	s, err := Open(Options{Path: path, Metrics: metrics.New(), Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fail("Open: %v", err)
	}
	go func() {
		if err := s.Run(context.Background()); err != nil {
			fail("Run: %v", err)
		}
	}()
	inFlight := make(chan struct{}, 20)
	for i := 0; ; i++ {
		inFlight <- struct{}{}
		want := uint64(i + 1) // a fresh spool starts at 1; checked below
		seq, err := s.Append(sample(i), func() {
			fmt.Fprintf(os.Stdout, "committed %d\n", want) // unbuffered: one write per line
			<-inFlight
		})
		if err != nil || seq != want {
			fail("Append %d: seq %d, %v", i, seq, err)
		}
	}
}
