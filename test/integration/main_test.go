// Package integration tests workbench-scheduler against a real kube-apiserver and etcd running in
// this process, with the scheduler started through the binary's own Setup and Run.
package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/klog/v2"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/controlplane"
)

// runMainEnv makes this test binary act as the workbench-scheduler binary, so that exit codes
// and messages are tested without linking a second 170 MB executable.
const runMainEnv = "WORKBENCH_TEST_RUN_MAIN"

// cp is the control plane every test in this package shares: starting one costs ~3 s.
var cp *controlplane.ControlPlane

// kubeconfigPath reaches cp.
var kubeconfigPath string

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"workbench-scheduler"}, os.Args[1:]...)
		app.Main()
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	quietLogs()
	var err error
	cp, err = controlplane.Start(klog.NewContext(context.Background(), klog.Background()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane: %v\n", err)
		return 1
	}
	defer cp.Stop()
	dir, err := os.MkdirTemp("", "workbench-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfigPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// quietLogs discards component logs unless WORKBENCH_TEST_LOGS names a file: an in-process
// apiserver logs thousands of lines that would bury the test output.
func quietLogs() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	dest := os.Getenv("WORKBENCH_TEST_LOGS")
	if dest == "" {
		dest = os.DevNull
	}
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	_ = fs.Set("log_file", dest)
}
