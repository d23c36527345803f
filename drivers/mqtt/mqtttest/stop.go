package mqtttest

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Stop closes a mochi server without the deadlock of Server.Close in
// v2.7.9: Close disconnects clients through Clients.GetByListener, which
// takes the clients' read lock and, holding it, calls Clients.Len, which
// takes it again. A client attaching or leaving at that moment (a writer
// waiting on the lock) blocks both for ever, and the test run with them.
//
// Stop closes the listeners with its own client closer, which disconnects
// clients from a snapshot (one read lock, not nested) and keeps doing so
// for stragglers accepted meanwhile; the listeners are then marked closed,
// so Close does not walk the clients again.
func Stop(srv *mqtt.Server) {
	done := make(chan struct{})
	disconnectAll := func() {
		for _, cl := range srv.Clients.GetAll() {
			if !cl.Closed() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	}
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				disconnectAll()
			}
		}
	}()
	srv.Listeners.CloseAll(func(string) { disconnectAll() })
	close(done)
	_ = srv.Close()
}
