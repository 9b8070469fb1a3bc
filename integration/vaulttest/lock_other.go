//go:build !unix

package vaulttest

import "context"

// lockFile does nothing without flock: concurrent image builds are then
// possible but harmless (same content, same tag).
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }
