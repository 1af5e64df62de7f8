package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	watchtools "k8s.io/client-go/tools/watch"
	componentbaseconfigv1alpha1 "k8s.io/component-base/config/v1alpha1"
	"sigs.k8s.io/yaml"
)

const (
	// podsPerPhase pods are created before the leader stops, while nobody leads, and after.
	podsPerPhase = 10
	// acquiredLine is what client-go's elector logs when it takes the lease.
	acquiredLine    = `"Successfully acquired lease"`
	scheduledSeries = `scheduler_schedule_attempts_total{profile="workbench-scheduler",result="scheduled"}`
	// takeoverMargin absorbs two busy cores: processes that start late, requests that queue.
	takeoverMargin = 5 * time.Second
)

// Two binaries run as the Deployment's two replicas do: one leads, one waits on the lease.
// When the leader stops, the other takes over within the bounds the lease timings give, and
// every pod, whether created before, during or after the failover, is bound exactly once.
func TestLeaderFailover(t *testing.T) {
	b := setUpShippedBinary(t)
	election := shippedElection(t)
	capacity := map[corev1.ResourceName]string{"cpu": "64", "memory": "256Gi", "pods": "110"}
	createNodes(t, readyNode("it-failover-1", capacity), readyNode("it-failover-2", capacity))

	// The standby retries every retryPeriod stretched by up to client-go's jitter.
	maxRetry := time.Duration(float64(election.RetryPeriod.Duration) * (1 + leaderelection.JitterFactor))
	lease := election.LeaseDuration.Duration
	tests := []struct {
		name     string
		sig      syscall.Signal
		min, max time.Duration // takeover time, from the signal to the new holder's acquireTime
	}{
		{
			// Upstream's elector releases the lease when its context ends (ReleaseOnCancel), so
			// the standby takes it at its next try.
			name: "SIGTERM releases the lease",
			sig:  syscall.SIGTERM,
			max:  maxRetry + takeoverMargin,
		},
		{
			// The standby counts the lease duration from when it last saw the lease renewed (up
			// to one try after the kill) and takes it at the first try after that. The leader
			// renewed at most a retry period before the kill: taking the lease sooner than
			// that allows would have let two binaries lead at once.
			name: "SIGKILL leaves the lease to expire",
			sig:  syscall.SIGKILL,
			min:  lease - election.RetryPeriod.Duration - time.Second,
			max:  lease + 2*maxRetry + takeoverMargin,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			takeover := testFailover(t, b, election, tt.sig)
			t.Logf("takeover %v from the signal to the new holder's acquireTime (lease duration %v, retry period %v)",
				takeover.Round(time.Millisecond), lease, election.RetryPeriod.Duration)
			if takeover < tt.min || takeover > tt.max {
				t.Errorf("takeover took %v, want between %v and %v", takeover.Round(time.Millisecond), tt.min, tt.max)
			}
		})
	}
}

