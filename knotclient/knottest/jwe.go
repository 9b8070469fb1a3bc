package knottest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// jweKey is the RSA-2048 key behind GET /jwe/key. It is generated on first
// use, since most tests never need it.
type jweKey struct {
	once sync.Once
	key  *rsa.PrivateKey
	kid  string
	err  error

	mu    sync.Mutex
	cards []Card // accepted by POST /card, in order
}

// Card is a card POST /card accepted, as the server decrypted it. It holds
// card data in clear: it is for assertions in tests, and formats as a
// placeholder (without Payload) under every fmt verb and log/slog handler.
type Card struct {
	// TaskID is the CardSwitcher task_id ("" for CardUpdater).
	TaskID string
	// ExternalUserID and MerchantID are set for CardUpdater.
	ExternalUserID string
	MerchantID     int64
	// KeyID is the kid of the JWE; "" for the plain JSON variant.
	KeyID string
	// Payload is the card payload ({"user": ..., "card": ...}): the JWE's
	// decrypted plaintext, or the user and card of the plain variant.
	Payload json.RawMessage
}

// String describes the card without its payload.
func (c Card) String() string {
	return fmt.Sprintf("knottest.Card{TaskID:%q ExternalUserID:%q MerchantID:%d KeyID:%q Payload:REDACTED}",
		c.TaskID, c.ExternalUserID, c.MerchantID, c.KeyID)
}

// GoString is String.
func (c Card) GoString() string { return c.String() }

// Format writes String for every verb.
func (c Card) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue makes log/slog record String.
func (c Card) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Decode decodes Payload into v.
func (c Card) Decode(v any) error {
	if err := json.Unmarshal(c.Payload, v); err != nil {
		return fmt.Errorf("knottest: card payload: %w", err)
	}
	return nil
}

// Cards returns the cards POST /card accepted, in arrival order. Requests
// Knot would refuse (bad JWE, invalid card) are not in it. Reset does not
// clear it.
func (s *Server) Cards() []Card {
	j := &s.api.jwe
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Card, len(j.cards))
	for i, c := range j.cards {
		c.Payload = bytes.Clone(c.Payload)
		out[i] = c
	}
	return out
}

func (k *jweKey) record(c Card) {
	k.mu.Lock()
	k.cards = append(k.cards, c)
	k.mu.Unlock()
}

func (k *jweKey) get() (*rsa.PrivateKey, string, error) {
	k.once.Do(func() {
		k.key, k.err = rsa.GenerateKey(rand.Reader, 2048)
		k.kid = newUUID()
	})
	return k.key, k.kid, k.err
}

type jwkJSON struct {
	Alg    string   `json:"alg"`
	E      string   `json:"e"`
	KeyOps []string `json:"key_ops"`
	Kid    string   `json:"kid"`
	Kty    string   `json:"kty"`
	N      string   `json:"n"`
	Use    string   `json:"use"`
}

func (a *api) jweKeyHandler(*call) (int, any) {
	key, kid, err := a.jwe.get()
	if err != nil {
		return http.StatusInternalServerError, serverError{Message: "Server Error"}
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return http.StatusOK, jwkJSON{
		Alg:    "RSA-OAEP-256",
		E:      b64(big.NewInt(int64(key.E)).Bytes()),
		KeyOps: []string{"encrypt"},
		Kid:    kid,
		Kty:    "RSA",
		N:      b64(key.N.Bytes()),
		Use:    "enc",
	}
}

func invalidJWE(format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, typeInvalidRequest, codeInvalidJWE, format, args...)
}

