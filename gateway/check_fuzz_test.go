package gateway_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
)

// FuzzConfig feeds any bytes to the config loader and every check behind
// `edgegw check` (schema, drivers, rule and machine expressions): it never
// panics or hangs, and each problem it reports names the file and a line
// inside it. Seeds: every file under firmware-config/.
func FuzzConfig(f *testing.F) {
	_ = filepath.WalkDir("../firmware-config", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	f.Add([]byte("gateway: {id: gw}\nuplink: {kafka: {brokers: [\"k:1\"]}}\nrules:\n  - {name: r, expr: \"avg(x, \\\"1m\\\") > 1\"}\n"))
	// Includes resolve in this directory, where nothing else is. One for
	// the whole run: a directory per input would make the inputs slow.
	dir := f.TempDir()
	file := filepath.Join(dir, "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a finding too: the fuzzer keeps the input of a worker
		// that panics.
		hung := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("config loader hung on %q", data)) })
		defer hung.Stop()
		c, err := config.Parse(file, data)
		var ps config.Problems
		if err != nil {
			var ok bool
			if ps, ok = config.AsProblems(err); !ok {
				t.Fatalf("Parse error that is not Problems: %v", err)
			}
		}
		if c != nil && len(ps) == 0 {
			ps = gateway.Check(c)
		}
		// YAML breaks lines at CR and at NEL, LS and PS too, not only at
		// LF ("\r0" reports line 2, found by this fuzzer): count them all
		// for the bound (a CRLF counts twice, which only loosens it).
		lines := 1
		for _, r := range yamlText(data) {
			switch r {
			case '\n', '\r', '\u0085', '\u2028', '\u2029':
				lines++
			}
		}
		for _, p := range ps {
			if p.File != file {
				// An include of an existing file (/etc/hostname, say):
				// its problems name it.
				if c == nil || !slices.Contains(c.Includes, p.File) {
					t.Errorf("problem in a file neither read nor included: %s", p)
				}
				continue
			}
			if p.Line < 1 || p.Line > lines {
				t.Errorf("problem outside the file (%d lines): %s", lines, p)
			}
			if strings.TrimSpace(p.Msg) == "" {
				t.Errorf("problem without a message: %+v", p)
			}
		}
	})
}

// yamlText is data as the YAML parser reads it: UTF-16 when it starts with
// a UTF-16 byte order mark (a file saved by Windows Notepad, say; found by
// this fuzzer: "\xfe\xff (000000" reports line 2), else UTF-8.
func yamlText(data []byte) string {
	if len(data) < 2 {
		return string(data)
	}
	var order binary.ByteOrder
	switch {
	case data[0] == 0xfe && data[1] == 0xff:
		order = binary.BigEndian
	case data[0] == 0xff && data[1] == 0xfe:
		order = binary.LittleEndian
	default:
		return string(data)
	}
	u := make([]uint16, 0, len(data)/2)
	for i := 2; i+1 < len(data); i += 2 {
		u = append(u, order.Uint16(data[i:]))
	}
	return string(utf16.Decode(u))
}
