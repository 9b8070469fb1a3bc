package knotclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Errors returned by the [Client] wrap them, so callers can
// test with errors.Is.
var (
	// ErrInvalidConfig is wrapped by every error [New] returns for a bad [Config].
	ErrInvalidConfig = errors.New("knotclient: invalid config")
	// ErrClosed is returned by calls made after [Client.Close].
	ErrClosed = errors.New("knotclient: client closed")
	// ErrInvalidArgument is returned, without any request being sent, when
	// a required argument that forms part of the URL (an ID) is empty.
	ErrInvalidArgument = errors.New("knotclient: invalid argument")
	// ErrDevelopmentOnly is returned by the development helpers when the
	// client is configured for [Production] or its BaseURL is a production
	// host.
	ErrDevelopmentOnly = errors.New("knotclient: endpoint exists only in the development environment")
	// ErrTooManyPages is yielded by the iterators when a listing did not end
	// within Config.MaxPages pages or Knot returned the same cursor twice.
	ErrTooManyPages = errors.New("knotclient: pagination did not terminate")
)

// SignError is the error of a call whose TLS handshake failed because the
// client certificate's key could not sign (a Vault Transit key whose Vault
// is unavailable or whose policy denies signing). crypto/tls keeps only the
// signer's text; when the signer records its errors (vaultsource's Transit
// signer does), Err is the signer's own typed error, so errors.Is(err,
// vaultsource.ErrUnavailable) and errors.As(err, **vaultsource.Error) work
// on the call's error. Such a call never reached Knot: it is retried (even
// when not idempotent) when Err says it is temporary, never on a
// permission problem.
type SignError struct {
	// Err is the signer's typed error, nil when the signer records none.
	Err error
	// TLS is the error crypto/tls returned.
	TLS error
}

// Error returns crypto/tls's text ("tls: failed to sign handshake: ...").
func (e *SignError) Error() string { return e.TLS.Error() }

// Unwrap returns the signer's error (if known) and the TLS error.
func (e *SignError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.TLS}
	}
	return []error{e.Err, e.TLS}
}

// ErrorType is Knot's error_type: a broad class of error. It is an open
// enum; values not listed here are kept as they are.
type ErrorType string

// Error types documented by Knot.
const (
	ErrorTypeInvalidInput         ErrorType = "INVALID_INPUT"
	ErrorTypeInvalidRequest       ErrorType = "INVALID_REQUEST"
	ErrorTypeUserError            ErrorType = "USER_ERROR"
	ErrorTypeSessionError         ErrorType = "SESSION_ERROR"
	ErrorTypeMerchantAccountError ErrorType = "MERCHANT_ACCOUNT_ERROR"
	ErrorTypeMerchantError        ErrorType = "MERCHANT_ERROR"
	ErrorTypeTransactionError     ErrorType = "TRANSACTION_ERROR"
	ErrorTypeCartError            ErrorType = "CART_ERROR"
	ErrorTypeSubscriptionError    ErrorType = "SUBSCRIPTION_ERROR"
)

// ErrorCode is Knot's error_code: the specific error. Branch on it (with
// [IsCode]) rather than on the HTTP status or the message. It is an open
// enum.
type ErrorCode string

// Error codes documented by Knot (and a few seen in the field).
const (
	CodeInvalidAPIKeys              ErrorCode = "INVALID_API_KEYS"
	CodeInvalidField                ErrorCode = "INVALID_FIELD"
	CodeInvalidJWE                  ErrorCode = "INVALID_JWE"
	CodeInvalidCursorFormat         ErrorCode = "INVALID_CURSOR_FORMAT"
	CodeUserNotFound                ErrorCode = "USER_NOT_FOUND"
	CodeMerchantAccountNotFound     ErrorCode = "MERCHANT_ACCOUNT_NOT_FOUND"
	CodeMerchantAccountDisconnected ErrorCode = "MERCHANT_ACCOUNT_DISCONNECTED"
	CodeSessionNotFound             ErrorCode = "SESSION_NOT_FOUND"
	CodeExtendNotSupported          ErrorCode = "EXTEND_NOT_SUPPORTED"
	CodeMerchantUnavailable         ErrorCode = "MERCHANT_UNAVAILABLE"
	CodeNoAccess                    ErrorCode = "NO_ACCESS"
	CodeTransactionNotFound         ErrorCode = "TRANSACTION_NOT_FOUND"
	CodeNoTransactions              ErrorCode = "NO_TRANSACTIONS"
	CodeCartNotFound                ErrorCode = "CART_NOT_FOUND"
	CodeFulfillmentNotFound         ErrorCode = "FULFILLMENT_NOT_FOUND"
	CodeProductNotEnabled           ErrorCode = "PRODUCT_NOT_ENABLED"
	CodeProductNotValid             ErrorCode = "PRODUCT_NOT_VALID"
	CodeOngoingOperation            ErrorCode = "ONGOING_OPERATION"
)

