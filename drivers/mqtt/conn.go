package mqtt

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// paho reads each packet with three or four small reads (type, length
// bytes, body) and writes each packet with one write, straight on the
// connection: at 10,000 messages/s that is some 50,000 system calls a
// second, the largest part of the gateway's CPU time in a profile. The
// connection below reads through a buffer and lets packets written while
// the previous write is on its way go out together (the PUBACKs of one
// spool commit, typically), without delaying any.
//
// At QoS 0 paho's inbound path costs more than the reading itself: its
// reader, its comms goroutine and its router hand each message on through
// channels, three goroutine wake-ups a message. With publish set, the
// connection takes the QoS 0 PUBLISH packets out of what it reads and hands
// them to publish on the goroutine that reads (paho's reader), so a message
// goes from the socket buffer to the sink without changing goroutine; paho
// reads every other packet as before (CONNACK, SUBACK, PINGRESP, and any
// PUBLISH at QoS 1 or 2) and keeps the connection and the session. And
// once it has handled what one read brought, it calls idle (the driver
// hands the read's readings to the pipeline in one batch) and lets the
// next messages gather for a moment (coalesce) before it reads again.

// openConn is paho's OpenConnectionFunc for tcp:// and the TLS schemes.
// Other schemes (ws://, wss://, unix://), and any scheme while a proxy is
// configured in the environment, are left to paho's own. publish, if not
// nil, takes the QoS 0 messages (see above), and idle, if not nil, is
// called when the messages publish was given may be handed on (flush).
func openConn(timeout time.Duration, publish func(paho.Message), idle func()) paho.OpenConnectionFunc {
	return func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
		d := &net.Dialer{Timeout: timeout}
		var (
			c   net.Conn
			err error
		)
		switch {
		case !bufferedScheme[u.Scheme]:
			return nil, fmt.Errorf("mqtt: scheme %q has no buffered connection", u.Scheme)
		case o.TLSConfig != nil: // Secure sets one for every TLS url (tls.go)
			c, err = tls.DialWithDialer(d, "tcp", u.Host, o.TLSConfig)
		default:
			c, err = d.Dial("tcp", u.Host)
		}
		if err != nil {
			return nil, err
		}
		var src io.Reader = c
		if q := quickAckReader(c); q != nil && publish != nil {
			src = q // see coalesce
		}
		b := newBufferedConnFrom(c, src)
		b.publish, b.idle = publish, idle
		return b, nil
	}
}

// bufferedScheme are the schemes of mqtt.url openConn dials: all but the
// websocket ones.
var bufferedScheme = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true}

// bufferedSchemes reports whether openConn dials u: its scheme is one of
// bufferedScheme's and no proxy is configured in the environment.
func bufferedSchemes(u *url.URL) bool {
	if !bufferedScheme[u.Scheme] {
		return false
	}
	for _, v := range []string{"all_proxy", "ALL_PROXY"} {
		if os.Getenv(v) != "" {
			return false
		}
	}
	return true
}

const (
	readBuffer  = 32 << 10
	maxPending  = 256 << 10        // bytes Write takes before it waits for the connection
	flushWithin = 10 * time.Second // a write the peer does not take in this time fails the connection
)

// bufferedConn is a net.Conn whose reads go through a buffer and whose
// writes are handed to one flushing goroutine: Write returns as soon as
// the bytes are queued; they go out in order, in as few writes as came in
// while the previous one was on its way. A failed write fails every later
// Write and closes the connection, so the reader sees it too. Close sends
// what is queued first (paho's DISCONNECT, the last PUBACKs).
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    *sync.Cond
	queued  []byte
	spare   []byte
	err     error
	closing bool
	kick    chan struct{}
	stopped chan struct{}
	once    sync.Once
	cerr    error

	// The reading side, used by one goroutine at a time (paho's).
	publish func(paho.Message) // takes QoS 0 PUBLISH packets; nil: paho reads everything
	// idle, if not nil, is called after publish took messages, before
	// anything that may wait: a read of the socket (the coalescing pause
	// first), an error returned, a packet handed to paho. The driver hands
	// on then the readings it held (Driver.flush); see handOn.
	idle   func()
	pass   int    // bytes of the current packet still to hand to paho
	big    []byte // a PUBLISH body longer than the read buffer
	msg    publishMsg
	took   bool // a PUBLISH was taken since idle was last called (handOn)
	topics map[string]*topicRef
}

