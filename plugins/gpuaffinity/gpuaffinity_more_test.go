package gpuaffinity

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	kubeschedulerscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

func TestBadAnnotationsMakeThePodUnresolvableWithAnEvent(t *testing.T) {
	const known = "known SKUs: t4, a100, h100"
	tests := []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"unknown model", withAnnotations(gpuPod("p", "1").Obj(), ModelAnnotation, "h200"),
			`annotation workbench.dev/gpu-model="h200" names unknown GPU model "h200"; ` + known + " (or a product label value present on a node)"},
		{"empty model", withAnnotations(gpuPod("p", "1").Obj(), ModelAnnotation, "  "),
			"annotation workbench.dev/gpu-model is empty: name a GPU model; " + known},
		{"empty entry in list", withAnnotations(gpuPod("p", "1").Obj(), ModelAnnotation, "a100,,t4"),
			`annotation workbench.dev/gpu-model="a100,,t4" has an empty entry; ` + known},
		{"unparsable memory", withAnnotations(gpuPod("p", "1").Obj(), MinMemoryAnnotation, "lots"),
			`annotation workbench.dev/gpu-min-memory="lots" is not a quantity (use e.g. 40Gi): quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`},
		{"negative memory", withAnnotations(gpuPod("p", "1").Obj(), MinMemoryAnnotation, "-1Gi"),
			`annotation workbench.dev/gpu-min-memory="-1Gi" must be positive`},
		{"absurd memory", withAnnotations(gpuPod("p", "1").Obj(), MinMemoryAnnotation, "8Ei"),
			`annotation workbench.dev/gpu-min-memory="8Ei" is more than 1Pi per GPU`},
		{"memory beyond int64", withAnnotations(gpuPod("p", "1").Obj(), MinMemoryAnnotation, "1e400"),
			`annotation workbench.dev/gpu-min-memory="1e400" is more than 1Pi per GPU`},
		{"empty memory", withAnnotations(gpuPod("p", "1").Obj(), MinMemoryAnnotation, ""),
			`annotation workbench.dev/gpu-min-memory="" is not a quantity (use e.g. 40Gi): quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`},
		{"model on a pod without GPUs", withAnnotations(cpuPod("p").Obj(), ModelAnnotation, "a100"),
			`pod sets workbench.dev/gpu-model="a100" but requests no GPU (nvidia.com/gpu, nvidia.com/mig-*, nvidia.com/gpu.shared, amd.com/gpu, gpu.intel.com/i915): add a GPU request or remove the annotation`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testArgs(t, nil))
			got := h.filterAll(t, tt.pod)
			if diff := cmp.Diff(map[string]string{"*": unresolvable + tt.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			select {
			case ev := <-h.recorder.Events:
				if want := "Warning " + EventReasonInvalidGPURequest + " " + tt.want; ev != want {
					t.Errorf("event = %q, want %q", ev, want)
				}
			default:
				t.Error("no event recorded")
			}
		})
	}
}

