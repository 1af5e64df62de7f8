// Package app assembles the workbench-scheduler command: upstream kube-scheduler with the
// workbench plugins registered, plus the sandbox subcommand.
package app

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	// client-go's request and leader-election metrics on /metrics, as upstream's binary has them.
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	kubeschedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/version"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gang"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gpuaffinity"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/teampool"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/topologyspread"
)

// SchedulerName is the profile name pods opt in with (spec.schedulerName).
const SchedulerName = "workbench-scheduler"

// Registry is every workbench plugin. The binary, the sandbox, the integration tests and the
// benchmarks all take it from here.
func Registry() frameworkruntime.Registry {
	return frameworkruntime.Registry{
		gpuaffinity.Name:    gpuaffinity.New,
		topologyspread.Name: topologyspread.New,
		teampool.Name:       teampool.New,
		gang.Name:           gang.New,
	}
}

// PluginOptions registers every plugin of Registry with the kube-scheduler command.
func PluginOptions() []kubeschedulerapp.Option {
	var opts []kubeschedulerapp.Option
	for name, factory := range Registry() {
		opts = append(opts, kubeschedulerapp.WithPlugin(name, factory))
	}
	return opts
}

// NewCommand is upstream's kube-scheduler command, with our plugins, our --version, and the
// sandbox subcommand.
func NewCommand() *cobra.Command {
	cmd := kubeschedulerapp.NewSchedulerCommand(PluginOptions()...)
	cmd.Use = "workbench-scheduler"
	cmd.Short = "A Kubernetes scheduler for data-science and ML platforms"
	cmd.Long = `workbench-scheduler is the upstream kube-scheduler framework with plugins for
interactive data-science sessions, GPUs and team-owned node pools. Pods opt in with
spec.schedulerName: workbench-scheduler. Every kube-scheduler flag works unchanged.`
	upstreamRun := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		// Upstream would print the Kubernetes version; ours names the project and commit.
		if f := c.Flags().Lookup("version"); f != nil && f.Value.String() != "false" {
			fmt.Fprintln(c.OutOrStdout(), version.String())
			return nil
		}
		return upstreamRun(c, args)
	}
	// A typo in a flag deserves one line, not three hundred lines of usage.
	cmd.SilenceUsage = true
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	cmd.AddCommand(newSandboxCommand())
	return cmd
}

// Main runs the command and exits with its status.
func Main() {
	os.Exit(cli.Run(NewCommand()))
}
