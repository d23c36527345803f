package serialport

import (
	"errors"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
)

// An adapter unplugged while nobody was in Read: the kernel hangs the tty
// up, and every later read returns 0 bytes at once, which tarm/serial
// reports as io.EOF, like a read timeout. Read must report the port gone,
// not "no data" for ever.
func TestReadAfterHangupWhileIdle(t *testing.T) {
	line := ptytest.New(t, "ttyUSB0")
	p, err := Open(Config{Path: line.Path})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	line.Unplug() // no Read in progress
	time.Sleep(50 * time.Millisecond)
	buf := make([]byte, 16)
	for i := range 100 {
		n, err := p.Read(buf)
		if err != nil {
			if !errors.Is(err, ErrHungUp) || n != 0 || i > hungUpReads {
				t.Fatalf("read %d after the hangup: %d, %v", i+1, n, err)
			}
			return
		}
	}
	t.Fatal("100 reads after the hangup returned no data and no error")
}

func TestEffectiveTimeout(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: 100 * time.Millisecond, 50 * time.Millisecond: 100 * time.Millisecond,
		100 * time.Millisecond: 100 * time.Millisecond, 199 * time.Millisecond: 100 * time.Millisecond,
		250 * time.Millisecond: 200 * time.Millisecond, time.Minute: 25500 * time.Millisecond,
	} {
		if got := effectiveTimeout(in); got != want {
			t.Errorf("effectiveTimeout(%v) = %v, want %v", in, got, want)
		}
	}
}
