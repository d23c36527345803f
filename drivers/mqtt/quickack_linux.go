//go:build linux

package mqtt

import (
	"crypto/tls"
	"io"
	"net"
	"syscall"
)

// quickAckReader reads c and, after every read, asks the kernel to
// acknowledge what arrives next at once (TCP_QUICKACK, which the kernel
// turns off again by itself). Without it, a broker that sends with Nagle's
// algorithm on (mosquitto's default) holds a small message until its last
// segment is acknowledged, and a reader that waits between reads (coalesce)
// lets the kernel delay that acknowledgement by up to 40 ms. nil if c is
// not TCP underneath.
func quickAckReader(c net.Conn) io.Reader {
	var tcp *net.TCPConn
	switch x := c.(type) {
	case *net.TCPConn:
		tcp = x
	case *tls.Conn:
		tcp, _ = x.NetConn().(*net.TCPConn)
	}
	if tcp == nil {
		return nil
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return &quickAck{c: c, rc: rc}
}

type quickAck struct {
	c  net.Conn
	rc syscall.RawConn
}

func (q *quickAck) Read(p []byte) (int, error) {
	n, err := q.c.Read(p)
	_ = q.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return n, err
}