// decryptJWE decrypts a compact JWE made with the key of GET /jwe/key,
// with the standard library only (independently of the go-jose code that
// knotclient encrypts with): RSA-OAEP-256 key wrapping, A256GCM content
// encryption, the key's kid in the protected header, nothing else.
func (a *api) decryptJWE(compact string) ([]byte, *apiError) {
	key, kid, err := a.jwe.get()
	if err != nil {
		return nil, invalidJWE("The encryption key is unavailable.")
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 5 {
		return nil, invalidJWE("The jwe must be a compact JWE with five parts.")
	}
	dec := make([][]byte, 5)
	for i, p := range parts {
		if dec[i], err = base64.RawURLEncoding.DecodeString(p); err != nil {
			return nil, invalidJWE("The jwe part %d is not base64url.", i+1)
		}
	}
	// The protected header must say exactly what Knot documents: alg
	// RSA-OAEP-256, enc A256GCM, the current kid. Any other member (zip,
	// crit, jku, ...) is refused rather than interpreted.
	var hdr map[string]any
	if err := json.Unmarshal(dec[0], &hdr); err != nil {
		return nil, invalidJWE("The jwe protected header is not a JSON object.")
	}
	for name := range hdr {
		switch name {
		case "alg", "enc", "kid", "typ", "cty":
		default:
			return nil, invalidJWE("The jwe protected header member %q is not supported.", shortName(name))
		}
	}
	alg, _ := hdr["alg"].(string)
	enc, _ := hdr["enc"].(string)
	hdrKid, _ := hdr["kid"].(string)
	switch {
	case alg != "RSA-OAEP-256":
		return nil, invalidJWE("The jwe alg must be RSA-OAEP-256.")
	case enc != "A256GCM":
		return nil, invalidJWE("The jwe enc must be A256GCM.")
	case hdrKid == "":
		return nil, invalidJWE("The jwe protected header has no kid.")
	case hdrKid != kid:
		return nil, invalidJWE("The jwe kid does not match the current key.")
	}
	cek, err := rsa.DecryptOAEP(sha256.New(), nil, key, dec[1], nil)
	if err != nil || len(cek) != 32 {
		return nil, invalidJWE("The jwe could not be decrypted.")
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, invalidJWE("The jwe could not be decrypted.")
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil || len(dec[2]) != gcm.NonceSize() || len(dec[4]) != gcm.Overhead() {
		return nil, invalidJWE("The jwe could not be decrypted.")
	}
	plain, err := gcm.Open(nil, dec[2], append(dec[3], dec[4]...), []byte(parts[0]))
	if err != nil {
		return nil, invalidJWE("The jwe could not be decrypted.")
	}
	return plain, nil
}

// card serves POST /card in its three forms: CardSwitcher (task_id + jwe),
// CardUpdater (jwe + external_user_id + merchant_id) and the plain JSON
// variant of the secure host (user + card instead of jwe).
func (a *api) card(c *call) (int, any) {
	f := c.fields()
	if f.has("task_id") {
		var s string
		var n int64
		if json.Unmarshal(f["task_id"], &s) != nil && json.Unmarshal(f["task_id"], &n) != nil {
			check(invalidField("The task_id must be a string."))
		}
	} else {
		if _, e := f.str("external_user_id", true); e != nil {
			check(invalidField("The task_id field is required when external_user_id is not present."))
		}
		knownUser(f)
		must2(f.integer("merchant_id", true))
		must(f.str("card_name", false))
		must(f.str("customer_name", false))
	}
	rec := Card{}
	if f.has("task_id") {
		rec.TaskID = rawText(f["task_id"])
	} else {
		rec.ExternalUserID = must(f.str("external_user_id", true))
		rec.MerchantID, _ = must2(f.integer("merchant_id", true))
	}
	if f.has("jwe") {
		plain := must(a.decryptJWE(must(f.str("jwe", true))))
		payload, e := decodeObject(plain)
		if e != nil {
			check(invalidJWE("The jwe payload must be a JSON object."))
		}
		if e := validateCard(payload); e != nil {
			e.Code = codeInvalidJWE
			check(e)
		}
		_, rec.KeyID, _ = a.jwe.get()
		rec.Payload = plain
		a.jwe.record(rec)
		return http.StatusOK, success
	}
	if !f.has("card") && !f.has("user") {
		check(required("jwe"))
	}
	check(validateCard(f))
	rec.Payload, _ = json.Marshal(map[string]json.RawMessage{"user": f["user"], "card": f["card"]})
	a.jwe.record(rec)
	return http.StatusOK, success
}

var (
	digitsRe     = regexp.MustCompile(`^[0-9]+$`)
	expirationRe = regexp.MustCompile(`^(0[1-9]|1[0-2])/([0-9]{2}|[0-9]{4})$`)
	countryRe    = regexp.MustCompile(`^[A-Z]{2}$`)
)

// validateCard checks a CardPayload ({user, card}) the way Knot documents.
// Messages never echo card data.
func validateCard(f fields) *apiError {
	var out *apiError
	func() {
		defer func() {
			if p := recover(); p != nil {
				e, ok := p.(*apiError)
				if !ok {
					panic(p)
				}
				out = e
			}
		}()
		user := mustFirst(f.object("user", true))
		name := mustFirst(user.object("name", true))
		for _, k := range []string{"first_name", "last_name"} {
			v, e := name.str(k, true)
			if e != nil {
				check(invalidField("The user.name.%s field is required.", k))
			}
			maxLen("user.name."+k, v, 255)
		}
		phone, e := user.str("phone_number", true)
		if e != nil {
			check(invalidField("The phone number field is required."))
		}
		check(checkPhone("phone_number", phone))
		addr := mustFirst(user.object("address", true))
		for _, k := range []struct {
			name string
			max  int
			req  bool
		}{{"street", 46, true}, {"street2", 46, false}, {"city", 32, true}, {"region", 6, true}, {"postal_code", 10, true}, {"country", 2, true}} {
			v, e := addr.str(k.name, k.req)
			if e != nil {
				check(invalidField("The user.address.%s field is required.", k.name))
			}
			maxLen("user.address."+k.name, v, k.max)
		}
		if pc := must(addr.str("postal_code", true)); len(pc) < 5 {
			check(invalidField("The user.address.postal_code must be between 5 and 10 characters."))
		}
		if !countryRe.MatchString(must(addr.str("country", true))) {
			check(invalidField("The user.address.country must be an ISO 3166-1 alpha-2 code."))
		}

		card := mustFirst(f.object("card", true))
		number, e := card.str("number", true)
		if e != nil {
			check(invalidField("The card number field is required."))
		}
		switch {
		case !digitsRe.MatchString(number):
			check(invalidField("The card number must be numeric."))
		case len(number) < 12:
			check(invalidField("The card number is too short."))
		case len(number) > 19:
			check(invalidField("The card number is too long."))
		case !luhn(number):
			check(invalidField("The card number is invalid."))
		}
		exp, e := card.str("expiration", true)
		if e != nil {
			check(invalidField("The card expiration field is required."))
		}
		m := expirationRe.FindStringSubmatch(exp)
		if m == nil {
			check(invalidField("The card expiration must be in the format MM/YYYY or MM/YY."))
		}
		month, _ := strconv.Atoi(m[1])
		year, _ := strconv.Atoi(m[2])
		if year < 100 {
			year += 2000
		}
		now := time.Now().UTC()
		if year < now.Year() || (year == now.Year() && month < int(now.Month())) {
			check(invalidField("The card is expired."))
		}
		cvv, e := card.str("cvv", true)
		if e != nil {
			check(invalidField("The card cvv field is required."))
		}
		switch {
		case !digitsRe.MatchString(cvv):
			check(invalidField("The card cvv must be numeric."))
		case len(cvv) < 3:
			check(invalidField("The card cvv is too short."))
		case len(cvv) > 4:
			check(invalidField("The card cvv is too long."))
		}
	}()
	return out
}

// rawText is a JSON string's value or a number's text.
func rawText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// shortName cuts a header member name for an error message.
func shortName(s string) string {
	if len(s) > 32 {
		return strings.ToValidUTF8(s[:32], "") + "..."
	}
	return s
}

func maxLen(name, v string, n int) {
	if len(v) > n {
		check(invalidField("The %s may not be greater than %s characters.", name, fmt.Sprint(n)))
	}
}

// luhn reports whether a digit string passes the Luhn check.
func luhn(number string) bool {
	sum := 0
	double := false
	for i := len(number) - 1; i >= 0; i-- {
		d := int(number[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
