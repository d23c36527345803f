package mqtt

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
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
	defer b.Close()
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
	// with a reset rather than a clean close. A test starved for longer
	// than flushWithin (a loaded CI machine) may find the write already
	// failed for want of a reader, the other way a peer goes: the same
	// checks follow.
	for {
		b.mu.Lock()
		full, failed := len(b.queued) >= maxPending, b.err != nil
		b.mu.Unlock()
		if full || failed {
			if failed {
				t.Log("the write failed before the peer was closed:", b.err)
			}
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

// With publish set, the QoS 0 PUBLISH packets go to it, whole and in
// order, on the goroutine that reads, and paho's packet reader gets every
// other packet untouched, in order with them: written all at once and
// written a byte at a time, with a payload larger than the read buffer.
func TestBufferedConnTakesQoS0Publish(t *testing.T) {
	publish := func(topic string, qos byte, id uint16, retain bool, payload []byte) packets.ControlPacket {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Qos, p.MessageID, p.Retain, p.Payload = topic, qos, id, retain, payload
		return p
	}
	suback := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	suback.MessageID, suback.ReturnCodes = 3, []byte{0}
	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
	stream := []packets.ControlPacket{
		publish("line/a", 0, 0, false, []byte("1")),
		packets.NewControlPacket(packets.Pingresp),
		publish("line/q1", 1, 7, false, []byte("x")),
		publish("line/r", 0, 0, true, []byte("2")),
		publish("line/big", 0, 0, false, big),
		publish("line/empty", 0, 0, false, nil),
		publish("line/long", 0, 0, false, bytes.Repeat([]byte("7"), 200)), // two bytes of length
		suback,
	}
	var wire bytes.Buffer
	for _, p := range stream {
		if err := p.Write(&wire); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"qos0 line/a 1", "PINGRESP", "PUBLISH line/q1 qos 1 id 7", "qos0 retained line/r 1",
		"qos0 line/big 102400", "qos0 line/empty 0", "qos0 line/long 200", "SUBACK"}

	for _, oneByte := range []bool{false, true} {
		b, peer := tcpPair(t)
		var got []string
		var payloads [][]byte
		b.publish = func(m paho.Message) {
			s := "qos0 "
			if m.Retained() {
				s += "retained "
			}
			got = append(got, fmt.Sprintf("%s%s %d", s, m.Topic(), len(m.Payload())))
			payloads = append(payloads, bytes.Clone(m.Payload()))
		}
		go func() {
			if !oneByte {
				peer.Write(wire.Bytes())
				return
			}
			for _, c := range wire.Bytes() {
				if _, err := peer.Write([]byte{c}); err != nil {
					return
				}
			}
		}()
		for len(got) < len(want) {
			cp, err := packets.ReadPacket(b)
			if err != nil {
				t.Fatalf("one byte at a time %v: after %q: %v", oneByte, got, err)
			}
			switch p := cp.(type) {
			case *packets.PublishPacket:
				got = append(got, fmt.Sprintf("PUBLISH %s qos %d id %d", p.TopicName, p.Qos, p.MessageID))
			case *packets.PingrespPacket:
				got = append(got, "PINGRESP")
			case *packets.SubackPacket:
				got = append(got, "SUBACK")
			default:
				got = append(got, cp.String())
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("one byte at a time %v:\n got %q\nwant %q", oneByte, got, want)
		}
		if string(payloads[0]) != "1" || string(payloads[1]) != "2" || !bytes.Equal(payloads[2], big) {
			t.Fatalf("payloads changed: %q %q, big equal %v", payloads[0], payloads[1], bytes.Equal(payloads[2], big))
		}
	}
}

// idle is called once the messages taken so far may be handed on: before
// the connection reads the socket again (here: with half a packet in its
// buffer, whose other half the peer has not sent yet), before it hands a
// packet to paho, and before it returns an error; never between the
// messages one read brought.
func TestBufferedConnIdle(t *testing.T) {
	b, peer := tcpPair(t)
	var (
		events []string // publish and idle run on the reading goroutine
		idle   = make(chan []string, 4)
	)
	b.publish = func(m paho.Message) { events = append(events, string(m.Payload())) }
	b.idle = func() {
		events = append(events, "IDLE")
		idle <- append([]string(nil), events...)
	}
	var wire bytes.Buffer
	for _, v := range []string{"a", "b", "c", "d"} {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Payload = "line/v", []byte(v)
		if err := p.Write(&wire); err != nil {
			t.Fatal(err)
		}
	}
	if err := packets.NewControlPacket(packets.Pingresp).Write(&wire); err != nil {
		t.Fatal(err)
	}
	w := wire.Bytes()
	half := len(w) - 2 - 5 // "d" is 11 bytes; the PINGRESP 2
	if _, err := peer.Write(w[:half]); err != nil {
		t.Fatal(err)
	}
	type result struct {
		cp  packets.ControlPacket
		err error
	}
	read := make(chan result, 2)
	go func() {
		for range 2 {
			cp, err := packets.ReadPacket(b)
			read <- result{cp, err}
		}
	}()
	wait := func(want string) {
		t.Helper()
		select {
		case got := <-idle:
			if fmt.Sprint(got) != want {
				t.Fatalf("at idle: %v, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("idle not called; want %s", want)
		}
	}
	wait("[a b c IDLE]") // before reading the rest of "d"
	if _, err := peer.Write(w[half:]); err != nil {
		t.Fatal(err)
	}
	wait("[a b c IDLE d IDLE]") // before the PINGRESP goes to paho
	if r := <-read; r.err != nil {
		t.Fatalf("read: %v; want the PINGRESP", r.err)
	} else if _, ok := r.cp.(*packets.PingrespPacket); !ok {
		t.Fatalf("read %v, %v; want the PINGRESP", r.cp, r.err)
	}
	peer.Close()
	if r := <-read; r.err == nil {
		t.Fatalf("read %v after the peer closed", r.cp)
	}
	select {
	case got := <-idle:
		t.Fatalf("idle called with nothing taken: %v", got)
	default:
	}

	// A message, then a malformed packet in the same read: the message is
	// handed on before the error goes to paho.
	b, peer = tcpPair(t)
	events = nil
	b.publish = func(m paho.Message) { events = append(events, string(m.Payload())) }
	b.idle = func() { events = append(events, "IDLE") }
	wire.Reset()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Payload = "line/v", []byte("e")
	if err := p.Write(&wire); err != nil {
		t.Fatal(err)
	}
	wire.Write([]byte{0x30, 0x03, 0x00, 0x05, 'a'}) // a topic longer than the packet
	if _, err := peer.Write(wire.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := packets.ReadPacket(b); !errors.Is(err, errBadPacket) {
		t.Fatalf("ReadPacket: %v, want %v", err, errBadPacket)
	}
	if fmt.Sprint(events) != "[e IDLE]" {
		t.Errorf("before the error: %v, want [e IDLE]", events)
	}
}

// The topic cache gives the same entry for a topic seen before, and none
// once it holds maxTopics (handle then matches the topic itself).
func TestBufferedConnTopicCache(t *testing.T) {
	b := &bufferedConn{}
	first := b.topic([]byte("line/0"))
	if first == nil || first.topic != "line/0" || b.topic([]byte("line/0")) != first {
		t.Fatalf("entry %+v not kept", first)
	}
	for i := 1; i < maxTopics; i++ {
		if b.topic([]byte(fmt.Sprintf("line/%d", i))) == nil {
			t.Fatalf("topic %d not cached", i)
		}
	}
	if r := b.topic([]byte("line/over")); r != nil {
		t.Fatalf("topic %d cached: %+v", maxTopics+1, r)
	}
	if b.topic([]byte("line/0")) != first {
		t.Fatal("a cached topic lost once the cache is full")
	}
}

// A QoS 0 PUBLISH that is not MQTT fails the read, and so the connection
// (paho reconnects); publish never sees it.
func TestBufferedConnBadPublish(t *testing.T) {
	for name, wire := range map[string][]byte{
		"topic longer than the packet": {0x30, 0x03, 0x00, 0x05, 'a'},
		"no topic length":              {0x30, 0x01, 0x00},
		"five length bytes":            {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			b, peer := tcpPair(t)
			b.publish = func(m paho.Message) { t.Errorf("publish got %q", m.Topic()) }
			go peer.Write(wire)
			if _, err := packets.ReadPacket(b); !errors.Is(err, errBadPacket) {
				t.Fatalf("ReadPacket: %v, want %v", err, errBadPacket)
			}
		})
	}
}

// The QoS 0 connection asks for quick acknowledgements on TCP, plain or
// under TLS, and reads through unchanged; on anything else it reads as is.
func TestQuickAckReader(t *testing.T) {
	raw, peer := tcpPair(t)
	q := quickAckReader(raw.Conn)
	if runtime.GOOS != "linux" {
		if q != nil {
			t.Fatal("quick acknowledgements outside Linux")
		}
		return
	}
	if q == nil {
		t.Fatal("no quick acknowledgements on a TCP connection")
	}
	go peer.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(q, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	if quickAckReader(tls.Client(raw.Conn, &tls.Config{})) == nil {
		t.Error("no quick acknowledgements under TLS")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if quickAckReader(a) != nil {
		t.Error("quick acknowledgements on a pipe")
	}
}
