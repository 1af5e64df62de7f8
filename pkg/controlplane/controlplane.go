// Package controlplane runs a whole Kubernetes control plane in one process: embedded etcd and
// the real kube-apiserver code. The sandbox command and the integration tests both use it.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	apiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

// ControlPlane is a running etcd + kube-apiserver pair.
type ControlPlane struct {
	// Config reaches the apiserver as a privileged loopback client.
	Config *rest.Config
	Client kubernetes.Interface

	etcd    *embed.Etcd
	etcdDir string
	tb      *processTB
	stopAPI func()
}

// Start brings up etcd and the apiserver and returns once the apiserver answers /healthz, the
// default namespace exists and the CRDs in manifests/crds are established. Callers must call Stop.
func Start(ctx context.Context) (cp *ControlPlane, err error) {
	logger := klog.FromContext(ctx)
	cp = &ControlPlane{}
	defer func() {
		if err != nil {
			cp.Stop()
			cp = nil
		}
	}()

	clientURL, err := startEtcd(cp)
	if err != nil {
		return cp, err
	}

	storage := storagebackend.NewDefaultConfig(path.Join("/workbench", "registry"), nil)
	storage.Transport.ServerList = []string{clientURL}

	cp.tb = newProcessTB("workbench-controlplane", logger.WithName("apiserver"))
	type started struct {
		server apiservertesting.TestServer
		err    error
	}
	done := make(chan started, 1)
	go func() {
		// A fatal call in the starter ends this goroutine; the deferred send reports it.
		result := started{err: errors.New("kube-apiserver start aborted")}
		defer func() {
			if msg := cp.tb.firstFailure(); msg != "" && result.err != nil {
				result.err = fmt.Errorf("kube-apiserver start aborted: %s", msg)
			}
			done <- result
		}()
		opts := apiservertesting.NewDefaultTestServerOptions()
		opts.DisableInvariantChecks = true
		server, err := apiservertesting.StartTestServer(cp.tb, opts, []string{
			// No kubelet or token controller runs: new nodes must not be tainted not-ready, and pods need no service account token.
			"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
			// RBAC as in a real cluster, so a client with a ServiceAccount's token gets only
			// what the shipped manifests grant it.
			"--authorization-mode=Node,RBAC",
		}, storage)
		result = started{server: server, err: err}
	}()
	// Wait even if ctx is cancelled: the starter gives up within a minute, and a server it did
	// start must be torn down.
	s := <-done
	if s.server.TearDownFn != nil {
		cp.stopAPI = s.server.TearDownFn
	}
	if s.err == nil && ctx.Err() != nil {
		s.err = ctx.Err()
	}
	if s.err != nil {
		return cp, fmt.Errorf("starting kube-apiserver: %w", s.err)
	}
	cp.Config = rest.CopyConfig(s.server.ClientConfig)
	cp.Client, err = kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return cp, fmt.Errorf("creating a client for the apiserver: %w", err)
	}
	if err := installCRDs(ctx, cp.Config); err != nil {
		return cp, fmt.Errorf("installing workbench-scheduler's CRDs: %w", err)
	}
	logger.V(2).Info("Control plane started", "apiserver", cp.Config.Host, "etcd", clientURL)
	return cp, nil
}

func startEtcd(cp *ControlPlane) (string, error) {
	dir, err := os.MkdirTemp("", "workbench-etcd-")
	if err != nil {
		return "", fmt.Errorf("creating the etcd data directory: %w", err)
	}
	cp.etcdDir = dir
	ports, err := freePorts(2)
	if err != nil {
		return "", err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}

	cfg := embed.NewConfig()
	cfg.Dir = dir
	// Throwaway single-member data: durability buys nothing here.
	cfg.UnsafeNoFsync = true
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", fmt.Errorf("starting embedded etcd: %w", err)
	}
	cp.etcd = e
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return "", fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		return "", errors.New("embedded etcd did not become ready within 60s")
	}
	return clientURL.String(), nil
}

// freePorts asks the kernel for unused ports. Another process could take one before etcd
// binds it; that is unlikely on a developer machine and fails loudly if it happens.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Stop shuts down the apiserver, then etcd, and removes every temporary directory.
func (cp *ControlPlane) Stop() {
	if cp == nil {
		return
	}
	if cp.stopAPI != nil {
		cp.stopAPI()
		cp.stopAPI = nil
	}
	if cp.tb != nil {
		cp.tb.close()
	}
	if cp.etcd != nil {
		cp.etcd.Close()
		cp.etcd = nil
	}
	if cp.etcdDir != "" {
		_ = os.RemoveAll(cp.etcdDir)
		cp.etcdDir = ""
	}
}

// Kubeconfig renders a kubeconfig for the apiserver's loopback identity.
func (cp *ControlPlane) Kubeconfig() ([]byte, error) {
	return cp.KubeconfigForToken(cp.Config.BearerToken)
}

// KubeconfigForToken is a kubeconfig that reaches the apiserver with a bearer token, for
// example a ServiceAccount's.
func (cp *ControlPlane) KubeconfigForToken(token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["sandbox"] = &clientcmdapi.Cluster{
		Server:                   cp.Config.Host,
		CertificateAuthorityData: cp.Config.CAData,
		TLSServerName:            cp.Config.ServerName,
	}
	cfg.AuthInfos["sandbox-user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["sandbox"] = &clientcmdapi.Context{Cluster: "sandbox", AuthInfo: "sandbox-user"}
	cfg.CurrentContext = "sandbox"
	return clientcmd.Write(*cfg)
}

// WriteKubeconfig writes Kubeconfig to path atomically, so that a reader never sees half a file.
func (cp *ControlPlane) WriteKubeconfig(filePath string) error {
	data, err := cp.Kubeconfig()
	if err != nil {
		return fmt.Errorf("rendering kubeconfig: %w", err)
	}
	tmp := filePath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return os.Rename(tmp, filePath)
}
