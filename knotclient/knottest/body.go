package knottest

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
)

// fields is a decoded JSON object, validated field by field so the error
// messages can name the field the way Knot's validation does.
type fields map[string]json.RawMessage

// decodeObject decodes a request body that must be a JSON object. An empty
// body is an empty object (some endpoints have no required fields).
func decodeObject(body []byte) (fields, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return fields{}, nil
	}
	var f fields
	if err := json.Unmarshal(body, &f); err != nil || f == nil {
		return nil, invalidField("The request body must be a JSON object.")
	}
	return f, nil
}

// has reports whether name is present and not null.
func (f fields) has(name string) bool {
	raw, ok := f[name]
	return ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func required(name string) *apiError {
	return invalidField("The %s field is required.", name)
}

// str returns a string field. Required fields must be present and not
// empty.
func (f fields) str(name string, req bool) (string, *apiError) {
	if !f.has(name) {
		if req {
			return "", required(name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(f[name], &s); err != nil {
		return "", invalidField("The %s must be a string.", name)
	}
	if req && strings.TrimSpace(s) == "" {
		return "", required(name)
	}
	return s, nil
}

// integer returns an integer field and whether it was present.
func (f fields) integer(name string, req bool) (int64, bool, *apiError) {
	if !f.has(name) {
		if req {
			return 0, false, required(name)
		}
		return 0, false, nil
	}
	raw := bytes.TrimSpace(f[name])
	var n json.Number
	// json.Number also accepts a quoted number; Knot's IDs are JSON numbers,
	// so "19" is refused to catch clients that send strings.
	if len(raw) > 0 && raw[0] == '"' {
		return 0, false, invalidField("The %s must be an integer.", name)
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false, invalidField("The %s must be an integer.", name)
	}
	v, err := n.Int64()
	if err != nil {
		return 0, false, invalidField("The %s must be an integer.", name)
	}
	return v, true, nil
}

// boolean returns a boolean field and whether it was present.
func (f fields) boolean(name string) (bool, bool, *apiError) {
	if !f.has(name) {
		return false, false, nil
	}
	var b bool
	if err := json.Unmarshal(f[name], &b); err != nil {
		return false, false, invalidField("The %s field must be true or false.", name)
	}
	return b, true, nil
}

// object returns a nested object field and whether it was present.
func (f fields) object(name string, req bool) (fields, bool, *apiError) {
	if !f.has(name) {
		if req {
			return nil, false, required(name)
		}
		return nil, false, nil
	}
	var o fields
	if err := json.Unmarshal(f[name], &o); err != nil || o == nil {
		return nil, false, invalidField("The %s must be an object.", name)
	}
	return o, true, nil
}

// objects returns an array-of-objects field.
func (f fields) objects(name string, req bool) ([]fields, *apiError) {
	if !f.has(name) {
		if req {
			return nil, required(name)
		}
		return nil, nil
	}
	var list []fields
	if err := json.Unmarshal(f[name], &list); err != nil {
		return nil, invalidField("The %s must be an array of objects.", name)
	}
	if req && len(list) == 0 {
		return nil, required(name)
	}
	for i, o := range list {
		if o == nil {
			return nil, invalidField("The %s.%d must be an object.", name, i)
		}
	}
	return list, nil
}

// strings returns an array-of-strings field.
func (f fields) strings(name string, req bool) ([]string, *apiError) {
	if !f.has(name) {
		if req {
			return nil, required(name)
		}
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(f[name], &list); err != nil {
		return nil, invalidField("The %s must be an array of strings.", name)
	}
	if req && len(list) == 0 {
		return nil, required(name)
	}
	return list, nil
}

// oneOf checks that a present string value is in allowed.
func oneOf(name, value string, allowed ...string) *apiError {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return invalidField("The selected %s is invalid.", name)
}

var (
	e164Re  = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	emailRe = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

func checkPhone(name, v string) *apiError {
	if !e164Re.MatchString(v) {
		return invalidField("The %s format is invalid.", strings.ReplaceAll(name, "_", " "))
	}
	return nil
}

func checkEmail(name, v string) *apiError {
	if !emailRe.MatchString(v) {
		return invalidField("The %s must be a valid email address.", name)
	}
	return nil
}
