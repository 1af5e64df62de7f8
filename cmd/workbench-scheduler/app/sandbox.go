package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/controlplane"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/sandbox"
)

type sandboxOptions struct {
	kubeconfigOut string
	scenario      string
	keep          bool
	config        string
	wait          time.Duration
	logFile       string
}

func newSandboxCommand() *cobra.Command {
	o := &sandboxOptions{}
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run etcd, kube-apiserver and workbench-scheduler in this process, seed a scenario and report placements",
		Long: `sandbox runs a whole control plane in one process (embedded etcd, the real
kube-apiserver, the Job/Deployment/ReplicaSet controllers and workbench-scheduler started from
the shipped configuration), applies a scenario, waits until every pod is bound or reported
unschedulable, and prints a placement report. With --keep it then serves until interrupted.`,
		Args: cobra.NoArgs,
		// The root command's pre-run sets kube-scheduler feature gates from its own flags.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		SilenceUsage:      true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runSandbox(ctx, o, cmd.OutOrStdout())
		},
	}
	// The root's help lists kube-scheduler's flags; the sandbox has its own.
	plain := &cobra.Command{}
	cmd.SetHelpFunc(plain.HelpFunc())
	cmd.SetUsageFunc(plain.UsageFunc())
	fs := cmd.Flags()
	fs.StringVar(&o.kubeconfigOut, "kubeconfig-out", "", "Write a kubeconfig for the sandbox apiserver here once the scheduler is leading and ready.")
	fs.StringVar(&o.scenario, "scenario", "demo", "What to seed: demo, none, or a path to a YAML stream of objects.")
	fs.BoolVar(&o.keep, "keep", false, "After the report, keep serving until SIGINT or SIGTERM.")
	fs.StringVar(&o.config, "config", "", "KubeSchedulerConfiguration file (default: the one manifests/ ships).")
	fs.DurationVar(&o.wait, "wait", 90*time.Second, "How long to wait for the scheduler to decide every pod.")
	fs.StringVar(&o.logFile, "log-file", "", "Write control-plane and scheduler logs here (default: discarded; startup of an in-process apiserver logs harmless errors).")
	return cmd
}

func runSandbox(ctx context.Context, o *sandboxOptions, out io.Writer) error {
	// Load everything the user gave before starting anything, so bad input fails fast.
	scenario, err := sandbox.LoadScenario(o.scenario)
	if err != nil {
		return err
	}
	configData := manifests.SchedulerConfig
	if o.config != "" {
		if configData, err = os.ReadFile(o.config); err != nil {
			return fmt.Errorf("reading --config: %w", err)
		}
	}
	if err := quietLogs(o.logFile); err != nil {
		return err
	}
	defer klog.Flush()

	workDir, err := os.MkdirTemp("", "workbench-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)

	start := time.Now()
	cp, err := controlplane.Start(ctx)
	if err != nil {
		return err
	}
	defer cp.Stop()
	fmt.Fprintf(out, "Control plane up in %.1fs (apiserver %s)\n", time.Since(start).Seconds(), cp.Config.Host)

	kubeconfigPath := filepath.Join(workDir, "kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfigPath); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	sched, err := StartFromConfig(ctx, cp.Client, configData, kubeconfigPath, workDir,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port))
	if err != nil {
		return fmt.Errorf("starting the scheduler: %w", err)
	}
	defer sched.Stop()

	controllers, err := sandbox.StartControllers(ctx, cp.Client)
	if err != nil {
		return err
	}
	defer controllers.Stop()

	if o.kubeconfigOut != "" {
		if err := cp.WriteKubeconfig(o.kubeconfigOut); err != nil {
			return err
		}
		defer os.Remove(o.kubeconfigOut)
		fmt.Fprintf(out, "Kubeconfig: %s\n", o.kubeconfigOut)
	}

	if err := sandbox.Apply(ctx, cp.Config, scenario); err != nil {
		return err
	}
	fmt.Fprintf(out, "Scenario %q applied: %d objects\n\n", scenario.Name, len(scenario.Objects))
	outcomes, waitErr := sandbox.WaitForDecisions(ctx, cp.Client, metav1.NamespaceAll, SchedulerName, sandbox.ExpectedPods(scenario), o.wait)
	if ctx.Err() != nil {
		return nil
	}
	nodes, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	sandbox.WriteReport(out, scenario.Name, nodes.Items, outcomes, waitErr)
	if err := writeTeamReport(ctx, cp, nodes.Items, outcomes, out); err != nil {
		return err
	}

	if o.keep {
		fmt.Fprintln(out, "\nServing until SIGINT or SIGTERM.")
		<-ctx.Done()
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// quietLogs keeps the report readable: component logs go to --log-file or nowhere. Failures
// that matter still reach the user as the returned error.
func quietLogs(logFile string) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if logFile != "" {
		return errors.Join(fs.Set("logtostderr", "false"), fs.Set("log_file", logFile), fs.Set("alsologtostderr", "false"))
	}
	return errors.Join(fs.Set("logtostderr", "false"), fs.Set("stderrthreshold", "FATAL"), fs.Set("log_file", os.DevNull))
}

// writeTeamReport adds the placements per team and tier when the scenario has ResourcePools.
func writeTeamReport(ctx context.Context, cp *controlplane.ControlPlane, nodes []corev1.Node, outcomes []sandbox.Outcome, out io.Writer) error {
	cfg := rest.CopyConfig(cp.Config)
	// Custom resources do not speak protobuf.
	cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pools, err := client.WorkbenchV1alpha1().ResourcePools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing ResourcePools: %w", err)
	}
	namespaces, err := cp.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	sandbox.WriteTeamReport(out, pools.Items, namespaces.Items, nodes, outcomes)
	return nil
}
