package clocksync

import "golang.org/x/sys/unix"

// check reads the kernel's NTP state with adjtimex(2) and no modes set, as
// timedatectl does for "System clock synchronized": the clock is
// synchronised while the kernel's STA_UNSYNC flag is clear, which NTP
// daemons clear once they discipline the clock and the kernel sets again
// when they stop for long (maxerror over 16 s).
func check() State {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	switch {
	case err != nil:
		return Unknown
	case state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0:
		return Unsynced
	}
	return Synced
}
