package serialport

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
)

func TestOpenReadWrite(t *testing.T) {
	line := ptytest.New(t, "ttyUSB0")
	p, err := Open(Config{Path: line.Path, Baud: 19200})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := line.Device().Write([]byte("GS, 12.5 kg\r\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(readerUntilData{p}).ReadString('\n')
	if err != nil || got != "GS, 12.5 kg\r\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := p.Write([]byte("P\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(line.Device(), buf); err != nil || string(buf) != "P\r\n" {
		t.Fatalf("device got %q, %v", buf, err)
	}
}

// readerUntilData turns the port's "no data yet" (0, nil) into waiting.
type readerUntilData struct{ p *Port }

func (r readerUntilData) Read(b []byte) (int, error) {
	for {
		n, err := r.p.Read(b)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func TestReadTimeoutIsNoData(t *testing.T) {
	line := ptytest.New(t, "ttyS1")
	p, err := Open(Config{Path: line.Path, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	n, err := p.Read(make([]byte, 8))
	if n != 0 || err != nil {
		t.Fatalf("idle read = %d, %v; want 0, nil", n, err)
	}
}

func TestMissingPortIsAnError(t *testing.T) {
	if _, err := Open(Config{Path: t.TempDir() + "/ttyUSB9"}); err == nil {
		t.Fatal("no error for a missing port")
	}
}

// Keep reopens the port by its path after an unplug, and use runs again.
func TestKeepReopensAfterUnplug(t *testing.T) {
	line := ptytest.New(t, "ttyUSB0")
	clock := clockwork.NewFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opens, errs atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Keep(ctx, Config{Path: line.Path}, clock, slog.New(slog.DiscardHandler), func(string) { errs.Add(1) },
			func(ctx context.Context, p *Port) error {
				opens.Add(1)
				buf := make([]byte, 64)
				for ctx.Err() == nil {
					if _, err := p.Read(buf); err != nil {
						return err
					}
				}
				return nil
			})
	}()
	waitUntil(t, func() bool { return opens.Load() == 1 })
	line.Unplug()
	// The read fails, the reopen finds no file: one outage, counted once,
	// retried on the clock.
	waitUntil(t, func() bool { return errs.Load() == 1 })
	for i := 0; i < 3; i++ {
		clock.BlockUntilContext(ctx, 1)
		clock.Advance(RetryEvery)
	}
	if opens.Load() != 1 {
		t.Fatalf("opened %d times while unplugged", opens.Load())
	}
	line.Plug()
	waitUntil(t, func() bool {
		clock.Advance(RetryEvery)
		return opens.Load() == 2
	})
	if errs.Load() != 1 {
		t.Errorf("errors counted %d, want 1 per outage", errs.Load())
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Keep = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Keep did not return")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCheck(t *testing.T) {
	var got []string
	Check(Config{Baud: 9601, Parity: "mark", StopBits: 3, DataBits: 9}, func(f, format string, args ...any) { got = append(got, f) })
	if want := "port baud data_bits parity stop_bits"; strings.Join(got, " ") != want {
		t.Errorf("problems in %v, want %s", got, want)
	}
}
