// Package validation checks the workbench plugins' args; errors carry field paths so that a bad
// configuration fails start-up naming the field.
package validation

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	v1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	v1helper "k8s.io/kubernetes/pkg/apis/core/v1/helper"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
)

// validateGPUResourceNames checks a list of extended resources that count as GPUs. With
// patterns, an entry may also be a prefix of such a name followed by "*" (nvidia.com/mig-*);
// TeamPool adds up exact names only.
func validateGPUResourceNames(path *field.Path, names []string, patterns bool) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, name := range names {
		if seen.Has(name) {
			errs = append(errs, field.Duplicate(path.Index(i), name))
		}
		seen.Insert(name)
		if prefix, ok := strings.CutSuffix(name, "*"); ok && patterns {
			// The prefix of a valid name: completed by any character, it must be one.
			if strings.Contains(prefix, "*") || !v1helper.IsExtendedResourceName(v1.ResourceName(prefix+"x")) {
				errs = append(errs, field.Invalid(path.Index(i), name, "a pattern must be the start of an extended resource name followed by a single trailing *, such as nvidia.com/mig-*"))
			}
			continue
		}
		if !v1helper.IsExtendedResourceName(v1.ResourceName(name)) {
			msg := "must be an extended resource name such as nvidia.com/gpu"
			if patterns {
				msg += ", or the start of one followed by * such as nvidia.com/mig-*"
			}
			errs = append(errs, field.Invalid(path.Index(i), name, msg))
		}
	}
	return errs
}

// ValidateGPUAffinityArgs validates defaulted GPUAffinityArgs. path is where they sit in the
// scheduler configuration, e.g. profiles[0].pluginConfig[1].args.
func ValidateGPUAffinityArgs(path *field.Path, args *config.GPUAffinityArgs) error {
	var errs field.ErrorList
	names := path.Child("gpuResourceNames")
	if len(args.GPUResourceNames) == 0 {
		errs = append(errs, field.Required(names, "at least one GPU resource name"))
	}
	errs = append(errs, validateGPUResourceNames(names, args.GPUResourceNames, true)...)
	for _, l := range []struct {
		name, value string
	}{{"productLabel", args.ProductLabel}, {"memoryLabel", args.MemoryLabel}} {
		errs = append(errs, metav1validation.ValidateLabelName(l.value, path.Child(l.name))...)
	}
	// Empty only in args built in code, which the versioned defaults do not fill: the feature
	// is then off.
	for _, l := range []struct {
		name, value string
	}{{"countLabel", args.CountLabel}, {"gpuNodeTaintKey", args.GPUNodeTaintKey}} {
		if l.value != "" {
			errs = append(errs, metav1validation.ValidateLabelName(l.value, path.Child(l.name))...)
		}
	}
	nodeLabels := sets.New[string]()
	for i, key := range args.GPUNodeLabels {
		p := path.Child("gpuNodeLabels").Index(i)
		if nodeLabels.Has(key) {
			errs = append(errs, field.Duplicate(p, key))
		}
		nodeLabels.Insert(key)
		errs = append(errs, metav1validation.ValidateLabelName(key, p)...)
	}
	skusPath := path.Child("skus")
	skuNames := sets.New[string]()
	productOwner := map[string]string{}
	for i, sku := range args.SKUs {
		p := skusPath.Index(i)
		// Pods name SKUs case-insensitively in a comma-separated list.
		name := strings.ToLower(sku.Name)
		switch {
		case sku.Name == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case strings.ContainsFunc(sku.Name, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }):
			errs = append(errs, field.Invalid(p.Child("name"), sku.Name, "must not contain commas or whitespace"))
		case skuNames.Has(name):
			errs = append(errs, field.Duplicate(p.Child("name"), sku.Name))
		}
		skuNames.Insert(name)
		if len(sku.Products) == 0 {
			errs = append(errs, field.Required(p.Child("products"), "at least one product label value"))
		}
		for j, product := range sku.Products {
			if product == "" {
				errs = append(errs, field.Required(p.Child("products").Index(j), ""))
				continue
			}
			key := strings.ToLower(product)
			if owner, ok := productOwner[key]; ok && owner != sku.Name {
				errs = append(errs, field.Invalid(p.Child("products").Index(j), product, fmt.Sprintf("already listed under SKU %q", owner)))
			}
			productOwner[key] = sku.Name
		}
	}
	switch args.CPUPodsOnGPUNodes {
	case config.CPUPodsOnGPUNodesDeny, config.CPUPodsOnGPUNodesAllow:
	default:
		errs = append(errs, field.NotSupported(path.Child("cpuPodsOnGPUNodes"), args.CPUPodsOnGPUNodes,
			[]string{string(config.CPUPodsOnGPUNodesDeny), string(config.CPUPodsOnGPUNodesAllow)}))
	}
	switch args.GPUScoring {
	case config.GPUScoringBinPack, config.GPUScoringSpread:
	default:
		errs = append(errs, field.NotSupported(path.Child("gpuScoring"), args.GPUScoring,
			[]string{string(config.GPUScoringBinPack), string(config.GPUScoringSpread)}))
	}
	return errs.ToAggregate()
}

// NoLeaderLease in TeamPoolArgs.LeaderLease makes every instance write pool status.
const NoLeaderLease = "-"

// ValidateTeamPoolArgs validates defaulted TeamPoolArgs.
func ValidateTeamPoolArgs(path *field.Path, args *config.TeamPoolArgs) error {
	var errs field.ErrorList
	switch args.UnpooledNodes {
	case config.UnpooledNodesShared, config.UnpooledNodesLast:
	default:
		errs = append(errs, field.NotSupported(path.Child("unpooledNodes"), args.UnpooledNodes,
			[]string{string(config.UnpooledNodesShared), string(config.UnpooledNodesLast)}))
	}
	names := path.Child("gpuResourceNames")
	errs = append(errs, validateGPUResourceNames(names, args.GPUResourceNames, false)...)
	if args.StatusUpdateInterval.Duration < time.Second {
		errs = append(errs, field.Invalid(path.Child("statusUpdateInterval"), args.StatusUpdateInterval.Duration.String(), "must be at least 1s"))
	}
	if args.LeaderLease != NoLeaderLease {
		ns, name, ok := strings.Cut(args.LeaderLease, "/")
		bad := !ok || len(validation.IsDNS1123Label(ns)) != 0 || len(validation.IsDNS1123Subdomain(name)) != 0
		if bad {
			errs = append(errs, field.Invalid(path.Child("leaderLease"), args.LeaderLease, `must be "namespace/name" of a Lease, or "-"`))
		}
	}
	return errs.ToAggregate()
}

// MaxGangTimeout keeps a gang's wait below the framework's 15-minute ceiling on Permit waits,
// past which the framework would reject members on its own, without our reason.
const MaxGangTimeout = 14 * time.Minute

// ValidateGangArgs checks GangArgs; path is where the args sit in the configuration.
func ValidateGangArgs(path *field.Path, args *config.GangArgs) error {
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"sessionTimeout", args.SessionTimeout.Duration}, {"batchTimeout", args.BatchTimeout.Duration}} {
		if f.d < time.Second || f.d > MaxGangTimeout {
			errs = append(errs, field.Invalid(path.Child(f.name), f.d.String(), "must be between 1s and "+MaxGangTimeout.String()))
		}
	}
	return errs.ToAggregate()
}
