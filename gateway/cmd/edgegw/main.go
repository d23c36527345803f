// Command edgegw is the edge gateway daemon and its tools:
//
//	edgegw run   --config FILE   run the gateway
//	edgegw check --config FILE   validate a config and print the resolved sensor map
//	edgegw tail  [flags]         print a Kafka topic as readable lines
//	edgegw version               print version, commit and GOOS/GOARCH
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"

	_ "github.com/edgegw/edgegw/drivers/all" // every driver registers itself
)

// Set by the build (-ldflags "-X main.version=... -X main.commit=...").
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `edgegw: the edge gateway for production lines

usage:
  edgegw run   --config FILE      run the gateway
  edgegw check --config FILE [--flatten]
                                  validate FILE (and the files it includes); print the resolved
                                  sensors (exit 0) or every problem (exit 2); --flatten prints
                                  FILE with its includes resolved, as one file to install
  edgegw tail  [--brokers H:P] [--topic T] [--from-beginning] [--count N]
                                  print a Kafka topic as readable lines
  edgegw version                  print version, commit and platform
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "tail":
		return cmdTail(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "edgegw %s commit %s %s/%s %s\n", version, commit, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "edgegw: unknown command %q\n\n%s", args[0], usage)
	return 2
}
