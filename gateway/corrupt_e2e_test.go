package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A buffer file left corrupt by a power loss: the gateway starts anyway on a
// fresh spool, the old file is kept aside, and edgegw_spool_corrupt fires on
// Kafka.
func TestCorruptSpoolRaisesAlert(t *testing.T) {
	s := newStack(t)
	path := s.config(t, "sensors:\n  - {id: temp, driver: mqtt, topic: line/temp}\n")
	spool := filepath.Join(s.dir, "buffer.db")
	if err := os.WriteFile(spool, []byte(strings.Repeat("torn page ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, path)
	aside, _ := filepath.Glob(spool + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file kept aside as %v", aside)
	}
	var got *rec
	s.kafka.Consume([]string{"plant.alerts"}, 20*time.Second, func(r *kgo.Record) bool {
		a := decode(t, r)
		got = &a
		return false
	})
	if got == nil || got.Rule != "edgegw_spool_corrupt" || got.State != "firing" || got.Severity != "critical" ||
		!strings.Contains(got.Message, ".corrupt-") {
		t.Fatalf("alert %+v", got)
	}
}
