package knotclient

// Internal helpers exported to the external test package.
var (
	ParseRetryAfter = parseRetryAfter
	Backoff         = backoff
)
