package mqtttest

import (
	"bytes"
	"sync"
)

// LogBuffer collects log output (or a child process's stderr) written from
// several goroutines, for a test to show or search afterwards.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