// topicRef is a topic the connection has seen: its string, made once, and
// the sensors it feeds, which handle looks up the first time (routes
// are fixed for a driver's life, and a connection is one driver's).
type topicRef struct {
	topic    string
	targets  []*sensor
	resolved bool
}

// maxTopics bounds topic's cache: a gateway's sensors use a few thousand
// topics at most; beyond that (a wildcard over many), topics are copied
// and matched for each message.
const maxTopics = 4096

// topic is raw's entry in the cache, nil when the cache is full.
func (b *bufferedConn) topic(raw []byte) *topicRef {
	if t, ok := b.topics[string(raw)]; ok { // no copy for the lookup
		return t
	}
	if len(b.topics) >= maxTopics {
		return nil
	}
	if b.topics == nil {
		b.topics = make(map[string]*topicRef)
	}
	t := &topicRef{topic: string(raw)}
	b.topics[t.topic] = t
	return t
}

// coalesce is how long the reader waits, after it handled every QoS 0
// message a read brought, before it reads again: at 40,000 messages/s
// through mosquitto, one read (and one wake-up of the pipeline) per 80
// messages instead of one per one or two. Against reading at once, it
// cuts the gateway's CPU per reading to a third; against 1 ms, it kept up
// with 42,000-43,000/s instead of 39,000-41,000/s. It adds at most that
// to a reading's way, and nothing to one that comes after a quiet spell.
// The connection asks for quick TCP acknowledgements meanwhile
// (quickAckReader), or a broker sending with Nagle's algorithm would wait
// up to 40 ms for them.
const coalesce = 2 * time.Millisecond

// publishMsg is a QoS 0 message read by bufferedConn: its payload is valid
// only until publish returns.
type publishMsg struct {
	topic    string
	ref      *topicRef // nil when the connection's cache is full
	payload  []byte
	retained bool
}

func (*publishMsg) Duplicate() bool   { return false }
func (*publishMsg) Qos() byte         { return 0 }
func (m *publishMsg) Retained() bool  { return m.retained }
func (m *publishMsg) Topic() string   { return m.topic }
func (*publishMsg) MessageID() uint16 { return 0 }
func (m *publishMsg) Payload() []byte { return m.payload }
func (*publishMsg) Ack()              {}

var errConnClosed = errors.New("mqtt: connection closed")

func newBufferedConn(c net.Conn) *bufferedConn { return newBufferedConnFrom(c, c) }

