package controlplane

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"k8s.io/klog/v2"
)

// processTB satisfies ktesting.TB so that upstream's in-process kube-apiserver starter can run
// outside `go test`. Cleanups run in reverse order on close; fatal calls end the calling
// goroutine and are reported as the start error.
type processTB struct {
	name   string
	logger klog.Logger

	mu       sync.Mutex
	cleanups []func()
	tempDirs []string
	failures []string
}

func newProcessTB(name string, logger klog.Logger) *processTB {
	return &processTB{name: name, logger: logger}
}

func (p *processTB) Attr(key, value string) {}
func (p *processTB) Chdir(dir string)       { p.Fatalf("Chdir is not supported outside tests") }
func (p *processTB) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}
func (p *processTB) Error(args ...any) { p.fail(fmt.Sprint(args...)) }
func (p *processTB) Errorf(format string, args ...any) {
	p.fail(fmt.Sprintf(format, args...))
}
func (p *processTB) Fail()    { p.fail("failed") }
func (p *processTB) FailNow() { p.fail("failed"); runtime.Goexit() }
func (p *processTB) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.failures) > 0
}
func (p *processTB) Fatal(args ...any) { p.fail(fmt.Sprint(args...)); runtime.Goexit() }
func (p *processTB) Fatalf(format string, args ...any) {
	p.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (p *processTB) Helper()         {}
func (p *processTB) Log(args ...any) { p.logger.V(5).Info(fmt.Sprint(args...)) }
func (p *processTB) Logf(format string, args ...any) {
	p.logger.V(5).Info(fmt.Sprintf(format, args...))
}
func (p *processTB) Name() string                     { return p.name }
func (p *processTB) Setenv(key, value string)         { p.Fatalf("Setenv is not supported outside tests") }
func (p *processTB) Skip(args ...any)                 { p.Fatal(args...) }
func (p *processTB) Skipf(format string, args ...any) { p.Fatalf(format, args...) }
func (p *processTB) SkipNow()                         { p.FailNow() }
func (p *processTB) Skipped() bool                    { return false }
func (p *processTB) TempDir() string {
	dir, err := os.MkdirTemp("", "workbench-controlplane-")
	if err != nil {
		p.Fatalf("creating a temporary directory: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tempDirs = append(p.tempDirs, dir)
	return dir
}

func (p *processTB) fail(msg string) {
	p.logger.Error(nil, "Control plane error", "msg", msg)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = append(p.failures, msg)
}

func (p *processTB) firstFailure() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failures) == 0 {
		return ""
	}
	return p.failures[0]
}

// close runs the cleanups, newest first, then removes the temporary directories.
func (p *processTB) close() {
	p.mu.Lock()
	cleanups := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	p.mu.Lock()
	dirs := p.tempDirs
	p.tempDirs = nil
	p.mu.Unlock()
	for _, dir := range dirs {
		_ = os.RemoveAll(dir)
	}
}
