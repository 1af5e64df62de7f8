package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/component-base/configz"
	"k8s.io/klog/v2"
	kubeschedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"sigs.k8s.io/yaml"
)

// InProcess is a scheduler running inside this process through upstream's Setup and Run, the
// same path the binary takes. Only leader election is driven from here: upstream's callbacks
// call os.Exit on shutdown, which would skip the sandbox's cleanup.
type InProcess struct {
	cancel     context.CancelFunc
	done       chan struct{}
	leading    chan struct{}
	securePort int

	mu     sync.Mutex
	runErr error
}

// Informer names are registered process-wide and must be unique; schedulers started one after
// another in this process share one.
var inProcessInformerName = sync.OnceValues(func() (*cache.InformerName, error) {
	return cache.NewInformerName("workbench-scheduler")
})

// StartInProcess parses kube-scheduler flags (for example --config), builds the scheduler with
// the workbench plugins and starts it. A configuration error is returned before anything runs.
func StartInProcess(ctx context.Context, args []string) (*InProcess, error) {
	opts := options.NewOptions()
	fs := pflag.NewFlagSet("workbench-scheduler", pflag.ContinueOnError)
	for _, f := range opts.Flags.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	if opts.InformerName == nil {
		name, err := inProcessInformerName()
		if err != nil {
			return nil, err
		}
		opts.InformerName = name
	}

	ctx, cancel := context.WithCancel(ctx)
	cc, sched, err := kubeschedulerapp.Setup(ctx, opts, PluginOptions()...)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &InProcess{
		cancel:     cancel,
		done:       make(chan struct{}),
		leading:    make(chan struct{}),
		securePort: opts.SecureServing.BindPort,
	}
	logger := klog.FromContext(ctx)

	election := cc.LeaderElection
	cc.LeaderElection = nil
	cc.ComponentConfig.LeaderElection.LeaderElect = false
	go func() {
		defer close(s.done)
		// Run registers a process-wide configz entry; a later scheduler in this process needs it gone.
		defer configz.Delete("componentconfig")
		if election == nil {
			close(s.leading)
			s.setErr(kubeschedulerapp.Run(ctx, cc, sched))
			return
		}
		// client-go starts OnStartedLeading in a goroutine it does not wait for, and may do so
		// just as ctx is cancelled: running tracks Run so that Stop returns only after it has,
		// and stopped keeps a late start from running at all.
		var (
			mu      sync.Mutex
			stopped bool
			running sync.WaitGroup
		)
		election.ReleaseOnCancel = true
		election.Callbacks = leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leaderCtx context.Context) {
				mu.Lock()
				if stopped {
					mu.Unlock()
					return
				}
				running.Add(1)
				mu.Unlock()
				defer running.Done()
				close(s.leading)
				s.setErr(kubeschedulerapp.Run(leaderCtx, cc, sched))
				// Run returned on its own (a port in use, say): give up the lease too.
				cancel()
			},
			OnStoppedLeading: func() {
				logger.V(2).Info("Stopped leading")
				cancel()
			},
		}
		elector, err := leaderelection.NewLeaderElector(*election)
		if err != nil {
			s.setErr(fmt.Errorf("creating the leader elector: %w", err))
			return
		}
		elector.Run(ctx)
		mu.Lock()
		stopped = true
		mu.Unlock()
		running.Wait()
	}()
	return s, nil
}

func (s *InProcess) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runErr == nil {
		s.runErr = err
	}
}

// WaitReady blocks until this scheduler holds the lease and its /readyz answers 200. If ctx is
// cancelled first, it says so: the scheduler, started from ctx, stops too, and the lease was
// not late.
func (s *InProcess) WaitReady(ctx context.Context, timeout time.Duration) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case <-s.leading:
	case <-s.done:
		if parent.Err() != nil {
			return fmt.Errorf("cancelled before the scheduler acquired its leader lease: %w", context.Cause(parent))
		}
		return fmt.Errorf("scheduler stopped before leading: %v", s.Err())
	case <-ctx.Done():
		if parent.Err() != nil {
			return fmt.Errorf("cancelled before the scheduler acquired its leader lease: %w", context.Cause(parent))
		}
		return errors.New("scheduler did not acquire its leader lease in time")
	}
	select {
	case <-s.done:
		return fmt.Errorf("scheduler stopped: %v", s.Err())
	default:
	}
	if s.securePort <= 0 {
		return nil
	}
	client := &http.Client{
		Timeout: 2 * time.Second,
		// The secure port serves a self-signed certificate; only the status code matters here.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", s.securePort)
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		select {
		case <-s.done:
			return false, fmt.Errorf("scheduler stopped: %v", s.Err())
		default:
		}
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// Stop cancels the scheduler and waits for it to release its lease and return.
func (s *InProcess) Stop() {
	s.cancel()
	<-s.done
}

// Err is the error Run returned, if it has returned.
func (s *InProcess) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runErr
}

// StartFromConfig runs the scheduler from a KubeSchedulerConfiguration with its client
// connection pointed at kubeconfig (the file written into dir), creates the leader-election
// namespace the configuration names, and waits until the scheduler leads and is ready.
func StartFromConfig(ctx context.Context, client kubernetes.Interface, config []byte, kubeconfig, dir string, args ...string) (*InProcess, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("scheduler config is not valid YAML: %w", err)
	}
	conn, _ := cfg["clientConnection"].(map[string]any)
	if conn == nil {
		conn = map[string]any{}
	}
	conn["kubeconfig"] = kubeconfig
	cfg["clientConnection"] = conn
	if le, ok := cfg["leaderElection"].(map[string]any); ok {
		if ns, _ := le["resourceNamespace"].(string); ns != "" {
			obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
			if _, err := client.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("creating the leader-election namespace %s: %w", ns, err)
			}
		}
	}
	patched, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "scheduler-config.yaml")
	if err := os.WriteFile(path, patched, 0o600); err != nil {
		return nil, err
	}
	s, err := StartInProcess(ctx, append([]string{"--config=" + path}, args...))
	if err != nil {
		return nil, err
	}
	if err := s.WaitReady(ctx, time.Minute); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}