// testFailover starts two binaries, stops the leader with sig and returns the time from the
// signal to the standby's acquisition of the lease.
func testFailover(t *testing.T, b shippedBinary, election componentbaseconfigv1alpha1.LeaderElectionConfiguration, sig syscall.Signal) time.Duration {
	ctx := context.Background()
	// A lease left by an earlier test would hold both binaries back until it expired.
	if err := cp.Client.CoordinationV1().Leases(shippedNamespace).Delete(ctx, shippedLease, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	deleteShippedLeaseAtCleanup(t)
	ns := testNamespace(t)
	binds := watchBinds(t, ns)
	leases := watchLease(t)

	procs := []*binaryProcess{b.start(t), b.start(t)}
	leader, standby := waitForLeader(t, procs)
	held := leases.waitFor(t, "the leader's lease", 10*time.Second, func(r leaseRecord) bool { return r.holder != "" })
	if got, want := held.durationSeconds, int32(election.LeaseDuration.Seconds()); got != want {
		t.Errorf("lease duration %d s, the config says %d s", got, want)
	}

	before := createPhase(t, ns, "before")
	binds.waitBound(t, before, time.Minute)
	// Binds are logged and counted just after the API call that the watch saw: wait for them,
	// since a killed process says nothing more.
	waitScheduledCount(t, leader, podsPerPhase)
	if n := scheduledCount(t, standby); n != 0 {
		t.Errorf("the standby counts %d pods scheduled while it does not lead, want 0", n)
	}

	stopped := time.Now()
	if err := leader.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	during := createPhase(t, ns, "during")
	created := time.Since(stopped)

	acquired := leases.waitFor(t, "a new holder", 2*time.Minute, func(r leaseRecord) bool {
		return r.holder != "" && r.holder != held.holder
	})
	takeover := acquired.acquireTime.Sub(stopped)
	if created > takeover {
		t.Logf("creating the pods of the takeover window took %v, longer than the takeover", created)
	}
	if !leader.exited(30 * time.Second) {
		t.Fatalf("the old leader did not exit within 30 s of the signal (%v)", sig)
	}
	if sig == syscall.SIGTERM {
		if leader.err != nil {
			t.Errorf("after SIGTERM the old leader exited with %v, want status 0", leader.err)
		}
		if !leases.sawReleaseBefore(acquired) {
			t.Errorf("the old leader did not release the lease: holders seen %v", leases.holders())
		}
	}
	// The survivor logs just after its write to the lease that the watch delivered.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return leads(standby), nil
	}); err != nil {
		t.Errorf("the lease names a new holder, but the surviving binary did not log %s", acquiredLine)
	}
	binds.waitBound(t, during, time.Minute)
	after := createPhase(t, ns, "after")
	binds.waitBound(t, after, time.Minute)
	// The schedulers' own count of binds: the old leader's N, read before it stopped, and these.
	waitScheduledCount(t, standby, 2*podsPerPhase)

	// Exactly once, as the apiserver saw it: one write of nodeName per pod, never a second.
	all := append(append(append([]string{}, before...), during...), after...)
	binds.check(t, all)
	// Nothing bound in the window: the new leader bound the pods created while nobody led.
	for _, name := range during {
		if at := binds.boundAt(name); !at.After(acquired.acquireTime) {
			t.Errorf("pod %s bound at %v, before the new leader acquired the lease at %v", name, at, acquired.acquireTime)
		}
	}
	// And as the schedulers saw it: one "Successfully bound" line per pod, from the leader of
	// the time, and no failed or refused bind in either.
	wantBinder := map[string]*binaryProcess{}
	for _, name := range before {
		wantBinder[name] = leader
	}
	for _, name := range append(append([]string{}, during...), after...) {
		wantBinder[name] = standby
	}
	boundBy := map[string][]*binaryProcess{}
	for _, p := range procs {
		for _, name := range boundPods(p.out.String(), ns) {
			boundBy[name] = append(boundBy[name], p)
		}
		for _, s := range []string{"Failed to bind pod", "already assigned to node"} {
			if strings.Contains(p.out.String(), s) {
				t.Errorf("the binary on port %d logged %q:\n%s", p.port, s, grepLines(p.out.String(), s))
			}
		}
	}
	for _, name := range all {
		if got := boundBy[name]; len(got) != 1 || got[0] != wantBinder[name] {
			t.Errorf("pod %s: bound by %d binaries (%s), want once by the binary on port %d", name, len(got), ports(got), wantBinder[name].port)
		}
	}
	t.Logf("%d pods bound once each; the takeover window's pods were created within %v of the signal", len(all), created.Round(time.Millisecond))
	return takeover
}

// shippedElection is the shipped config's leaderElection with upstream's defaults applied.
func shippedElection(t *testing.T) componentbaseconfigv1alpha1.LeaderElectionConfiguration {
	t.Helper()
	var cfg struct {
		LeaderElection componentbaseconfigv1alpha1.LeaderElectionConfiguration `json:"leaderElection"`
	}
	if err := yaml.Unmarshal(renderedSchedulerConfig(t), &cfg); err != nil {
		t.Fatal(err)
	}
	componentbaseconfigv1alpha1.RecommendedDefaultLeaderElectionConfiguration(&cfg.LeaderElection)
	return cfg.LeaderElection
}

func createPhase(t *testing.T, ns, phase string) []string {
	t.Helper()
	names := make([]string, podsPerPhase)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", phase, i)
		createPod(t, cpuPod(ns, names[i], "100m", nil))
	}
	return names
}

