package clocksync

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCheckAgreesWithTimedatectl compares with systemd's own answer where
// timedatectl can give one (it needs a running systemd); elsewhere it only
// checks that Linux gives a definite answer.
func TestCheckAgreesWithTimedatectl(t *testing.T) {
	got := Check()
	t.Logf("clock: %s", got)
	out, err := exec.Command("timedatectl", "show", "--property=NTPSynchronized", "--value").Output()
	if err != nil {
		if got == Unknown {
			t.Skip("no answer here: neither adjtimex nor timedatectl")
		}
		return
	}
	want := Unsynced
	if strings.TrimSpace(string(out)) == "yes" {
		want = Synced
	}
	if got != want {
		t.Errorf("Check() = %s, timedatectl says %s", got, want)
	}
}
