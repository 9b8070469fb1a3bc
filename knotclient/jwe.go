package knotclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// The JWE algorithms Knot's card switch takes: RSA-OAEP-256 key wrapping
// and A256GCM content encryption.
const (
	JWEKeyAlgorithm     = "RSA-OAEP-256"
	JWEContentAlgorithm = "A256GCM"
)

// ErrInvalidCard is wrapped by [CardEncrypter.Encrypt] when the card data
// would be refused by Knot (a required field is empty, the number is not
// a Luhn-valid 12-19 digit string, the CVV is not 3-4 digits, the
// expiration is not MM/YY or MM/YYYY). The error names the field, never
// its value.
var ErrInvalidCard = errors.New("knotclient: invalid card data")

// CardPayload is the plaintext of a card sent to POST /card: the card
// holder and the card. Encrypt it with [CardEncrypter.Encrypt]; never send
// or log it in clear.
//
// It, and every type inside it, formats as a placeholder under every fmt
// verb and log/slog handler, and json.Marshal encodes it as the string
// "REDACTED" (slog's JSON handler marshals structs that hold it): card
// numbers, CVVs, names, phone numbers and addresses never reach a log line
// by way of these types. Only [CardEncrypter.Encrypt] sees the real JSON.
// (fmt prints unexported struct fields without calling their methods:
// keep a CardPayload in an exported field, or behind a pointer, of a
// struct you might print.)
type CardPayload struct {
	User CardUser    `json:"user"`
	Card CardDetails `json:"card"`
}

// CardUser is the card holder.
type CardUser struct {
	Name CardHolderName `json:"name"`
	// PhoneNumber in E.164, e.g. +14155550123.
	PhoneNumber string      `json:"phone_number"`
	Address     CardAddress `json:"address"`
}

// CardHolderName is the card holder's name (each part at most 255
// characters).
type CardHolderName struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

// CardAddress is the billing address.
type CardAddress struct {
	Street  string `json:"street"`            // at most 46 characters
	Street2 string `json:"street2,omitempty"` // at most 46 characters
	City    string `json:"city"`              // at most 32 characters
	// Region is an ISO 3166-2 subdivision code, e.g. "NY".
	Region string `json:"region"`
	// PostalCode is 5 to 10 characters.
	PostalCode string `json:"postal_code"`
	// Country is an ISO 3166-1 alpha-2 code, e.g. "US".
	Country string `json:"country"`
}

// CardDetails is the card itself.
type CardDetails struct {
	// Number is the card number, digits only.
	Number string `json:"number"`
	// Expiration is MM/YYYY or MM/YY.
	Expiration string `json:"expiration"`
	// CVV is 3 or 4 digits.
	CVV string `json:"cvv"`
}

// cardPlaceholder is what every card type formats as.
func cardPlaceholder(name string) string { return "knotclient." + name + "{REDACTED}" }

// String returns a placeholder: the payload is card data.
func (CardPayload) String() string { return cardPlaceholder("CardPayload") }

// GoString returns the same placeholder as String.
func (p CardPayload) GoString() string { return p.String() }

// Format writes the placeholder for every verb.
func (p CardPayload) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

// LogValue makes log/slog record the placeholder.
func (p CardPayload) LogValue() slog.Value { return slog.StringValue(p.String()) }

// String returns a placeholder: the holder is personal data.
func (CardUser) String() string { return cardPlaceholder("CardUser") }

// GoString returns the same placeholder as String.
func (u CardUser) GoString() string { return u.String() }

// Format writes the placeholder for every verb.
func (u CardUser) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, u.String()) }

// LogValue makes log/slog record the placeholder.
func (u CardUser) LogValue() slog.Value { return slog.StringValue(u.String()) }

// String returns a placeholder: the name is personal data.
func (CardHolderName) String() string { return cardPlaceholder("CardHolderName") }

// GoString returns the same placeholder as String.
func (n CardHolderName) GoString() string { return n.String() }

// Format writes the placeholder for every verb.
func (n CardHolderName) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, n.String()) }

