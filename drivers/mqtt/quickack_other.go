//go:build !linux

package mqtt

import (
	"io"
	"net"
)

// quickAckReader is Linux's TCP_QUICKACK (quickack_linux.go); elsewhere the
// connection is read as it is.
func quickAckReader(net.Conn) io.Reader { return nil }
