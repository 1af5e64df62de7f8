// Command workbench-scheduler is a secondary Kubernetes scheduler for data-science and ML
// platforms. See the README for configuration and the sandbox.
package main

import "github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"

func main() {
	app.Main()
}
