package perf

import (
	"bytes"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
)

// Function name prefixes whose allocations are the scheduler's own (see perfrun.HeapSample).
const (
	schedulerPackages = "k8s.io/kubernetes/pkg/scheduler"
	workbenchModule   = "github.com/workbench-scheduler/workbench-scheduler/"
)

// heapSampler keeps, among heap profiles taken at an interval, the one in which the
// scheduler's share was largest. Peak RSS is the whole process's; this is the part a scheduler
// deployment would hold.
type heapSampler struct {
	mu   sync.Mutex
	peak perfrun.HeapSample
	// profile is the peak sample's heap profile, saved with the run for pprof.
	profile []byte
	err     error
}

// sampleHeap starts sampling and returns the sampler; it samples until the process exits.
func sampleHeap(interval time.Duration) *heapSampler {
	s := &heapSampler{}
	go func() {
		for range time.Tick(interval) {
			s.sample()
		}
	}()
	return s
}

func (s *heapSampler) sample() {
	var buf bytes.Buffer
	err := pprof.Lookup("heap").WriteTo(&buf, 0)
	var h perfrun.HeapSample
	if err == nil {
		h, err = attributeHeap(buf.Bytes())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		return
	}
	n := s.peak.Samples + 1
	if h.SchedulerBytes > s.peak.SchedulerBytes {
		s.peak, s.profile = h, buf.Bytes()
	}
	s.peak.Samples = n
}

// result takes a last sample and returns the largest, having written its heap profile to
// profileFile (read it with go tool pprof -sample_index=inuse_space).
func (s *heapSampler) result(profileFile string) (*perfrun.HeapSample, error) {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, fmt.Errorf("sampling the heap: %w", s.err)
	}
	if err := os.WriteFile(profileFile, s.profile, 0o644); err != nil {
		return nil, err
	}
	peak := s.peak
	return &peak, nil
}

// attributeHeap sums a heap profile's in-use bytes: all of them, those allocated from the
// scheduler's packages or ours, and those from ours.
func attributeHeap(data []byte) (perfrun.HeapSample, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return perfrun.HeapSample{}, err
	}
	inuse := -1
	for i, st := range p.SampleType {
		if st.Type == "inuse_space" {
			inuse = i
		}
	}
	if inuse < 0 {
		return perfrun.HeapSample{}, fmt.Errorf("heap profile has no inuse_space")
	}
	var h perfrun.HeapSample
	for _, sample := range p.Sample {
		bytes := sample.Value[inuse]
		h.TotalBytes += bytes
		scheduler, ours := false, false
		for _, loc := range sample.Location {
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				name := line.Function.Name
				ours = ours || strings.HasPrefix(name, workbenchModule) && !strings.HasPrefix(name, workbenchModule+"bench/")
				scheduler = scheduler || ours || strings.HasPrefix(name, schedulerPackages)
			}
		}
		if scheduler {
			h.SchedulerBytes += bytes
		}
		if ours {
			h.WorkbenchBytes += bytes
		}
	}
	return h, nil
}

// heapSamplingInterval is how often a run's heap is profiled; writing a profile takes
// milliseconds and stops nothing. The record also takes one sample at the end.
const heapSamplingInterval = 30 * time.Second
