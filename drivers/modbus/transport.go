package modbus

import (
	"fmt"
	"time"
)

// line is what the transport needs of a serial port; *serialport.Port has
// it. A Read that times out returns (0, nil); any error means the port is
// gone.
type line interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Flush() error
}

// portError is a failure of the port itself (unplugged), as opposed to
// a slave's: the poller gives the port back to serialport.Keep to reopen.
type portError struct{ err error }

func (e *portError) Error() string { return "serial port: " + e.err.Error() }
func (e *portError) Unwrap() error { return e.err }

// transport is a goburrow/modbus Transporter over our serial port. The
// library's own RTU transporter opens the port itself through
// goburrow/serial and reads with io.ReadFull, which treats the port's
// (0, nil) "no data yet" as a hang and cannot be handed a port that
// serialport.Keep reopens; so we move the bytes and the library frames them.
type transport struct {
	port    line
	timeout time.Duration // set per request by the poller
	buf     [256]byte     // the longest RTU frame
}

// Send writes one request frame and reads its answer: exactly as many bytes
// as ResponseLength says, within the timeout (wall time: it bounds real I/O,
// not the gateway's schedule). The answer's CRC is checked here so that a
// CRC error can be told from other failures (goburrow reports it only as
// text).
func (t *transport) Send(req []byte) ([]byte, error) {
	// A late answer to an earlier request that timed out must not be taken
	// for this one's.
	if err := t.port.Flush(); err != nil {
		return nil, &portError{err}
	}
	if _, err := t.port.Write(req); err != nil {
		return nil, &portError{err}
	}
	deadline := time.Now().Add(t.timeout)
	n, need := 0, rtuMinSize
	for n < need {
		if time.Now().After(deadline) {
			if n == 0 {
				return nil, ErrTimeout
			}
			return nil, fmt.Errorf("%w (%d of %d bytes came)", ErrTimeout, n, need)
		}
		m, err := t.port.Read(t.buf[n:need])
		if err != nil {
			return nil, &portError{err}
		}
		n += m
		if need, err = ResponseLength(req, t.buf[:n]); err != nil {
			return nil, err
		}
		if need > len(t.buf) {
			return nil, fmt.Errorf("%w: answer of %d bytes", ErrFrame, need)
		}
	}
	if err := CheckFrame(t.buf[:n]); err != nil {
		return nil, err
	}
	return append([]byte(nil), t.buf[:n]...), nil
}
