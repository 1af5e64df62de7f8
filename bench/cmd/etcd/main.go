// Command etcd is etcd's own main, built from the module proxy: upstream's scheduler_perf starts
// an etcd binary from PATH, and this way nothing but Go modules is downloaded.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
