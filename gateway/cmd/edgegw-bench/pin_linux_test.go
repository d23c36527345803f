package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// allowedCPUs is the CPUs this process may run on.
func allowedCPUs(t *testing.T, pid int) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		t.Fatal(err)
	}
	return cpuList(&set)
}

// TestPinBroker: with -broker-cpu, the broker runs on its CPU alone, and
// this process, with everything it starts, on the others.
func TestPinBroker(t *testing.T) {
	if cpu := os.Getenv("EDGEGW_BENCH_PIN_HELPER"); cpu != "" {
		// In a process of its own, so that the test binary keeps its CPUs.
		var c int
		fmt.Sscan(cpu, &c)
		left, err := pinHarness(c)
		if err != nil {
			t.Fatal(err)
		}
		child := exec.Command("sleep", "5")
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		defer child.Process.Kill()
		fmt.Printf("left %v child %v self %v\n", left, allowedCPUs(t, child.Process.Pid), allowedCPUs(t, os.Getpid()))
		return
	}
	cpus := allowedCPUs(t, 0)
	if len(cpus) < 2 {
		t.Skip("one CPU: nothing to give the broker alone")
	}
	broker := cpus[len(cpus)-1]
	others := fmt.Sprint(cpus[:len(cpus)-1])
	cmd := exec.Command(os.Args[0], "-test.run=^TestPinBroker$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("EDGEGW_BENCH_PIN_HELPER=%d", broker))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("left %s child %s self %s", others, others, others); !strings.Contains(string(out), want) {
		t.Errorf("helper said:\n%s\nwant %q", out, want)
	}

	// The broker's side, on a process of its own.
	child := exec.Command("sleep", "5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if err := pinBrokerPID(child.Process.Pid, broker); err != nil {
		t.Fatal(err)
	}
	if got := allowedCPUs(t, child.Process.Pid); len(got) != 1 || got[0] != broker {
		t.Errorf("broker on CPUs %v, want [%d]", got, broker)
	}

	if _, err := pinHarness(1023); err == nil || !strings.Contains(err.Error(), "not a CPU this process may use") {
		t.Errorf("CPU 1023: %v", err)
	}
}