// waitForLeader waits until both binaries are ready (the standby's informers have synced) and
// exactly one of them says it leads. The lease cannot say which: upstream's identity is
// hostname_UUID, and both run on this host.
func waitForLeader(t *testing.T, procs []*binaryProcess) (leader, standby *binaryProcess) {
	t.Helper()
	var state string // what the last poll found wanting
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		var leading []*binaryProcess
		for _, p := range procs {
			select {
			case <-p.done:
				return false, fmt.Errorf("the binary on port %d exited: %v", p.port, p.err)
			default:
			}
			if code, body := p.get("/readyz", cp.Config.BearerToken); code != 200 {
				state = fmt.Sprintf("port %d: /readyz %d %s", p.port, code, lastLines(body, 3))
				return false, nil
			}
			if leads(p) {
				leading = append(leading, p)
			}
		}
		switch len(leading) {
		case 0:
			state = "neither says it leads"
			return false, nil
		case 1:
			leader = leading[0]
			return true, nil
		default:
			return false, fmt.Errorf("both binaries say they lead")
		}
	})
	if err != nil {
		t.Fatalf("waiting for one of two binaries to lead: %v (%s)", err, state)
	}
	if leader == procs[0] {
		return procs[0], procs[1]
	}
	return procs[1], procs[0]
}

// leads reports whether the binary has taken the lease. Its log tells: the binary does not
// export client-go's leader_election_master_status (upstream's kube-scheduler main imports
// k8s.io/component-base/metrics/prometheus/clientgo, ours does not).
func leads(p *binaryProcess) bool {
	return strings.Contains(p.out.String(), acquiredLine)
}

// scheduledCount is the binary's count of pods it scheduled (and bound).
func scheduledCount(t *testing.T, p *binaryProcess) int {
	t.Helper()
	code, body := p.get("/metrics", cp.Config.BearerToken)
	if code != 200 {
		t.Fatalf("GET /metrics from the binary on port %d: %d %s", p.port, code, body)
	}
	v, _ := metricValue(body, scheduledSeries) // absent until the first pod
	return int(v)
}

func waitScheduledCount(t *testing.T, p *binaryProcess, want int) {
	t.Helper()
	var got int
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		got = scheduledCount(t, p)
		return got >= want, nil
	})
	if err != nil || got != want {
		t.Fatalf("the binary on port %d counts %d pods scheduled, want %d", p.port, got, want)
	}
}

var boundLine = regexp.MustCompile(`"Successfully bound pod to node" pod="([^"/]+)/([^"]+)"`)

// boundPods lists the pods of ns that a binary's log says it bound.
func boundPods(log, ns string) []string {
	var names []string
	for _, m := range boundLine.FindAllStringSubmatch(log, -1) {
		if m[1] == ns {
			names = append(names, m[2])
		}
	}
	return names
}

func ports(procs []*binaryProcess) string {
	var s []string
	for _, p := range procs {
		s = append(s, fmt.Sprintf("port %d", p.port))
	}
	return strings.Join(s, ", ")
}

// bindWatch records, from a watch started before the first pod exists, every write of
// spec.nodeName to the pods of one namespace.
type bindWatch struct {
	mu      sync.Mutex
	node    map[string]string    // the nodeName last seen
	binds   map[string]int       // writes from "" to a node
	bound   map[string]time.Time // when the watch delivered the first
	rebinds []string             // writes from one node to another, never legal
	err     error                // why the watch ended early
}

func watchBinds(t *testing.T, ns string) *bindWatch {
	t.Helper()
	w := &bindWatch{node: map[string]string{}, binds: map[string]int{}, bound: map[string]time.Time{}}
	events := startWatch(t, func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		return cp.Client.CoreV1().Pods(ns).Watch(ctx, opts)
	}, func(ctx context.Context) (string, error) {
		l, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", err
		}
		return l.ResourceVersion, nil
	})
	go func() {
		for ev := range events {
			now := time.Now()
			w.mu.Lock()
			switch ev.Type {
			case watch.Added, watch.Modified:
				pod := ev.Object.(*corev1.Pod)
				old, n := w.node[pod.Name], pod.Spec.NodeName
				switch {
				case old == "" && n != "":
					w.binds[pod.Name]++
					if w.binds[pod.Name] == 1 {
						w.bound[pod.Name] = now
					}
				case old != "" && n != old:
					w.rebinds = append(w.rebinds, fmt.Sprintf("%s: %q -> %q", pod.Name, old, n))
				}
				w.node[pod.Name] = n
			case watch.Error:
				w.err = apierrors.FromObject(ev.Object)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *bindWatch) waitBound(t *testing.T, names []string, timeout time.Duration) {
	t.Helper()
	var unbound []string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err != nil {
			return false, fmt.Errorf("the pod watch ended: %w", w.err)
		}
		unbound = nil
		for _, name := range names {
			if w.node[name] == "" {
				unbound = append(unbound, name)
			}
		}
		return len(unbound) == 0, nil
	})
	if err != nil {
		t.Fatalf("pods not bound within %v: %v: %v", timeout, unbound, err)
	}
}