func TestMinMemoryRoundsUpToWholeMiB(t *testing.T) {
	for text, want := range map[string]int64{"40Gi": 40960, "15360.5Mi": 15361, "1": 1, "16106127360": 15360} {
		got, err := parseMinMemory(text)
		if err != nil || got != want {
			t.Errorf("parseMinMemory(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
}

func TestScore(t *testing.T) {
	// Free GPUs after placing one: t4-1 3, a100-1 1, a100-2 7, unlabelled-1 1, l4-1 3.
	candidates := []string{"t4-1", "a100-1", "a100-2", "unlabelled-1", "l4-1"}
	tests := []struct {
		name    string
		scoring string
		pod     *v1.Pod
		want    map[string]int64
	}{
		{"bin-pack prefers the fullest node", "BinPack", gpuPod("s", "1").Obj(),
			map[string]int64{"a100-1": 100, "unlabelled-1": 100, "t4-1": 66, "l4-1": 66, "a100-2": 0}},
		{"spread prefers the emptiest node", "Spread", gpuPod("s", "1").Obj(),
			map[string]int64{"a100-1": 0, "unlabelled-1": 0, "t4-1": 33, "l4-1": 33, "a100-2": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testArgs(t, func(a *configv1.GPUAffinityArgs) { a.GPUScoring = tt.scoring }))
			ctx := context.Background()
			state := framework.NewCycleState()
			var infos []fwk.NodeInfo
			for _, n := range candidates {
				infos = append(infos, h.infos[n])
			}
			if s := h.pl.PreScore(ctx, state, tt.pod, infos); !s.IsSuccess() {
				t.Fatalf("PreScore: %v", s)
			}
			var scores fwk.NodeScoreList
			for _, ni := range infos {
				score, s := h.pl.Score(ctx, state, tt.pod, ni)
				if !s.IsSuccess() {
					t.Fatal(s)
				}
				scores = append(scores, fwk.NodeScore{Name: ni.Node().Name, Score: score})
			}
			if s := h.pl.NormalizeScore(ctx, state, tt.pod, scores); !s.IsSuccess() {
				t.Fatal(s)
			}
			got := map[string]int64{}
			for _, s := range scores {
				got[s.Name] = s.Score
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("scores (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("pods without GPUs are not scored", func(t *testing.T) {
		h := newHarness(t, testArgs(t, nil))
		if s := h.pl.PreScore(context.Background(), framework.NewCycleState(), cpuPod("c").Obj(), h.nodes); !s.IsSkip() {
			t.Errorf("PreScore = %v, want Skip", s)
		}
	})
}

func TestQueueingHints(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	h := newHarness(t, testArgs(t, nil))
	a100 := gpuNode("n", "NVIDIA-A100-SXM4-80GB", "81920", 8)
	relabelled := a100.DeepCopy()
	relabelled.Labels["nvidia.com/gpu.product"] = "NVIDIA-H100-80GB-HBM3"
	otherLabel := a100.DeepCopy()
	otherLabel.Labels["team"] = "vision"
	moreGPUs := gpuNode("n", "NVIDIA-A100-SXM4-80GB", "81920", 16)
	pending := withAnnotations(gpuPod("pending", "1").Obj(), ModelAnnotation, "h200")
	fixed := withAnnotations(pending.DeepCopy(), ModelAnnotation, "h100")
	relabelledPod := pending.DeepCopy()
	relabelledPod.Labels = map[string]string{"x": "y"}

	tests := []struct {
		name string
		fn   fwk.QueueingHintFn
		old  any
		new  any
		want fwk.QueueingHint
	}{
		{"node added", h.pl.isSchedulableAfterNodeChange, nil, a100, fwk.Queue},
		{"product label changed", h.pl.isSchedulableAfterNodeChange, a100, relabelled, fwk.Queue},
		{"GPU allocatable changed", h.pl.isSchedulableAfterNodeChange, a100, moreGPUs, fwk.Queue},
		{"unrelated label changed", h.pl.isSchedulableAfterNodeChange, a100, otherLabel, fwk.QueueSkip},
		{"annotation fixed", h.pl.isSchedulableAfterPodUpdated, pending, fixed, fwk.Queue},
		{"unrelated pod update", h.pl.isSchedulableAfterPodUpdated, pending, relabelledPod, fwk.QueueSkip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fn(logger, pending, tt.old, tt.new)
			if err != nil || got != tt.want {
				t.Errorf("hint = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestInvalidArgsFailNamingTheField(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*configv1.GPUAffinityArgs)
		want   []string
	}{
		{"duplicate SKU name", func(a *configv1.GPUAffinityArgs) {
			a.SKUs = append(a.SKUs, configv1.GPUSKU{Name: "T4", Products: []string{"Tesla-T4-X"}})
		}, []string{`pluginConfig[GPUAffinity].args.skus[3].name: Duplicate value: "T4"`}},
		{"SKU name a pod cannot write", func(a *configv1.GPUAffinityArgs) {
			a.SKUs = append(a.SKUs, configv1.GPUSKU{Name: "a100,80g", Products: []string{"X"}})
		}, []string{`pluginConfig[GPUAffinity].args.skus[3].name: Invalid value: "a100,80g": must not contain commas or whitespace`}},
		{"empty product list", func(a *configv1.GPUAffinityArgs) {
			a.SKUs = append(a.SKUs, configv1.GPUSKU{Name: "l4"})
		}, []string{"pluginConfig[GPUAffinity].args.skus[3].products: Required value"}},
		{"product under two SKUs", func(a *configv1.GPUAffinityArgs) {
			a.SKUs = append(a.SKUs, configv1.GPUSKU{Name: "t4-alias", Products: []string{"tesla-t4"}})
		}, []string{`pluginConfig[GPUAffinity].args.skus[3].products[0]: Invalid value: "tesla-t4": already listed under SKU "t4"`}},
		{"unknown policy", func(a *configv1.GPUAffinityArgs) { a.CPUPodsOnGPUNodes = "Sometimes" },
			[]string{`pluginConfig[GPUAffinity].args.cpuPodsOnGPUNodes: Unsupported value: "Sometimes"`}},
		{"unknown scoring", func(a *configv1.GPUAffinityArgs) { a.GPUScoring = "MostAllocated" },
			[]string{`pluginConfig[GPUAffinity].args.gpuScoring: Unsupported value: "MostAllocated"`}},
		{"not an extended resource", func(a *configv1.GPUAffinityArgs) { a.GPUResourceNames = []string{"cpu"} },
			[]string{`pluginConfig[GPUAffinity].args.gpuResourceNames[0]: Invalid value: "cpu"`}},
		{"bad label", func(a *configv1.GPUAffinityArgs) { a.ProductLabel = "not a label" },
			[]string{"pluginConfig[GPUAffinity].args.productLabel: Invalid value: \"not a label\""}},
		{"pattern not at the end", func(a *configv1.GPUAffinityArgs) { a.GPUResourceNames = []string{"nvidia.com/*-mig*"} },
			[]string{`pluginConfig[GPUAffinity].args.gpuResourceNames[0]: Invalid value: "nvidia.com/*-mig*": a pattern must be the start of an extended resource name followed by a single trailing *`}},
		{"pattern of everything", func(a *configv1.GPUAffinityArgs) { a.GPUResourceNames = []string{"*"} },
			[]string{`pluginConfig[GPUAffinity].args.gpuResourceNames[0]: Invalid value: "*"`}},
		{"pattern without a domain", func(a *configv1.GPUAffinityArgs) { a.GPUResourceNames = []string{"mig-*"} },
			[]string{`pluginConfig[GPUAffinity].args.gpuResourceNames[0]: Invalid value: "mig-*"`}},
		{"duplicate pattern", func(a *configv1.GPUAffinityArgs) {
			a.GPUResourceNames = []string{"nvidia.com/mig-*", "nvidia.com/mig-*"}
		},
			[]string{`pluginConfig[GPUAffinity].args.gpuResourceNames[1]: Duplicate value: "nvidia.com/mig-*"`}},
		{"bad GPU node label", func(a *configv1.GPUAffinityArgs) { a.GPUNodeLabels = []string{"ok.example.com/gpu", "not a label"} },
			[]string{`pluginConfig[GPUAffinity].args.gpuNodeLabels[1]: Invalid value: "not a label"`}},
		{"duplicate GPU node label", func(a *configv1.GPUAffinityArgs) { a.GPUNodeLabels = []string{"example.com/gpu", "example.com/gpu"} },
			[]string{`pluginConfig[GPUAffinity].args.gpuNodeLabels[1]: Duplicate value: "example.com/gpu"`}},
		{"bad count label", func(a *configv1.GPUAffinityArgs) { a.CountLabel = "gpu count" },
			[]string{`pluginConfig[GPUAffinity].args.countLabel: Invalid value: "gpu count"`}},
		{"bad taint key", func(a *configv1.GPUAffinityArgs) { a.GPUNodeTaintKey = "nvidia.com/gpu=present" },
			[]string{`pluginConfig[GPUAffinity].args.gpuNodeTaintKey: Invalid value: "nvidia.com/gpu=present"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			_, err := New(ctx, testArgs(t, tt.mutate), nil)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// The args decode from a KubeSchedulerConfiguration through kube-scheduler's own scheme, with
// our defaults applied; an unknown field is an error there, not silently dropped.
func TestArgsDecodeAndDefaultInTheSchedulerScheme(t *testing.T) {
	yaml := `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: workbench-scheduler
  plugins:
    multiPoint:
      enabled:
      - name: GPUAffinity
  pluginConfig:
  - name: GPUAffinity
    args:
      skus:
      - name: h100
        products: [NVIDIA-H100-80GB-HBM3]
        special: true
`
	obj, _, err := kubeschedulerscheme.Codecs.UniversalDecoder().Decode([]byte(yaml), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := obj.(*schedconfig.KubeSchedulerConfiguration)
	var got *config.GPUAffinityArgs
	for _, pc := range cfg.Profiles[0].PluginConfig {
		if pc.Name == Name {
			got, _ = pc.Args.(*config.GPUAffinityArgs)
		}
	}
	want := &config.GPUAffinityArgs{
		GPUResourceNames:  []string{"nvidia.com/gpu", "nvidia.com/mig-*", "nvidia.com/gpu.shared", "amd.com/gpu", "gpu.intel.com/i915"},
		ProductLabel:      "nvidia.com/gpu.product",
		CountLabel:        "nvidia.com/gpu.count",
		MemoryLabel:       "nvidia.com/gpu.memory",
		SKUs:              []config.GPUSKU{{Name: "h100", Products: []string{"NVIDIA-H100-80GB-HBM3"}, Special: true}},
		CPUPodsOnGPUNodes: config.CPUPodsOnGPUNodesDeny,
		GPUNodeTaintKey:   "nvidia.com/gpu",
		GPUScoring:        config.GPUScoringBinPack,
	}
	if diff := cmp.Diff(want, got, cmpIgnoreTypeMeta); diff != "" {
		t.Errorf("decoded args (-want +got):\n%s", diff)
	}

	bad := strings.Replace(yaml, "special: true", "specal: true", 1)
	if _, _, err := kubeschedulerscheme.Codecs.UniversalDecoder().Decode([]byte(bad), nil, nil); err == nil || !strings.Contains(err.Error(), "specal") {
		t.Errorf("misspelled field: err = %v, want it named", err)
	}
}

// The annotation parsers take user input: errors, never panics, and a parsed model list is
// never empty.
func FuzzParseGPURequest(f *testing.F) {
	f.Add("a100", "40Gi", "1")
	f.Add(",,", "1e400", "0")
	f.Add("a100", "1e400", "1")
	f.Add("a100", "8Ei", "1")
	f.Add("a100", "1m", "1")
	f.Add("h100, NVIDIA-L4", "-0", "8")
	f.Add("", "0.5", "2")
	catalog := newCatalog(testArgs(f, nil).SKUs)
	classes := newGPUClasses(configv1.DefaultGPUResourceClasses())
	labels := requestLabels{product: "nvidia.com/gpu.product", memory: "nvidia.com/gpu.memory", gpuTaint: "nvidia.com/gpu"}
	f.Fuzz(func(t *testing.T, model, memory, gpus string) {
		if _, err := resource.ParseQuantity(gpus); err != nil {
			return
		}
		pod := gpuPod("p", gpus).Obj()
		pod.Annotations = map[string]string{ModelAnnotation: model, MinMemoryAnnotation: memory}
		req, err := parseGPURequest(pod, classes, labels, catalog, func(p string) bool { return p == "nvidia-l4" })
		if err != nil {
			return
		}
		if !req.isGPUPod() || req.products == nil || req.products.Len() == 0 || !req.namesModel || req.minMemoryMiB <= 0 || req.minMemoryMiB > 1<<30 {
			t.Fatalf("accepted %q/%q as %+v", model, memory, req)
		}
	})
}
