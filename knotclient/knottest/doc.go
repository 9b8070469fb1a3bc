// Package knottest runs an in-process fake of the Knot API over real mutual
// TLS, for tests, in the spirit of net/http/httptest.
//
// A [Server] listens on 127.0.0.1 with its own certificate authorities:
//
//   - a client CA ([Server.CA]) that plays Knot's issuing CA. [Server.SignCSR]
//     signs certificate requests the way Knot does — only RSA-2048 keys, only
//     SHA-256 with RSA signatures, only CN = client_id, checked with
//     [provider.Requirements.CheckCSR] — and returns a SHA256WithRSA client
//     certificate with a fresh random 128-bit serial. [Server.IssueClient]
//     does the whole dance in memory and returns a [provider.Bundle].
//   - a server CA ([Server.RootCAs]) for the server's own certificate, valid
//     for 127.0.0.1, ::1 and localhost.
//
// Connection rules:
//
//   - The TLS handshake requires a client certificate that verifies against
//     [Server.CA] (tls.RequireAndVerifyClientCert). A connection without one,
//     or with one from another CA, or with an expired one, fails at the
//     handshake and never reaches HTTP; [Server.HandshakeErrors] lists those
//     failures.
//   - A certificate from the right CA whose CN is not the client_id is
//     refused at the HTTP layer with 401 and the INVALID_API_KEYS body, so
//     the request is recorded with the CN it presented.
//   - Every endpoint checks HTTP Basic auth (client_id:secret); missing or
//     wrong credentials give 401 INVALID_API_KEYS.
//   - TLS 1.2 is the minimum; [WithTLSVersions] forces a version range.
//   - ALPN offers h2 and HTTP/1.1, like Knot's hosts: a client that asks for
//     h2 gets it. [WithHTTP2](false) serves HTTP/1.1 only.
//   - The server issues TLS session tickets, so a client with a session
//     cache resumes without a new client signature; [WithSessionTickets]
//     turns them off. [WithMaxRequestsPerConn] closes each connection after
//     n requests, like a load balancer, so that new connections (and their
//     handshakes) happen under load. [Server.Handshakes] counts full and
//     resumed handshakes.
//
// Every request that reaches HTTP is recorded ([Server.Requests]) with the
// serial and CN of the client certificate presented on its connection, the
// TLS version, the HTTP protocol, whether the TLS session was resumed,
// whether Basic auth matched and the status that was written.
// [Server.Fail] injects faults: error statuses, 429 with Retry-After,
// delays, dropped connections and raw bodies.
//
// The endpoints documented in the Knot API reference answer with realistic,
// deterministic bodies and validate their required fields (400
// INVALID_REQUEST / INVALID_FIELD). The fixtures every user starts with:
//
//   - linked merchant accounts DoorDash ([MerchantID], 19), Walmart (45) and
//     Netflix (16); /development/accounts/link, /development/accounts/disconnect
//     and /accounts/unlink change them per external_user_id.
//   - /transactions/sync pages through exactly [TransactionPages] pages of
//     limit transactions each (default limit [DefaultSyncLimit]); the last page has
//     next_cursor null. Transaction IDs are deterministic; GET
//     /transactions/{id} answers for every ID sync hands out, and for
//     [TransactionID].
//   - six subscriptions (one is [SubscriptionID]) and five detected accounts.
//   - the external_user_id [UnknownUserID] gets USER_NOT_FOUND.
//
// POST /card decrypts the JWE (RSA-OAEP-256 + A256GCM, kid from GET /jwe/key;
// any other protected header member is refused) with the standard library
// and validates the card payload, so a client's JWE encoding is really
// exercised; [Server.Cards] lists the cards it accepted.
package knottest
