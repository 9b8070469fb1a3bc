// Package knotclient calls the Knot API (knotapi.com) over mutual TLS, with
// the client certificate served by a [provider.ClientCertificateGetter]
// (normally a *provider.Provider backed by Vault or files) and the Basic-auth
// secret served by a [SecretSource].
//
//	p, _ := provider.New(src, provider.WithRequirements(provider.Requirements{ClientID: id}))
//	c, _ := knotclient.New(knotclient.Config{
//		ClientID:     id,
//		Secret:       knotclient.StaticSecret(secret),
//		Certificates: p,
//		Environment:  knotclient.Production,
//	})
//	defer c.Close()
//	merchants, err := c.ListMerchants(ctx, knotclient.ListMerchantsRequest{Type: knotclient.ProductCardSwitcher})
//
// # Transport
//
// [New] does no I/O. The HTTP transport is built on the first call: TLS 1.2
// minimum, the server verified against Config.RootCAs (nil: the system
// roots), the client certificate taken from the getter at each handshake,
// keep-alive connections pooled. When the getter also has a Notify method
// (as *provider.Provider does), the client subscribes: after a rotation new
// requests go over new connections, so the very next request presents the
// new certificate, and the old connections are closed as soon as they are
// idle. Config.WrapTransport wraps the transport (tracing, metrics) and
// Config.Transport supplies a base *http.Transport to clone.
//
// New connections resume the TLS session of an earlier one when the server
// issued a session ticket, so they need no new signature from the client's
// key: with a Vault Transit key, no Vault request per new connection, and
// new connections keep working while Vault is unreachable. A rotation
// starts an empty session cache, so the next new connection presents the
// new certificate. The trade-off is that a resumed session carries the
// identity of the handshake that created it for as long as the server
// accepts its ticket; Config.DisableSessionResumption makes every new
// connection a full handshake.
//
// Every request carries Basic auth (client_id:secret), Knot-Version (2.0 by
// default), Accept: application/json, a User-Agent naming this module and the
// Go version, and Content-Type: application/json when it has a body.
//
// # Errors
//
// A response Knot marks as failed (any non-2xx status, or a 200 from POST
// /card carrying an error_message) is returned as an [*Error] with the HTTP
// status and Knot's error_type, error_code and error_message; it tolerates
// Knot's 500 body {"message":"Server Error"} and bodies that are not JSON.
// Branch on the code with [IsCode]. Errors never contain the secret, request
// bodies, session IDs or card data (credentials a proxy echoes back are
// replaced by REDACTED), and the client logs none of them.
//
// # Retries
//
// Knot documents no idempotency keys, so only calls that are safe to repeat
// are retried: up to Config.MaxAttempts attempts (default 3), with
// exponential backoff and jitter, on network errors, 429 (honouring
// Retry-After, as seconds or an HTTP date, up to Config.MaxRetryAfter) and
// 5xx other than 501 and 505. Certificate and TLS-alert errors are not
// retried (they would fail the same way), and nothing is retried once the
// caller's context is done or the client is closed. The policy per method:
//
//	retried      GetAccounts, GetAccount, GetJWEKey, GetTransaction, GetSubscription (GETs);
//	             ListMerchants, SyncTransactions, ListSubscriptions, ListDetectedAccounts,
//	             SearchDetectedAccounts (POSTs that only read); ExtendSession (a repeated
//	             extend has the effect of one, and it is time-critical)
//	never        SwitchCard, UpdateCard (POST /card: one task, 15 s window);
//	             RefreshTransactions, SyncCart, Checkout, CancelSubscription, Detect
//	             (accepted 202 operations: a repeat starts a second one);
//	             CreateSession (a repeat leaves an extra session); UnlinkAccount,
//	             DevLinkAccount, DevDisconnectAccount (change state, fire webhooks)
//
// A call that is never retried returns its first failure, with
// [Error.RetryAfter] set if Knot sent one, so the caller can decide.
//
// # Pagination
//
// SyncTransactions, ListSubscriptions and ListDetectedAccounts fetch one
// page. [Client.SyncTransactionPages] iterates pages (persist each page's
// NextCursor), and [Client.AllTransactions], [Client.AllSubscriptions] and
// [Client.AllDetectedAccounts] iterate items. Iteration stops after the page
// whose next_cursor is null, at the first error (yielded), after
// Config.MaxPages pages, or (with [ErrTooManyPages]) if Knot hands out a
// cursor it already handed out.
//
// # Webhooks
//
// Knot signs a webhook with HMAC-SHA256 keyed with the environment's API
// secret, but over a few values only: the Content-Length, Content-Type and
// Encryption-Type headers and the body's event and session_id fields. The
// API says so in its types. [VerifyWebhook] checks the Knot-Signature
// header (in constant time) and returns a [VerifiedWebhook] holding exactly
// what the signature covers: the event type and the session ID.
// [ParseWebhook] decodes the whole body into an [UnverifiedWebhook], whose
// other fields (task_id, external_user_id, merchant, data, timestamp) no
// signature vouches for.
//
// What someone who captured one signed webhook (from a log, a proxy, a
// misrouted delivery) can and cannot do:
//
//   - They can replay it as often as they like: nothing in it expires, and
//     the timestamp is not signed.
//   - They can change every unsigned field, as long as the body keeps its
//     length: another external_user_id, merchant, task_id, card_id, reason,
//     send_card, subscription or transaction IDs, metadata, timestamp. Such
//     a request still verifies, with the same event and session ID. For
//     events without a session_id (NEW_TRANSACTIONS_AVAILABLE,
//     ACCOUNT_LOGIN_REQUIRED, MERCHANT_STATUS_UPDATE, Shopping, Detect,
//     subscription events) only the event type is signed, so one captured
//     signature lets them send that event type about any user or merchant.
//   - They cannot change the event type, the session ID, the body length or
//     the signed headers, and they cannot produce a valid signature for any
//     other event or session without the secret.
//
// So, on top of verification:
//
//   - Accept webhooks only from Knot's source address ([WebhookSourceIP],
//     35.232.249.218 for every environment; Knot announces changes), taken
//     from the connection or from a proxy header your own proxy sets.
//   - Deduplicate: Knot retries deliveries (up to two more times) and
//     replays are free. Key on what is signed, the event and session ID,
//     plus whatever your own state says was already done for them.
//   - Treat the unverified fields as a hint of what to look at, and re-read
//     the state from the API before acting: [Client.GetAccount] with
//     ProductCardSwitcher for a card switch outcome,
//     [Client.SyncTransactions] for new transactions, [Client.GetTransaction]
//     and [Client.GetSubscription] for the IDs a webhook lists. Those calls
//     go over mutual TLS to Knot and cannot be forged by a webhook sender.
//   - Answer 200 quickly and do the work asynchronously (Knot waits 10 s).
//
// # Card data
//
// POST /card takes the card as a compact JWE. [Client.CardEncrypter]
// fetches Knot's key (GET /jwe/key) and returns a [CardEncrypter], which
// checks a [CardPayload] and encrypts it with go-jose (RSA-OAEP-256,
// A256GCM, the key's kid in the protected header); pass the result to
// [Client.SwitchCard] or [Client.UpdateCard]. The card types print and
// marshal as placeholders, so card data reaches no log line through them.
//
// # Data types
//
// Enumerations are open string types with constants: values Knot adds later
// decode as they are. Unknown fields are ignored, nullable fields are
// pointers, money is a decimal string ([Money]), datetimes are kept as sent
// ([DateTime]), webhook timestamps accept a number or a numeric string
// ([Timestamp]), and webhook task IDs are json.Number.
package knotclient
