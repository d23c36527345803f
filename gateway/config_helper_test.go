package gateway

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
)

// loadYAML writes yaml to dir/gw.yaml and loads it as edgegw run would.
func loadYAML(tb testing.TB, dir, yaml string) *config.Config {
	tb.Helper()
	p := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}
