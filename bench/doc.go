// Package bench holds workbench-scheduler's benchmarks: the real scheduler against an in-process
// apiserver, upstream's default profile beside ours in the same run, and micro benchmarks of
// plugin hot paths on in-memory snapshots. Run them with the make bench-* targets; results go
// to bench/results/local/ (untracked), and make bench-publish copies them into bench/results/
// and regenerates the generated sections of bench/RESULTS.md.
package bench
