package app

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	pgclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/controlplane"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/informerobj"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/sandbox"
)

type sandboxOptions struct {
	kubeconfigOut string
	force         bool
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
			ctx, aborts, stop := handleSignals(cmd.ErrOrStderr())
			defer stop()
			return runSandbox(ctx, o, cmd.OutOrStdout(), aborts)
		},
	}
	// The root's help lists kube-scheduler's flags; the sandbox has its own.
	plain := &cobra.Command{}
	cmd.SetHelpFunc(plain.HelpFunc())
	cmd.SetUsageFunc(plain.UsageFunc())
	fs := cmd.Flags()
	fs.StringVar(&o.kubeconfigOut, "kubeconfig-out", "", "Write a kubeconfig for the sandbox apiserver here once the scheduler is leading and ready; it is removed on exit. An existing file is refused unless --force is given.")
	fs.BoolVar(&o.force, "force", false, "Let --kubeconfig-out overwrite an existing file (which is then removed on exit like a new one).")
	fs.StringVar(&o.scenario, "scenario", "demo", "What to seed: demo, none, or a path to a YAML stream of objects.")
	fs.BoolVar(&o.keep, "keep", false, "After the report, keep serving until SIGINT or SIGTERM.")
	fs.StringVar(&o.config, "config", "", "KubeSchedulerConfiguration file (default: the one manifests/ ships).")
	fs.DurationVar(&o.wait, "wait", 90*time.Second, "How long to wait for the scheduler to decide every pod.")
	fs.StringVar(&o.logFile, "log-file", "", "Write control-plane and scheduler logs here (default: discarded; startup of an in-process apiserver logs harmless errors).")
	return cmd
}

func runSandbox(ctx context.Context, o *sandboxOptions, out io.Writer, aborts *abortHooks) error {
	// Load everything the user gave before starting anything, so bad input fails fast.
	scenario, err := sandbox.LoadScenario(o.scenario)
	if err != nil {
		return err
	}
	if o.kubeconfigOut != "" {
		if err := checkKubeconfigOut(o.kubeconfigOut, o.force); err != nil {
			return err
		}
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
		return startError(ctx, "the control plane", err)
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
		return startError(ctx, "the scheduler", err)
	}
	defer sched.Stop()

	controllers, err := sandbox.StartControllers(ctx, cp.Client)
	if err != nil {
		return startError(ctx, "the controllers", err)
	}
	defer controllers.Stop()

	if o.kubeconfigOut != "" {
		data, err := cp.Kubeconfig()
		if err != nil {
			return err
		}
		written, err := writeKubeconfigOut(o.kubeconfigOut, data, o.force)
		if err != nil {
			return err
		}
		// Removed first on the way out, and even when a second signal aborts the teardown: a
		// kubeconfig naming a dead apiserver is worse than none.
		removeOnce := sync.OnceFunc(func() {
			if msg := written.remove(); msg != "" {
				fmt.Fprintln(out, msg)
			}
		})
		aborts.add(removeOnce)
		defer removeOnce()
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
	// A signal while the report is read is a shutdown, not a failure: the report stops there.
	interrupted := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	nodes, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return interrupted(err)
	}
	sandbox.WriteReport(out, scenario.Name, nodes.Items, outcomes, waitErr)
	if err := writeTeamReport(ctx, cp, nodes.Items, outcomes, out); err != nil {
		return interrupted(err)
	}
	if err := writeGangReport(ctx, cp, outcomes, out); err != nil {
		return interrupted(err)
	}

	if o.keep {
		fmt.Fprintln(out, "\nServing until SIGINT or SIGTERM.")
		<-ctx.Done()
	}
	return nil
}

// startError reports a start interrupted by a signal as such, not as whatever the
// interrupted step made of its cancelled context.
func startError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("sandbox start cancelled (%v) while starting %s", context.Cause(ctx), what)
	}
	return fmt.Errorf("starting %s: %w", what, err)
}

// abortHooks are what must still happen when a second signal abandons the teardown: cheap,
// local clean-ups only.
type abortHooks struct {
	mu    sync.Mutex
	hooks []func()
}

func (a *abortHooks) add(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hooks = append(a.hooks, f)
}

func (a *abortHooks) run() {
	a.mu.Lock()
	hooks := slices.Clone(a.hooks)
	a.mu.Unlock()
	for _, f := range slices.Backward(hooks) {
		f()
	}
}

