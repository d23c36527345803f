package gateway

import (
	"errors"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/rules"
)

// Load reads a config file and checks all of it: the schema (config), each
// sensor's driver (drivers), and the rule and machine expressions (rules).
// An invalid file gives config.Problems, sorted by line, listing everything
// wrong at once.
func Load(path string) (*config.Config, error) {
	c, err := config.Load(path)
	if c == nil {
		return nil, err
	}
	var ps config.Problems
	if err != nil {
		var ok bool
		if ps, ok = config.AsProblems(err); !ok {
			return nil, err
		}
	}
	ps = append(ps, Check(c)...)
	if len(ps) > 0 {
		ps.Sort()
		return c, ps
	}
	return c, nil
}

// Check runs the checks that live outside the config package.
func Check(c *config.Config) config.Problems {
	ps := drivers.Check(c)
	return append(ps, rules.Check(c)...)
}

// IsInvalid reports whether err lists problems of the config (exit 2) rather
// than a failure to read it.
func IsInvalid(err error) bool {
	var ps config.Problems
	return errors.As(err, &ps)
}