// check fails the test unless each pod was bound once and none was moved.
func (w *bindWatch) check(t *testing.T, names []string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, name := range names {
		if n := w.binds[name]; n != 1 {
			t.Errorf("pod %s: nodeName written %d times, want once", name, n)
		}
	}
	if len(w.rebinds) > 0 {
		t.Errorf("bound pods moved: %v", w.rebinds)
	}
	if len(w.binds) != len(names) {
		t.Errorf("%d pods bound in the namespace, want %d", len(w.binds), len(names))
	}
}

func (w *bindWatch) boundAt(name string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bound[name]
}

// leaseRecord is one state of the shipped Lease as the watch delivered it.
type leaseRecord struct {
	seen            time.Time
	holder          string
	acquireTime     time.Time
	durationSeconds int32
}

// leaseWatch records every state of the shipped Lease, from before the binaries start.
type leaseWatch struct {
	mu      sync.Mutex
	records []leaseRecord
}

func watchLease(t *testing.T) *leaseWatch {
	t.Helper()
	leases := cp.Client.CoordinationV1().Leases(shippedNamespace)
	selector := fields.OneTermEqualSelector("metadata.name", shippedLease).String()
	w := &leaseWatch{}
	events := startWatch(t, func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		opts.FieldSelector = selector
		return leases.Watch(ctx, opts)
	}, func(ctx context.Context) (string, error) {
		l, err := leases.List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			return "", err
		}
		return l.ResourceVersion, nil
	})
	go func() {
		for ev := range events {
			l, ok := ev.Object.(*coordinationv1.Lease)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			r := leaseRecord{seen: time.Now()}
			if s := l.Spec; s.HolderIdentity != nil {
				r.holder = *s.HolderIdentity
			}
			if l.Spec.AcquireTime != nil {
				r.acquireTime = l.Spec.AcquireTime.Time
			}
			if l.Spec.LeaseDurationSeconds != nil {
				r.durationSeconds = *l.Spec.LeaseDurationSeconds
			}
			w.mu.Lock()
			w.records = append(w.records, r)
			w.mu.Unlock()
		}
	}()
	return w
}

// waitFor returns the first record that matches.
func (w *leaseWatch) waitFor(t *testing.T, what string, timeout time.Duration, match func(leaseRecord) bool) leaseRecord {
	t.Helper()
	var found leaseRecord
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, r := range w.records {
			if match(r) {
				found = r
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the lease showed no %s within %v; holders seen: %v", what, timeout, w.holders())
	}
	return found
}

// sawReleaseBefore reports whether the lease was left without a holder just before r.
func (w *leaseWatch) sawReleaseBefore(r leaseRecord) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, rec := range w.records {
		if rec == r {
			return i > 0 && w.records[i-1].holder == ""
		}
	}
	return false
}

func (w *leaseWatch) holders() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s []string
	for _, r := range w.records {
		s = append(s, fmt.Sprintf("%q at %s", r.holder, r.seen.Format("15:04:05.000")))
	}
	return s
}

// startWatch watches from the resource version list returns, resuming after the apiserver ends
// a watch, until the test ends.
func startWatch(t *testing.T, watchFunc cache.WatchFuncWithContext, list func(context.Context) (string, error)) <-chan watch.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rv, err := list(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, &cache.ListWatch{WatchFuncWithContext: watchFunc})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		rw.Stop()
		<-rw.Done()
	})
	return rw.ResultChan()
}
