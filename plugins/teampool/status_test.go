package teampool

import (
	"context"
	"os"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	wbfake "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned/fake"
	wbinformers "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/informers/externalversions"
)

// A replica writes pool status only while the scheduler's lease names its host, and only what
// changed.
func TestStatusWriterWritesOnlyWhileLeading(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	rp := resourcePool("recsys", "ai/applied-ml/recsys", false, map[string]string{"pool": "recsys"})
	wbClient := wbfake.NewSimpleClientset(rp)
	factory := wbinformers.NewSharedInformerFactory(wbClient, 0)
	lister := factory.Workbench().V1alpha1().ResourcePools().Lister()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	idx := newPoolIndex([]v1.ResourceName{"nvidia.com/gpu"})
	idx.setPool(rp)
	idx.setNode(poolNode("recsys-1", "recsys"))
	idx.updatePod(nil, st.MakePod().Namespace("x").Name("p").UID("p").Node("recsys-1").Req(map[v1.ResourceName]string{"cpu": "1"}).Obj())

	other := "another-host_1234"
	seconds := int32(15)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "workbench-system", Name: "workbench-scheduler"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &other, LeaseDurationSeconds: &seconds, RenewTime: &metav1.MicroTime{Time: time.Now()}},
	}
	kube := fake.NewClientset(lease)
	args := testArgs(t, func(a *configv1.TeamPoolArgs) {})
	w := newStatusWriter(idx, lister, wbClient, kube, args)
	w.interval = 20 * time.Millisecond
	go w.run(ctx)

	statusUpdates := func() int {
		n := 0
		for _, a := range wbClient.Actions() {
			if a.GetVerb() == "update" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	time.Sleep(300 * time.Millisecond)
	if n := statusUpdates(); n != 0 {
		t.Fatalf("%d status updates while another host leads, want 0", n)
	}

	ours := host + "_5678"
	lease.Spec.HolderIdentity = &ours
	lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	if _, err := kube.CoordinationV1().Leases("workbench-system").Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *workbenchv1alpha1.ResourcePool
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err = wbClient.WorkbenchV1alpha1().ResourcePools().Get(ctx, "recsys", metav1.GetOptions{})
		return err == nil && got.Status.Nodes == 1, nil
	})
	if err != nil {
		t.Fatalf("no status written once leading: %v (actions %v)", err, wbClient.Actions())
	}
	if got.Status.Allocated.CPU.String() != "1" || got.Status.Free.CPU.String() != "3" || got.Status.Capacity.Memory.String() != "16Gi" {
		t.Errorf("status %+v, want 1 CPU allocated, 3 free, 16Gi memory", got.Status)
	}
	// Nothing changed: no more writes, however many intervals pass.
	before := statusUpdates()
	time.Sleep(200 * time.Millisecond)
	if after := statusUpdates(); after != before {
		t.Errorf("%d status writes without a change, want none", after-before)
	}
}
