// Package ptytest gives tests a real serial line: a pseudo-terminal pair,
// its device end reachable at a stable path (a symlink, as udev's
// /dev/serial/by-id links are), which a test can unplug (the link vanishes
// and the line drops) and plug back in.
package ptytest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Line is one simulated serial device.
type Line struct {
	t    testing.TB
	Path string // what the gateway opens: a symlink to the pty's device end

	mu     sync.Mutex
	master *os.File
}

// New creates a line whose device end is at dir/name.
func New(t testing.TB, name string) *Line {
	t.Helper()
	l := &Line{t: t, Path: filepath.Join(t.TempDir(), name)}
	l.Plug()
	t.Cleanup(l.Unplug)
	return l
}

// Plug creates a fresh pty pair and points Path at it.
func (l *Line) Plug() {
	l.t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		l.t.Fatalf("open /dev/ptmx: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		l.t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		l.t.Fatalf("ptsname: %v", err)
	}
	// The device side in raw mode, so bytes pass as they are (the gateway
	// sets raw mode too when it opens the port; this covers the window
	// before it does).
	slave := fmt.Sprintf("/dev/pts/%d", n)
	if s, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
		if tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS); err == nil {
			tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
			tio.Oflag &^= unix.OPOST
			tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
			_ = unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio)
		}
		_ = s.Close()
	}
	_ = os.Remove(l.Path)
	if err := os.Symlink(slave, l.Path); err != nil {
		l.t.Fatalf("link %s: %v", l.Path, err)
	}
	l.mu.Lock()
	l.master = m
	l.mu.Unlock()
}

// Unplug removes the link and closes the device's end: the gateway's reads
// fail and its reopen attempts find no file, as with a USB adapter pulled.
func (l *Line) Unplug() {
	_ = os.Remove(l.Path)
	l.mu.Lock()
	m := l.master
	l.master = nil
	l.mu.Unlock()
	if m != nil {
		_ = m.Close()
	}
}

// Device is the device's end of the line: write what the device sends,
// read what the gateway sent. Nil while unplugged.
func (l *Line) Device() *os.File {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.master
}