// LogValue makes log/slog record the placeholder.
func (n CardHolderName) LogValue() slog.Value { return slog.StringValue(n.String()) }

// String returns a placeholder: the address is personal data.
func (CardAddress) String() string { return cardPlaceholder("CardAddress") }

// GoString returns the same placeholder as String.
func (a CardAddress) GoString() string { return a.String() }

// Format writes the placeholder for every verb.
func (a CardAddress) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, a.String()) }

// LogValue makes log/slog record the placeholder.
func (a CardAddress) LogValue() slog.Value { return slog.StringValue(a.String()) }

// String returns a placeholder: the details are card data.
func (CardDetails) String() string { return cardPlaceholder("CardDetails") }

// GoString returns the same placeholder as String.
func (d CardDetails) GoString() string { return d.String() }

// Format writes the placeholder for every verb.
func (d CardDetails) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, d.String()) }

// LogValue makes log/slog record the placeholder.
func (d CardDetails) LogValue() slog.Value { return slog.StringValue(d.String()) }

// redactedJSON is what every card type marshals to.
var redactedJSON = []byte(`"REDACTED"`)

// MarshalJSON encodes the placeholder "REDACTED".
func (CardPayload) MarshalJSON() ([]byte, error) { return redactedJSON, nil }

// MarshalJSON encodes the placeholder "REDACTED".
func (CardUser) MarshalJSON() ([]byte, error) { return redactedJSON, nil }

// MarshalJSON encodes the placeholder "REDACTED".
func (CardHolderName) MarshalJSON() ([]byte, error) { return redactedJSON, nil }

// MarshalJSON encodes the placeholder "REDACTED".
func (CardAddress) MarshalJSON() ([]byte, error) { return redactedJSON, nil }

// MarshalJSON encodes the placeholder "REDACTED".
func (CardDetails) MarshalJSON() ([]byte, error) { return redactedJSON, nil }

// The wire form of a CardPayload: the same fields, without the redacting
// methods. Only Encrypt marshals it.
type (
	wireCard struct {
		User wireUser       `json:"user"`
		Card wireCardDetail `json:"card"`
	}
	wireUser struct {
		Name        wireName    `json:"name"`
		PhoneNumber string      `json:"phone_number"`
		Address     wireAddress `json:"address"`
	}
	wireName       CardHolderName
	wireAddress    CardAddress
	wireCardDetail CardDetails
)

func (p *CardPayload) wire() wireCard {
	return wireCard{
		User: wireUser{Name: wireName(p.User.Name), PhoneNumber: p.User.PhoneNumber, Address: wireAddress(p.User.Address)},
		Card: wireCardDetail(p.Card),
	}
}

var (
	cardDigits     = regexp.MustCompile(`^[0-9]+$`)
	cardExpiration = regexp.MustCompile(`^(0[1-9]|1[0-2])/([0-9]{2}|[0-9]{4})$`)
)

// validate checks what Knot would refuse without looking at the calendar
// (an expired card is Knot's to report). Errors name fields, not values.
func (p *CardPayload) validate() error {
	required := []struct{ name, v string }{
		{"user.name.first_name", p.User.Name.FirstName}, {"user.name.last_name", p.User.Name.LastName},
		{"user.phone_number", p.User.PhoneNumber}, {"user.address.street", p.User.Address.Street},
		{"user.address.city", p.User.Address.City}, {"user.address.region", p.User.Address.Region},
		{"user.address.postal_code", p.User.Address.PostalCode}, {"user.address.country", p.User.Address.Country},
		{"card.number", p.Card.Number}, {"card.expiration", p.Card.Expiration}, {"card.cvv", p.Card.CVV},
	}
	for _, f := range required {
		if f.v == "" {
			return fmt.Errorf("%w: %s is required", ErrInvalidCard, f.name)
		}
	}
	n := p.Card.Number
	switch {
	case !cardDigits.MatchString(n) || len(n) < 12 || len(n) > 19:
		return fmt.Errorf("%w: card.number must be 12 to 19 digits", ErrInvalidCard)
	case !luhnValid(n):
		return fmt.Errorf("%w: card.number fails the Luhn check", ErrInvalidCard)
	case !cardDigits.MatchString(p.Card.CVV) || len(p.Card.CVV) < 3 || len(p.Card.CVV) > 4:
		return fmt.Errorf("%w: card.cvv must be 3 or 4 digits", ErrInvalidCard)
	case !cardExpiration.MatchString(p.Card.Expiration):
		return fmt.Errorf("%w: card.expiration must be MM/YYYY or MM/YY", ErrInvalidCard)
	}
	return nil
}

