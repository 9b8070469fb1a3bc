package vaulttest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
)

// Start a Vault dev server (a container, or a local process without
// Docker), store a KV v2 secret and read it back. In tests use StartTest,
// which also terminates the server when the test ends.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	v, err := vaulttest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = v.Terminate(context.Background()) }()

	c, err := v.Client()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.KVv2("secret").Put(ctx, "example", map[string]any{"greeting": "hello"}); err != nil {
		log.Fatal(err)
	}
	s, err := c.KVv2("secret").Get(ctx, "example")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Data["greeting"], s.VersionMetadata.Version)
	// Output: hello 1
}
