package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
)

func configFlag(name string, args []string, stderr io.Writer, more ...func(*flag.FlagSet)) (string, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "gateway config file (YAML)")
	for _, m := range more {
		m(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", 2
	}
	if *path == "" {
		fmt.Fprintf(stderr, "edgegw %s: --config FILE is required\n", name)
		return "", 2
	}
	return *path, 0
}

// load reads and checks a config; it prints the problems and returns the
// exit code when the file is unusable.
func load(path string, stderr io.Writer) (*config.Config, int) {
	c, err := gateway.Load(path)
	if err == nil {
		return c, 0
	}
	if gateway.IsInvalid(err) {
		fmt.Fprintln(stderr, err)
		return nil, 2
	}
	fmt.Fprintf(stderr, "edgegw: %v\n", err)
	return nil, 1
}

// gcPercent is the gateway's GOGC unless the environment sets one.
const gcPercent = 50

func cmdRun(args []string, stderr io.Writer) int {
	path, code := configFlag("run", args, stderr)
	if code != 0 {
		return code
	}
	if os.Getenv("GOGC") == "" {
		// The heap grows to 1.5 times what is live before a collection
		// rather than Go's default 2: a Pi Zero 2 W has 512 MB for
		// everything, and at 10,000 readings/s this keeps the gateway's
		// resident memory under 40 MB for a few per cent more CPU
		// (BENCHMARKS.md). GOGC in the environment still decides.
		debug.SetGCPercent(gcPercent)
	}
	c, code := load(path, stderr)
	if code != 0 {
		return code
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))
	slog.SetDefault(logger)
	g, err := gateway.New(c, gateway.Options{Logger: logger, Version: version, ConfigPath: path})
	if err != nil {
		logger.Error("cannot start", "config", path, "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads sensors, rules and machines (so does a change of the
	// file, which the gateway watches).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading", "config", path)
				_ = g.Reload(path)
			}
		}
	}()
	if err := g.Run(ctx); err != nil {
		logger.Error("exited with an error", "err", err)
		return 1
	}
	return 0
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("EDGEGW_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	var flatten bool
	path, code := configFlag("check", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&flatten, "flatten", false, "print the config with its includes resolved, as one file")
	})
	if code != 0 {
		return code
	}
	c, code := load(path, stderr)
	if code != 0 {
		return code
	}
	if flatten {
		b, err := config.Flatten(path)
		if err != nil {
			fmt.Fprintf(stderr, "edgegw: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "# %s flattened by edgegw check --flatten (%s)\n", filepath.Base(path), version)
		_, _ = stdout.Write(b)
		return 0
	}
	// The resolved sensor map: every sensor by id with its defaults filled
	// in, only the fields that are set.
	sensors := map[string]map[string]any{}
	for _, s := range c.Sensors {
		var m map[string]any
		b, _ := yaml.Marshal(s)
		_ = yaml.Unmarshal(b, &m)
		for k, v := range m {
			if isZero(v) {
				delete(m, k)
			}
		}
		delete(m, "id")
		sensors[s.ID] = m
	}
	ids := make([]string, 0, len(sensors))
	for id := range sensors {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintf(stdout, "# %s: valid; gateway %s, %d sensors, %d rules, %d machines\n",
		path, c.Gateway.ID, len(c.Sensors), len(c.Rules), len(c.Machines))
	for _, inc := range c.Includes {
		fmt.Fprintf(stdout, "# includes %s\n", inc)
	}
	out := yaml.Node{Kind: yaml.MappingNode}
	for _, id := range ids {
		var v yaml.Node
		_ = v.Encode(sensors[id])
		v.Style = yaml.FlowStyle
		out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: id}, &v)
	}
	doc := yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "sensors"}, &out}}
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	_ = enc.Encode(&doc)
	_ = enc.Close()
	return 0
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == "" || x == "0s"
	case int:
		return x == 0
	case float64:
		return x == 0
	case bool:
		return !x
	}
	return false
}
