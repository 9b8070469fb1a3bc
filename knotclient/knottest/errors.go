package knottest

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error types and codes the fake answers with, from the Knot API reference.
// RATE_LIMIT / RATE_LIMIT_EXCEEDED (429) and NOT_FOUND (unknown route) are
// not documented by Knot; they are this fake's choice.
const (
	typeInvalidInput    = "INVALID_INPUT"
	typeInvalidRequest  = "INVALID_REQUEST"
	typeUser            = "USER_ERROR"
	typeSession         = "SESSION_ERROR"
	typeMerchantAccount = "MERCHANT_ACCOUNT_ERROR"
	typeTransaction     = "TRANSACTION_ERROR"
	typeSubscription    = "SUBSCRIPTION_ERROR"

	codeInvalidAPIKeys       = "INVALID_API_KEYS"
	codeInvalidField         = "INVALID_FIELD"
	codeInvalidJWE           = "INVALID_JWE"
	codeInvalidCursor        = "INVALID_CURSOR_FORMAT"
	codeProductNotValid      = "PRODUCT_NOT_VALID"
	codeUserNotFound         = "USER_NOT_FOUND"
	codeAccountNotFound      = "MERCHANT_ACCOUNT_NOT_FOUND"
	codeAccountDisconnected  = "MERCHANT_ACCOUNT_DISCONNECTED"
	codeSessionNotFound      = "SESSION_NOT_FOUND"
	codeNoAccess             = "NO_ACCESS"
	codeTransactionNotFound  = "TRANSACTION_NOT_FOUND"
	codeSubscriptionNotFound = "SUBSCRIPTION_NOT_FOUND"
)

// apiError is a Knot-shaped error response.
type apiError struct {
	status int
	Type   string `json:"error_type"`
	Code   string `json:"error_code"`
	Msg    string `json:"error_message"`
}

func newAPIError(status int, typ, code, format string, args ...any) *apiError {
	return &apiError{status: status, Type: typ, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func invalidField(format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, typeInvalidRequest, codeInvalidField, format, args...)
}

func invalidAPIKeys(msg string) *apiError {
	return newAPIError(http.StatusUnauthorized, typeInvalidInput, codeInvalidAPIKeys, "%s", msg)
}

// serverError is the body Knot documents for 500, which does not follow the
// error schema.
type serverError struct {
	Message string `json:"message"`
}

// faultBody returns the body the fake sends for an injected status: the
// documented Knot shape where there is one, {"message":"Server Error"} for
// 500 and {"message":<status text>} for other 5xx.
func faultBody(status int) any {
	switch {
	case status == http.StatusInternalServerError:
		return serverError{Message: "Server Error"}
	case status >= 500:
		return serverError{Message: http.StatusText(status)}
	case status == http.StatusBadRequest:
		return invalidField("The request is invalid.")
	case status == http.StatusUnauthorized:
		return invalidAPIKeys("Invalid client_id or secret provided.")
	case status == http.StatusForbidden:
		return newAPIError(status, typeInvalidRequest, codeNoAccess, "You do not have access to this product or endpoint.")
	case status == http.StatusNotFound:
		return newAPIError(status, typeInvalidRequest, "NOT_FOUND", "The requested resource could not be found.")
	case status == http.StatusTooManyRequests:
		return newAPIError(status, "RATE_LIMIT", "RATE_LIMIT_EXCEEDED", "Too many requests. Retry later.")
	case status >= 400:
		return newAPIError(status, typeInvalidRequest, codeInvalidField, "%s", http.StatusText(status))
	default:
		return message{Message: "Success"}
	}
}

// message is the {"message":"Success"} body of accepted operations.
type message struct {
	Message string `json:"message"`
}

var success = message{Message: "Success"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"message":"Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