// newBufferedConnFrom is newBufferedConn reading from src, which reads c.
func newBufferedConnFrom(c net.Conn, src io.Reader) *bufferedConn {
	b := &bufferedConn{Conn: c, r: bufio.NewReaderSize(src, readBuffer), kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	go b.flush()
	return b
}

// errBadPacket fails a connection whose peer sent what is not MQTT.
var errBadPacket = errors.New("mqtt: malformed packet from the broker")

// Read hands paho what it reads, but for the QoS 0 PUBLISH packets, which
// go to publish when it is set.
func (b *bufferedConn) Read(p []byte) (int, error) {
	if b.publish == nil {
		return b.r.Read(p)
	}
	for b.pass == 0 {
		n, err := b.nextPacket()
		if err != nil || n > 0 {
			b.handOn()
		}
		if err != nil {
			return 0, err
		}
		b.pass = n
	}
	if len(p) > b.pass {
		p = p[:b.pass]
	}
	n, err := b.r.Read(p)
	b.pass -= n
	return n, err
}

// nextPacket reads the fixed header of the next packet. A QoS 0 PUBLISH it
// reads whole, hands to publish and returns 0 for; for any other packet it
// returns the packet's size, header included, for Read to hand to paho
// untouched.
func (b *bufferedConn) nextPacket() (int, error) {
	if b.took && !b.packetBuffered() {
		// The next packet needs a read: hand on what was taken, and
		// if the buffer is empty, let messages gather before reading.
		b.handOn()
		if b.r.Buffered() == 0 {
			time.Sleep(coalesce)
		}
	}
	var (
		first           byte
		hlen, remaining int
	)
	for n := 2; hlen == 0; n++ { // a byte more at a time: a read must not wait for bytes of the next packet
		h, err := b.r.Peek(n)
		if err != nil {
			return 0, err
		}
		if hlen, remaining, err = fixedHeader(h); err != nil {
			return 0, err
		}
		first = h[0]
	}
	if first>>4 != 3 || first&0x06 != 0 { // not a PUBLISH at QoS 0
		return hlen + remaining, nil
	}
	if _, err := b.r.Discard(hlen); err != nil {
		return 0, err
	}
	var (
		body []byte
		err  error
	)
	if remaining <= b.r.Size() {
		body, err = b.r.Peek(remaining)
	} else {
		if cap(b.big) < remaining {
			b.big = make([]byte, remaining)
		}
		body = b.big[:remaining]
		_, err = io.ReadFull(b.r, body)
	}
	if err != nil {
		return 0, err
	}
	if len(body) < 2 || 2+int(binary.BigEndian.Uint16(body)) > len(body) {
		return 0, errBadPacket
	}
	end := 2 + int(binary.BigEndian.Uint16(body))
	b.msg = publishMsg{payload: body[end:], retained: first&1 != 0}
	if b.msg.ref = b.topic(body[2:end]); b.msg.ref != nil {
		b.msg.topic = b.msg.ref.topic
	} else {
		b.msg.topic = string(body[2:end])
	}
	b.publish(&b.msg)
	b.took = true
	b.msg.payload = nil
	if remaining <= b.r.Size() {
		_, err = b.r.Discard(remaining)
	} else if cap(b.big) > 1<<20 {
		b.big = nil // a rare large message does not stay in memory
	}
	return 0, err
}

// handOn calls idle once for the messages taken since the last time.
func (b *bufferedConn) handOn() {
	if b.took && b.idle != nil {
		b.idle()
	}
	b.took = false
}

// packetBuffered reports whether a whole packet is in the read buffer, so
// that reading it does not touch the socket.
func (b *bufferedConn) packetBuffered() bool {
	h, _ := b.r.Peek(b.r.Buffered())
	hlen, remaining, err := fixedHeader(h)
	return err == nil && hlen > 0 && hlen+remaining <= len(h)
}

// fixedHeader decodes the start of a packet, h: the fixed header's length
// (the type byte and 1 to 4 bytes of remaining length, 7 bits each) and
// the remaining length. hlen is 0 when h does not hold the whole header
// yet; a fourth length byte that says another follows is errBadPacket.
func fixedHeader(h []byte) (hlen, remaining int, err error) {
	for i := 1; i < len(h); i++ {
		remaining |= int(h[i]&0x7f) << (7 * (i - 1))
		switch {
		case h[i]&0x80 == 0:
			return i + 1, remaining, nil
		case i == 4:
			return 0, 0, errBadPacket
		}
	}
	return 0, 0, nil
}

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.queued) >= maxPending && b.err == nil && !b.closing {
		b.cond.Wait()
	}
	switch {
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return 0, err
	case b.closing:
		b.mu.Unlock()
		return 0, errConnClosed
	}
	b.queued = append(b.queued, p...)
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// flush writes what is queued until the connection closes or fails.
func (b *bufferedConn) flush() {
	defer close(b.stopped)
	for {
		b.mu.Lock()
		for len(b.queued) == 0 && !b.closing {
			b.mu.Unlock()
			<-b.kick
			b.mu.Lock()
		}
		if len(b.queued) == 0 { // closing, all sent
			b.mu.Unlock()
			return
		}
		out := b.queued
		b.queued, b.spare = b.spare[:0], nil
		b.mu.Unlock()

		_ = b.Conn.SetWriteDeadline(time.Now().Add(flushWithin))
		_, err := b.Conn.Write(out)

		b.mu.Lock()
		if cap(out) <= maxPending {
			b.spare = out[:0]
		}
		if err != nil {
			b.err = err
			b.queued = nil
		}
		b.cond.Broadcast()
		b.mu.Unlock()
		if err != nil {
			// The reader learns of it from the closed connection.
			_ = b.Conn.Close()
			return
		}
	}
}

// SetWriteDeadline is the flusher's business: a write that waits longer
// than flushWithin fails the connection.
func (b *bufferedConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only (see SetWriteDeadline).
func (b *bufferedConn) SetDeadline(t time.Time) error { return b.Conn.SetReadDeadline(t) }

// closeFlush is how long Close waits for what is queued to go out before
// it closes the connection anyway (a peer that stopped reading).
const closeFlush = 2 * time.Second

// Close sends what is queued (within closeFlush), then closes.
func (b *bufferedConn) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.cond.Broadcast()
		b.mu.Unlock()
		select {
		case b.kick <- struct{}{}:
		default:
		}
		t := time.NewTimer(closeFlush)
		defer t.Stop()
		select {
		case <-b.stopped:
		case <-t.C:
		}
		// Closing also ends a write the peer does not take.
		b.cerr = b.Conn.Close()
		<-b.stopped
	})
	return b.cerr
}
