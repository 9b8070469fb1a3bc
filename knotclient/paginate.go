package knotclient

import (
	"context"
	"fmt"
	"iter"
)

// pages walks a cursor-paginated listing starting at cursor start ("" for
// the beginning). It stops after the page whose next cursor is null or
// empty, on the first error, when the caller stops, and (with
// ErrTooManyPages) after maxPages pages or when Knot hands out a cursor it
// already handed out (or was started from), which would loop.
func pages[P any](ctx context.Context, maxPages int, start string,
	fetch func(ctx context.Context, cursor string) (P, *string, error)) iter.Seq2[P, error] {
	return func(yield func(P, error) bool) {
		var zero P
		cursor := start
		seen := map[string]bool{start: true}
		for n := 0; ; n++ {
			if n >= maxPages {
				yield(zero, fmt.Errorf("%w: more than %d pages", ErrTooManyPages, maxPages))
				return
			}
			page, next, err := fetch(ctx, cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			if !yield(page, nil) {
				return
			}
			if next == nil || *next == "" {
				return
			}
			if seen[*next] {
				yield(zero, fmt.Errorf("%w: the server returned a cursor it had already returned", ErrTooManyPages))
				return
			}
			seen[*next] = true
			cursor = *next
		}
	}
}

// flatten yields the items of each page.
func flatten[P, T any](seq iter.Seq2[P, error], items func(P) []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for page, err := range seq {
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items(page) {
				if !yield(it, nil) {
					return
				}
			}
		}
	}
}