// handleSignals turns the first SIGINT or SIGTERM into a cancelled context, for an orderly
// teardown, and a second into an immediate exit, for a teardown that hangs or is not wanted.
// stop ends the handling; after it, signals have their default effect again.
func handleSignals(errOut io.Writer) (ctx context.Context, aborts *abortHooks, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	aborts = &abortHooks{}
	// Buffered: the runtime drops a signal that finds the channel full.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var sig os.Signal
		select {
		case sig = <-signals:
		case <-done:
			return
		}
		fmt.Fprintf(errOut, "\nReceived %s: shutting down. Send it again to abort the teardown.\n", signalName(sig))
		cancel(fmt.Errorf("received %s", signalName(sig)))
		select {
		case sig = <-signals:
		case <-done:
			return
		}
		aborts.run()
		fmt.Fprintf(errOut, "Received %s again: teardown aborted; temporary files (workbench-sandbox-*, workbench-etcd-*) may remain in %s\n", signalName(sig), os.TempDir())
		os.Exit(exitCode(sig))
	}()
	return ctx, aborts, func() {
		signal.Stop(signals)
		close(done)
		cancel(context.Canceled)
	}
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// exitCode is the shell's convention for a process ended by sig: 128 + its number.
func exitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

// checkKubeconfigOut refuses, before anything starts, a --kubeconfig-out the sandbox may not
// write: an existing file without --force, a directory or device, or a path in no directory.
func checkKubeconfigOut(path string, force bool) error {
	info, err := os.Lstat(path)
	switch {
	case err == nil && !info.Mode().IsRegular() && info.Mode()&fs.ModeSymlink == 0:
		// Renaming over /dev/null, say, would replace the device.
		return fmt.Errorf("--kubeconfig-out %s is not a regular file", path)
	case err == nil && !force:
		return fmt.Errorf("--kubeconfig-out %s already exists: pass --force to overwrite it (the sandbox removes the file it wrote when it exits)", path)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--kubeconfig-out: %w", err)
	}
	if info, err := os.Stat(filepath.Dir(path)); err != nil || !info.IsDir() {
		return fmt.Errorf("--kubeconfig-out %s: %s is not a directory", path, filepath.Dir(path))
	}
	return nil
}

// kubeconfigOut is the kubeconfig the sandbox wrote for the user.
type kubeconfigOut struct {
	path string
	data []byte
	info os.FileInfo
}

// writeKubeconfigOut writes data to path atomically, so that a reader never sees half a file.
// Without force it never replaces a file: one that appeared since checkKubeconfigOut is an error.
func writeKubeconfigOut(path string, data []byte, force bool) (*kubeconfigOut, error) {
	// Next to path, so that the final rename or link stays on one file system.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	if force {
		err = os.Rename(tmp.Name(), path)
	} else if err = os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		// A hard link, unlike a rename, fails if path exists. Where there are no hard
		// links, an exclusive create keeps that promise but not atomicity.
		err = writeExclusive(path, data)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("--kubeconfig-out %s appeared while the sandbox started; it was left alone (pass --force to overwrite it)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	return &kubeconfigOut{path: path, data: data, info: info}, nil
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// remove deletes the kubeconfig if it is still the file the sandbox wrote, unchanged, and
// otherwise leaves it: the sandbox never deletes what someone else put there. It returns what
// the user should be told, if anything.
func (k *kubeconfigOut) remove() string {
	info, err := os.Lstat(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err == nil && os.SameFile(info, k.info) {
		var data []byte
		if data, err = os.ReadFile(k.path); err == nil && bytes.Equal(data, k.data) {
			if err = os.Remove(k.path); err == nil {
				return ""
			}
		}
	}
	if err != nil {
		return fmt.Sprintf("Kubeconfig %s left in place: %v", k.path, err)
	}
	return fmt.Sprintf("Kubeconfig %s left in place: it changed since the sandbox wrote it", k.path)
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

// customResourceConfig is cp's connection for custom resources, which do not speak protobuf.
func customResourceConfig(cp *controlplane.ControlPlane) *rest.Config {
	return informerobj.JSONConfig(cp.Config)
}

// writeGangReport adds each gang's outcome when the scenario has PodGroups.
func writeGangReport(ctx context.Context, cp *controlplane.ControlPlane, outcomes []sandbox.Outcome, out io.Writer) error {
	client, err := pgclient.NewForConfig(customResourceConfig(cp))
	if err != nil {
		return err
	}
	groups, err := client.SchedulingV1alpha1().PodGroups(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing PodGroups: %w", err)
	}
	sandbox.WriteGangReport(out, groups.Items, outcomes)
	return nil
}

// writeTeamReport adds the placements per team and tier when the scenario has ResourcePools.
func writeTeamReport(ctx context.Context, cp *controlplane.ControlPlane, nodes []corev1.Node, outcomes []sandbox.Outcome, out io.Writer) error {
	client, err := versioned.NewForConfig(customResourceConfig(cp))
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
