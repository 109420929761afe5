// Command etcd runs etcd's own entry point; etcd's repository keeps its main
// package outside the published server module, so this is the two-line wrapper.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
