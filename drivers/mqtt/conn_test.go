package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair is a real loopback TCP connection: the client end wrapped.
func tcpPair(t *testing.T) (*bufferedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-acc
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	b := newBufferedConn(c)
	t.Cleanup(func() { b.Close() })
	return b, peer
}

// Packets written one by one arrive whole and in order, and Close sends
// what is still queued before it closes (paho's DISCONNECT, the last
// PUBACKs).
func TestBufferedConnOrderAndCloseFlushes(t *testing.T) {
	b, peer := tcpPair(t)
	var want bytes.Buffer
	for i := range 20000 {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(p)
		if n, err := b.Write(p); n != 4 || err != nil {
			t.Fatalf("write %d: %d %v", i, n, err)
		}
	}
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(peer)
		got <- all
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if g := <-got; !bytes.Equal(g, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want %d (first difference at %d)", len(g), want.Len(), firstDiff(g, want.Bytes()))
	}
	if _, err := b.Write([]byte{1}); !errors.Is(err, errConnClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// countingConn counts the reads that reach the socket.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

// Reads go through the buffer: paho's one-byte reads of a packet header
// take what one read of the socket brought.
func TestBufferedConnReads(t *testing.T) {
	raw, peer := tcpPair(t)
	cc := &countingConn{Conn: raw.Conn}
	b := newBufferedConn(cc)
	msg := bytes.Repeat([]byte("0123456789"), 1000)
	go peer.Write(msg)
	got := make([]byte, 0, len(msg))
	one := make([]byte, 1)
	for len(got) < len(msg) {
		if _, err := io.ReadFull(b, one); err != nil {
			t.Fatal(err)
		}
		got = append(got, one[0])
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("read back differs")
	}
	if cc.reads > 100 {
		t.Fatalf("%d one-byte reads took %d reads of the socket", len(msg), cc.reads)
	}
}

// A peer that stops reading: writes queue up to maxPending, then Write
// waits; when the peer goes away the write fails, later Writes fail with
// it, and the reader sees the connection closed.
func TestBufferedConnPeerGone(t *testing.T) {
	b, peer := tcpPair(t)
	var wg sync.WaitGroup
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		p := make([]byte, 4096)
		for {
			if _, err := b.Write(p); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Let the socket buffers and the queue fill, then take the peer away
	// with a reset rather than a clean close.
	for {
		b.mu.Lock()
		full := len(b.queued) >= maxPending
		b.mu.Unlock()
		if full {
			break
		}
		time.Sleep(time.Millisecond)
	}
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("write succeeded after the peer went away")
		}
	case <-time.After(flushWithin + 5*time.Second):
		t.Fatal("writer still blocked after the peer went away")
	}
	wg.Wait()
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded on a failed connection")
	}
	if err := b.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("close: %v", err)
	}
}

// Close with a peer that takes nothing: what is queued cannot go out, and
// Close gives up after closeFlush instead of waiting for the write timeout.
func TestBufferedConnCloseStuckPeer(t *testing.T) {
	b, _ := tcpPair(t) // the peer never reads
	p := make([]byte, 64<<10)
	for {
		b.mu.Lock()
		full := len(b.queued) >= maxPending/2
		b.mu.Unlock()
		if full {
			break
		}
		if _, err := b.Write(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case <-done:
	case <-time.After(flushWithin):
		t.Fatalf("Close still waiting after %v; it gives up after %v", flushWithin, closeFlush)
	}
	if _, err := b.Write([]byte{1}); err == nil {
		t.Fatal("write after close succeeded")
	}
}
