package gpio

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// counterFile keeps a counter's total across restarts: one decimal number
// in <state dir>/gpio-<sensor>.count. It is replaced atomically (a temp
// file synced, then renamed over it), so a power loss leaves the old total
// or the new one, never a torn file. Writes happen at most once per
// publication interval and at stop, to spare the SD card.
type counterFile struct {
	path string // "" without a state directory: nothing is kept
}

func newCounterFile(dir, sensor string) *counterFile {
	if dir == "" {
		return &counterFile{}
	}
	return &counterFile{path: filepath.Join(dir, "gpio-"+sensor+".count")}
}

// load returns the saved total; 0 without error when there is none yet.
func (f *counterFile) load() (int64, error) {
	if f.path == "" {
		return 0, nil
	}
	b, err := os.ReadFile(f.path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: not a counter total: %q", f.path, b)
	}
	return n, nil
}

func (f *counterFile) save(total int64) error {
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: already gone
	if _, err := tmp.WriteString(strconv.FormatInt(total, 10) + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return err
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
