package sandbox

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/controller/job"
	"k8s.io/kubernetes/pkg/controller/replicaset"
)

// Controllers runs the upstream Job, Deployment and ReplicaSet controllers in-process, so that
// a scenario's workloads produce pods as they would in a cluster. No kubelet runs: bound pods
// stay Pending, which is all the scheduler needs.
type Controllers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartControllers starts the controllers; Stop ends them.
func StartControllers(ctx context.Context, client kubernetes.Interface) (*Controllers, error) {
	ctx, cancel := context.WithCancel(ctx)
	c := &Controllers{cancel: cancel}
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods()

	jobs, err := job.NewController(ctx, client, pods, factory.Batch().V1().Jobs(), nil, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("creating the job controller: %w", err)
	}
	deployments, err := deployment.NewDeploymentController(ctx, factory.Apps().V1().Deployments(), factory.Apps().V1().ReplicaSets(), pods, client)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("creating the deployment controller: %w", err)
	}
	replicaSets := replicaset.NewReplicaSetController(ctx, factory.Apps().V1().ReplicaSets(), pods, client, replicaset.BurstReplicas)

	factory.Start(ctx.Done())
	for _, run := range []func(){
		func() { jobs.Run(ctx, 2) },
		func() { deployments.Run(ctx, 2) },
		func() { replicaSets.Run(ctx, 2) },
	} {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			run()
		}()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		<-ctx.Done()
		factory.Shutdown()
	}()
	return c, nil
}

// Stop ends the controllers and waits for them.
func (c *Controllers) Stop() {
	c.cancel()
	c.wg.Wait()
}
