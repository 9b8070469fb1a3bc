package knotclient

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
)

// JWK is the public key (RSA, for encryption) from GET /jwe/key. Encrypt
// card data to it with a [CardEncrypter] ([NewCardEncrypter] or
// [Client.CardEncrypter]): a compact JWE with alg RSA-OAEP-256, enc A256GCM
// and the JWK's kid and alg in the protected header.
type JWK struct {
	Alg    string   `json:"alg"`
	E      string   `json:"e"`
	KeyOps []string `json:"key_ops"`
	Kid    string   `json:"kid"`
	Kty    string   `json:"kty"`
	N      string   `json:"n"`
	Use    string   `json:"use"`
}

// minJWKBits is the smallest RSA modulus [JWK.PublicKey] accepts: Knot's
// key is RSA-2048, and card data must not be encrypted to anything weaker.
const minJWKBits = 2048

// PublicKey decodes the RSA public key. It refuses a key that is not fit to
// encrypt card data to: a modulus under 2048 bits, an exponent that is even
// or below 3, or a key whose "use" is set to something other than "enc".
func (k *JWK) PublicKey() (*rsa.PublicKey, error) {
	if k.Kty != "RSA" {
		return nil, fmt.Errorf("knotclient: jwk: key type %q is not RSA", k.Kty)
	}
	if k.Use != "" && k.Use != "enc" {
		return nil, fmt.Errorf("knotclient: jwk: key use %q is not enc", k.Use)
	}
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil || len(n) == 0 {
		return nil, errors.New("knotclient: jwk: malformed modulus")
	}
	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("knotclient: jwk: malformed exponent")
	}
	exp := 0
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 || exp > 1<<31-1 {
		return nil, fmt.Errorf("knotclient: jwk: unsafe RSA exponent %d", exp)
	}
	mod := new(big.Int).SetBytes(n)
	if bits := mod.BitLen(); bits < minJWKBits {
		return nil, fmt.Errorf("knotclient: jwk: RSA modulus of %d bits is below %d", bits, minJWKBits)
	}
	return &rsa.PublicKey{N: mod, E: exp}, nil
}

// GetJWEKey returns the public key to encrypt card data to: GET /jwe/key.
//
// Retried: it only reads.
func (c *Client) GetJWEKey(ctx context.Context) (*JWK, error) {
	var out JWK
	if err := c.do(ctx, call{method: "GET", op: "GET /jwe/key", path: "/jwe/key", retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SwitchCardRequest is the CardSwitcher body of POST /card.
type SwitchCardRequest struct {
	// TaskID is the task_id of the AUTHENTICATED webhook, as a string
	// (string(webhook.TaskID)).
	TaskID string `json:"task_id"`
	// JWE is the card payload (user + card) encrypted to [Client.GetJWEKey]'s
	// key, in compact serialization: the output of [CardEncrypter.Encrypt].
	JWE string `json:"jwe"`
}

// SwitchCard sends the encrypted card for a CardSwitcher task: POST /card.
// It must be sent within 15 s of the AUTHENTICATED webhook. Success means
// Knot accepted the payload; the outcome arrives as CARD_UPDATED or
// CARD_FAILED. A 200 response that carries an error_message is returned as
// an [*Error].
//
// Never retried: one task takes one card; a retry could race the 15 s
// window or switch twice. Decide on the error yourself.
func (c *Client) SwitchCard(ctx context.Context, req SwitchCardRequest) error {
	if req.TaskID == "" || req.JWE == "" {
		return fmt.Errorf("%w: SwitchCard needs TaskID and JWE", ErrInvalidArgument)
	}
	return c.do(ctx, call{method: "POST", op: "POST /card", path: "/card", body: req, errorIn200: true}, nil)
}

// UpdateCardRequest is the CardUpdater body of POST /card.
type UpdateCardRequest struct {
	// JWE is the card payload encrypted with [CardEncrypter.Encrypt].
	JWE            string `json:"jwe"`
	ExternalUserID string `json:"external_user_id"`
	MerchantID     int    `json:"merchant_id"`
	CardName       string `json:"card_name,omitempty"`
	CustomerName   string `json:"customer_name,omitempty"`
}

// UpdateCard sends an encrypted card to update on file at a merchant
// account (CardUpdater): POST /card. Like [Client.SwitchCard], an
// error_message in a 200 body is a failure.
//
// Never retried, for the same reasons as SwitchCard.
func (c *Client) UpdateCard(ctx context.Context, req UpdateCardRequest) error {
	if req.JWE == "" {
		return fmt.Errorf("%w: UpdateCard needs JWE", ErrInvalidArgument)
	}
	return c.do(ctx, call{method: "POST", op: "POST /card", path: "/card", body: req, errorIn200: true}, nil)
}
