//go:build tools

// Package tools pins the main package this wrapper module builds (never compiled itself).
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