// maxErrorBody bounds how much of an error response is kept in [Error.Body].
const maxErrorBody = 2048

// Error is a response from Knot that reports a failure: any non-2xx status,
// or a 200 from POST /card whose body carries an error_message. Use
// errors.As to get at it.
//
// Error() names the operation, the status, and Knot's type, code and
// message; it never contains the API secret, request bodies, session IDs or
// card data.
type Error struct {
	// Operation is the method and path template, e.g. "GET /transactions/{id}".
	Operation string
	// StatusCode is the HTTP status.
	StatusCode int
	// Type, Code and Message are Knot's error_type, error_code and
	// error_message. For bodies without them (Knot's 500 body is
	// {"message":"Server Error"}) Message falls back to the "message" field,
	// and Type and Code are empty. Error() shows at most 512 bytes of
	// Message.
	Type    ErrorType
	Code    ErrorCode
	Message string
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
	// Attempts is how many times the request was sent.
	Attempts int
	// Body is the raw response body, truncated to 2 KiB. It is what the
	// server sent (with the client's own credentials, should a proxy echo
	// them, replaced by REDACTED) and is not shown by Error(); treat it like
	// a response body.
	Body []byte
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("knotclient: ")
	if e.Operation != "" {
		b.WriteString(e.Operation)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" && e.StatusCode != http.StatusOK {
		b.WriteString(" " + t)
	}
	if e.Type != "" || e.Code != "" {
		fmt.Fprintf(&b, " %s/%s", enumText(string(e.Type)), enumText(string(e.Code)))
	}
	if msg := e.Message; msg != "" {
		if len(msg) > maxErrorMessage {
			msg = strings.ToValidUTF8(msg[:maxErrorMessage], "") + "..."
		}
		fmt.Fprintf(&b, ": %q", msg)
	} else if len(e.Body) > 0 && !json.Valid(e.Body) {
		fmt.Fprintf(&b, ": non-JSON body (%d bytes)", len(e.Body))
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// maxErrorMessage bounds how much of Message [Error.Error] shows.
const maxErrorMessage = 512

// maxErrorEnum bounds how much of Type and Code [Error.Error] shows.
const maxErrorEnum = 64

// enumText shows an error_type or error_code as is when it looks like one
// (at most 64 letters, digits, _ or -), otherwise quoted and cut, so that a
// body cannot make Error() long or break it over lines (found by
// FuzzErrorBody).
func enumText(s string) string {
	plain := len(s) <= maxErrorEnum
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
	}
	if plain {
		return s
	}
	if len(s) > maxErrorEnum {
		s = strings.ToValidUTF8(s[:maxErrorEnum], "") + "..."
	}
	return strconv.Quote(s)
}

// IsCode reports whether err is (or wraps) an [*Error] with the given code.
func IsCode(err error, code ErrorCode) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// IsStatus reports whether err is (or wraps) an [*Error] with the given
// HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == status
}

// errorBody is the union of the shapes Knot uses for errors.
type errorBody struct {
	Type         ErrorType `json:"error_type"`
	Code         ErrorCode `json:"error_code"`
	ErrorMessage string    `json:"error_message"`
	Message      string    `json:"message"`
}

// newError builds an *Error from a response. It never fails: a body that is
// not JSON, or JSON of another shape, leaves Type, Code and Message empty.
// Any of secrets (the client's own credentials) found in the body is
// replaced by REDACTED before anything is kept: Knot does not echo
// credentials, but a proxy in front of it might echo the request.
func newError(op string, status int, body []byte, secrets ...string) *Error {
	for _, s := range secrets {
		if len(s) >= 4 { // shorter is indistinguishable from ordinary text
			body = bytes.ReplaceAll(body, []byte(s), []byte("REDACTED"))
		}
	}
	e := &Error{Operation: op, StatusCode: status}
	if len(body) > maxErrorBody {
		e.Body = bytes.Clone(body[:maxErrorBody])
	} else {
		e.Body = bytes.Clone(body)
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		e.Type, e.Code, e.Message = eb.Type, eb.Code, eb.ErrorMessage
		if e.Message == "" {
			e.Message = eb.Message
		}
		for _, s := range secrets { // it may have been JSON-escaped in the body
			if len(s) >= 4 {
				e.Message = strings.ReplaceAll(e.Message, s, "REDACTED")
			}
		}
	}
	return e
}
