//go:build tools

// Package tools names runc's main package, so `go mod tidy` keeps go.sum
// complete for it.
package tools

import _ "github.com/opencontainers/runc"
