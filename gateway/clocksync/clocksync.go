// Package clocksync tells whether the system clock is synchronised. Pi
// boards have no real-time clock: until NTP (systemd-timesyncd, chrony)
// has set it, the clock starts from the last shutdown or from 1970, and the
// timestamps of readings are wrong.
package clocksync

// State is what the kernel says of the clock.
type State int

const (
	Unknown State = iota // this platform cannot tell
	Synced
	Unsynced
)

func (s State) String() string {
	switch s {
	case Synced:
		return "synced"
	case Unsynced:
		return "unsynced"
	}
	return "unknown"
}

// Check asks the kernel now. It is cheap (one system call) and needs no
// privilege.
func Check() State { return check() }