func luhnValid(digits string) bool {
	sum, double := 0, false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// CardEncrypter encrypts card data to one of Knot's JWE keys, the way
// POST /card expects it: a compact JWE with alg RSA-OAEP-256, enc A256GCM
// and the key's kid in the protected header, built by go-jose. It is safe
// for concurrent use; make one per key and reuse it (fetching the key is a
// round trip the 15 s card switch window can do without).
//
// If Knot answers INVALID_JWE after a key rotation, get a new encrypter
// with [Client.CardEncrypter].
type CardEncrypter struct {
	kid string
	enc jose.Encrypter
}

// NewCardEncrypter checks key (from [Client.GetJWEKey]) and returns an
// encrypter for it. It refuses a key that is not an RSA encryption key of
// at least 2048 bits (see [JWK.PublicKey]), whose alg is set to anything
// but RSA-OAEP-256, whose key_ops are set without "encrypt", or that has
// no kid (Knot requires the kid in the header).
func NewCardEncrypter(key *JWK) (*CardEncrypter, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: NewCardEncrypter needs a key", ErrInvalidArgument)
	}
	if key.Alg != "" && key.Alg != JWEKeyAlgorithm {
		return nil, fmt.Errorf("knotclient: jwk: alg %q is not %s", shorten(key.Alg, 32), JWEKeyAlgorithm)
	}
	if len(key.KeyOps) > 0 && !slices.Contains(key.KeyOps, "encrypt") {
		return nil, errors.New("knotclient: jwk: key_ops does not allow encrypt")
	}
	if key.Kid == "" {
		return nil, errors.New("knotclient: jwk: no kid")
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	enc, err := jose.NewEncrypter(jose.A256GCM,
		jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub, KeyID: key.Kid}, nil)
	if err != nil {
		return nil, fmt.Errorf("knotclient: jwe: %w", err)
	}
	return &CardEncrypter{kid: key.Kid, enc: enc}, nil
}

// KeyID returns the kid of the key the encrypter encrypts to.
func (e *CardEncrypter) KeyID() string { return e.kid }

// Encrypt checks card (see [ErrInvalidCard]) and returns it as a compact
// JWE for [SwitchCardRequest].JWE or [UpdateCardRequest].JWE. Each call
// uses a fresh content key and IV. Errors never contain card data.
func (e *CardEncrypter) Encrypt(card *CardPayload) (string, error) {
	if card == nil {
		return "", fmt.Errorf("%w: Encrypt needs a card", ErrInvalidArgument)
	}
	if err := card.validate(); err != nil {
		return "", err
	}
	plain, err := json.Marshal(card.wire())
	if err != nil {
		return "", fmt.Errorf("knotclient: jwe: encode card: %w", err)
	}
	defer clear(plain)
	obj, err := e.enc.Encrypt(plain)
	if err != nil {
		return "", fmt.Errorf("knotclient: jwe: encrypt: %w", err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("knotclient: jwe: serialize: %w", err)
	}
	return out, nil
}

// CardEncrypter fetches Knot's current JWE key ([Client.GetJWEKey]) and
// returns an encrypter for it ([NewCardEncrypter]).
func (c *Client) CardEncrypter(ctx context.Context) (*CardEncrypter, error) {
	key, err := c.GetJWEKey(ctx)
	if err != nil {
		return nil, err
	}
	return NewCardEncrypter(key)
}
