package knottest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sessionTTL is how long a Knot SDK session lives, and how much
// /session/extend adds.
const sessionTTL = 30 * time.Minute

type session struct {
	typ     string
	user    string
	expires time.Time
}

type account struct {
	status string // connected | disconnected
	scopes []string
}

// api holds the fixture state and serves the endpoints.
type api struct {
	routes []route

	mu       sync.Mutex
	sessions map[string]*session
	accounts map[string]map[int64]*account // by external_user_id, then merchant id

	jwe jweKey
}

// call is one request as a handler sees it.
type call struct {
	r      *http.Request
	body   []byte
	params map[string]string
}

type route struct {
	method string
	segs   []string
	h      func(*call) (int, any)
}

func newAPI() *api {
	a := &api{
		sessions: make(map[string]*session),
		accounts: make(map[string]map[int64]*account),
	}
	add := func(method, pattern string, h func(*call) (int, any)) {
		a.routes = append(a.routes, route{method: method, segs: strings.Split(strings.Trim(pattern, "/"), "/"), h: h})
	}
	add(http.MethodPost, "/session/create", a.sessionCreate)
	add(http.MethodPost, "/session/extend", a.sessionExtend)
	add(http.MethodPost, "/merchant/list", a.merchantList)
	add(http.MethodGet, "/accounts/get", a.accountsGet)
	add(http.MethodPost, "/accounts/unlink", a.accountsUnlink)
	add(http.MethodGet, "/jwe/key", a.jweKeyHandler)
	add(http.MethodPost, "/card", a.card)
	add(http.MethodPost, "/transactions/sync", a.transactionsSync)
	add(http.MethodPost, "/transactions/refresh", a.transactionsRefresh)
	add(http.MethodGet, "/transactions/{id}", a.transactionGet)
	add(http.MethodPost, "/cart", a.cart)
	add(http.MethodPost, "/cart/checkout", a.cartCheckout)
	add(http.MethodPost, "/subscriptions/list", a.subscriptionsList)
	add(http.MethodGet, "/subscriptions/{id}", a.subscriptionGet)
	add(http.MethodPost, "/subscriptions/{id}/cancel", a.subscriptionCancel)
	add(http.MethodPost, "/detect", a.detect)
	add(http.MethodPost, "/detected-accounts/list", a.detectedList)
	add(http.MethodPost, "/detected-accounts/search", a.detectedSearch)
	add(http.MethodPost, "/development/accounts/link", a.devLink)
	add(http.MethodPost, "/development/accounts/disconnect", a.devDisconnect)
	return a
}

// match reports whether segs matches the route's pattern, filling params.
func (rt route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range rt.segs {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string)
			}
			params[p[1:len(p)-1]] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// serve dispatches to the endpoint. Handlers report validation errors by
// panicking with an *apiError (see check); serve turns it into the response.
func (a *api) serve(w http.ResponseWriter, r *http.Request, body []byte) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var allowed []string
	for _, rt := range a.routes {
		params, ok := rt.match(segs)
		if !ok {
			continue
		}
		if rt.method != r.Method {
			allowed = append(allowed, rt.method)
			continue
		}
		status, v := a.run(rt.h, &call{r: r, body: body, params: params})
		writeJSON(w, status, v)
		return
	}
	if len(allowed) > 0 {
		slices.Sort(allowed)
		w.Header().Set("Allow", strings.Join(slices.Compact(allowed), ", "))
		writeJSON(w, http.StatusMethodNotAllowed, newAPIError(http.StatusMethodNotAllowed, typeInvalidRequest,
			"METHOD_NOT_ALLOWED", "The %s method is not supported for this route.", r.Method))
		return
	}
	writeJSON(w, http.StatusNotFound, newAPIError(http.StatusNotFound, typeInvalidRequest, "NOT_FOUND",
		"The route %s could not be found.", r.URL.Path))
}

func (a *api) run(h func(*call) (int, any), c *call) (status int, v any) {
	defer func() {
		if p := recover(); p != nil {
			e, ok := p.(*apiError)
			if !ok {
				panic(p)
			}
			status, v = e.status, e
		}
	}()
	return h(c)
}

// check aborts the handler with e when e is not nil.
func check(e *apiError) {
	if e != nil {
		panic(e)
	}
}

func must[T any](v T, e *apiError) T {
	check(e)
	return v
}

func (c *call) fields() fields {
	return must(decodeObject(c.body))
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ---- users and accounts ----

func checkUser(user string) {
	if user == UnknownUserID {
		check(newAPIError(http.StatusNotFound, typeUser, codeUserNotFound, "The user could not be found."))
	}
}

// knownUser reads external_user_id (required) and checks that the user exists.
func knownUser(f fields) string {
	user := must(f.str("external_user_id", true))
	checkUser(user)
	return user
}

// userAccounts returns the user's accounts, creating the defaults on first
// use. The caller holds a.mu.
func (a *api) userAccounts(user string) map[int64]*account {
	accts, ok := a.accounts[user]
	if !ok {
		accts = make(map[int64]*account)
		for _, d := range defaultAccounts {
			accts[d.merchantID] = &account{status: "connected", scopes: slices.Clone(d.scopes)}
		}
		a.accounts[user] = accts
	}
	return accts
}

func accountNotFound() *apiError {
	return newAPIError(http.StatusNotFound, typeMerchantAccount, codeAccountNotFound,
		"The merchant account could not be found for this user.")
}

// account returns a copy of the user's account at merchant mid.
func (a *api) account(user string, mid int64) account {
	a.mu.Lock()
	defer a.mu.Unlock()
	acct, ok := a.userAccounts(user)[mid]
	if !ok {
		check(accountNotFound())
	}
	return account{status: acct.status, scopes: slices.Clone(acct.scopes)}
}

// connectedAccount is account plus a check that it is connected.
func (a *api) connectedAccount(user string, mid int64) account {
	acct := a.account(user, mid)
	if acct.status != "connected" {
		check(newAPIError(http.StatusBadRequest, typeMerchantAccount, codeAccountDisconnected,
			"The merchant account is disconnected; the user must log in again."))
	}
	return acct
}

func merchantField(f fields) (int64, *merchant) {
	mid, _ := must2(f.integer("merchant_id", true))
	return mid, merchantByID(mid)
}

func must2[A, B any](a A, b B, e *apiError) (A, B) {
	check(e)
	return a, b
}

// ---- pagination ----

func limitField(f fields, def int) int {
	n, ok := must2(f.integer("limit", false))
	if !ok {
		return def
	}
	if n < 1 || n > MaxLimit {
		check(invalidField("The limit must be between 1 and %d.", MaxLimit))
	}
	return int(n)
}

func badCursor() *apiError {
	return newAPIError(http.StatusBadRequest, typeInvalidRequest, codeInvalidCursor, "The cursor format is invalid.")
}

func encodeCursor(parts ...string) *string {
	s := base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, ":")))
	return &s
}

// decodeCursor returns the integer after prefix parts, checking the prefix.
func decodeCursor(cursor string, prefix ...string) int {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		check(badCursor())
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != len(prefix)+1 || !slices.Equal(parts[:len(prefix)], prefix) {
		check(badCursor())
	}
	n, err := strconv.Atoi(parts[len(prefix)])
	if err != nil || n < 0 {
		check(badCursor())
	}
	return n
}

// page slices items for a cursor list endpoint.
func page[T any](f fields, kind string, items []T) ([]T, *string, int) {
	limit := limitField(f, DefaultListLimit)
	cursor := must(f.str("cursor", false))
	offset := 0
	if cursor != "" {
		offset = decodeCursor(cursor, kind)
		if offset > len(items) {
			check(badCursor())
		}
	}
	end := min(offset+limit, len(items))
	var next *string
	if end < len(items) {
		next = encodeCursor(kind, strconv.Itoa(end))
	}
	return slices.Clone(items[offset:end]), next, limit
}

// ---- sessions ----

func (a *api) sessionCreate(c *call) (int, any) {
	f := c.fields()
	typ := must(f.str("type", true))
	if oneOf("type", typ, productCardSwitcher, productTransactionLink, productLink, productVault) != nil {
		check(newAPIError(http.StatusBadRequest, typeInvalidInput, codeProductNotValid, "The type %q is not a valid session type.", typ))
	}
	user := must(f.str("external_user_id", true))
	cardID := must(f.str("card_id", false))
	if typ == productCardSwitcher && cardID == "" {
		check(invalidField("The card_id field is required when type = card_switcher."))
	}
	if phone := must(f.str("phone_number", false)); phone != "" {
		check(checkPhone("phone_number", phone))
	}
	if email := must(f.str("email", false)); email != "" {
		check(checkEmail("email", email))
	}
	must(f.str("processor_token", false))
	if md, ok, e := f.object("metadata", false); ok || e != nil {
		check(e)
		if len(md) > 10 {
			check(invalidField("The metadata may not have more than 10 keys."))
		}
		for k := range md {
			v := must(md.str(k, false))
			if len(v) > 500 {
				check(invalidField("The metadata.%s may not be greater than 500 characters.", k))
			}
		}
	}
	if card, ok, e := f.object("card", false); ok || e != nil {
		check(e)
		must2(card.boolean("blocked"))
		must2(card.boolean("has_funds"))
	}

	id := newUUID()
	a.mu.Lock()
	a.sessions[id] = &session{typ: typ, user: user, expires: time.Now().Add(sessionTTL)}
	a.mu.Unlock()
	return http.StatusOK, map[string]string{"session": id}
}

func (a *api) sessionExtend(c *call) (int, any) {
	f := c.fields()
	id := must(f.str("session_id", true))
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[id]
	if !ok || time.Now().After(s.expires) {
		check(newAPIError(http.StatusNotFound, typeSession, codeSessionNotFound, "The session could not be found or has expired."))
	}
	s.expires = time.Now().Add(sessionTTL)
	return http.StatusOK, map[string]string{"session": id}
}

// ---- merchants and accounts ----

func (a *api) merchantList(c *call) (int, any) {
	f := c.fields()
	typ := must(f.str("type", true))
	check(oneOf("type", typ, productCardSwitcher, productTransactionLink, productShopping, productVault, productSubscriptions))
	platform := must(f.str("platform", false))
	if platform != "" {
		check(oneOf("platform", platform, "ios", "android", "web"))
	}
	search := strings.ToLower(must(f.str("search", false)))
	user := must(f.str("external_user_id", false))
	var linked map[int64]*account
	if user != "" {
		checkUser(user)
		a.mu.Lock()
		linked = make(map[int64]*account)
		for id, acct := range a.userAccounts(user) {
			linked[id] = &account{status: acct.status}
		}
		a.mu.Unlock()
	}
	out := []merchantItem{}
	for _, m := range merchants {
		if !m.supports(typ) || (search != "" && !strings.Contains(strings.ToLower(m.name), search)) {
			continue
		}
		item := merchantItem{ID: m.id, Name: m.name, Category: m.category, Logo: m.logo()}
		if platform != "" {
			item.MinSDKVersion = map[string]string{"ios": "2.1.0", "android": "2.1.0", "web": "1.4.0"}[platform]
		}
		if user != "" {
			item.Status = "not enrolled"
			if acct, ok := linked[m.id]; ok {
				item.Status = "enrolled"
				if acct.status != "connected" {
					item.Status = "failed"
				}
			}
		}
		out = append(out, item)
	}
	return http.StatusOK, out
}

type accountJSON struct {
	Merchant       merchantRef    `json:"merchant"`
	Connection     connectionJSON `json:"connection"`
	Lifecycle      lifecycleJSON  `json:"lifecycle"`
	LastUserAction lastActionJSON `json:"last_user_action"`
}

type connectionJSON struct {
	Status string      `json:"status"`
	Scopes []scopeJSON `json:"scopes"`
}

type scopeJSON struct {
	Type string `json:"type"`
}

type lifecycleJSON struct {
	Status *string `json:"status"`
}

type lastActionJSON struct {
	AttemptedAt *string `json:"attempted_at"`
	Status      *string `json:"status"`
}

func accountView(mid int64, acct account, product string) accountJSON {
	m := merchantByID(mid)
	v := accountJSON{
		Merchant:   merchantRef{ID: m.id, Name: m.name, Logo: m.logo()},
		Connection: connectionJSON{Status: acct.status, Scopes: []scopeJSON{}},
	}
	for _, s := range acct.scopes {
		v.Connection.Scopes = append(v.Connection.Scopes, scopeJSON{Type: s})
	}
	if product != "" {
		status := "enrolled"
		if acct.status != "connected" {
			status = "failed"
		}
		v.Lifecycle.Status = ptr(status)
		v.LastUserAction = lastActionJSON{AttemptedAt: ptr("2025-10-20T14:03:11+00:00"), Status: ptr(status)}
	}
	return v
}

func (a *api) accountsGet(c *call) (int, any) {
	q := c.r.URL.Query()
	user := q.Get("external_user_id")
	if user == "" {
		check(required("external_user_id"))
	}
	checkUser(user)
	product := q.Get("type")
	if product != "" {
		check(oneOf("type", product, productCardSwitcher, productTransactionLink, productVault))
	}
	if raw := q.Get("merchant_id"); raw != "" {
		mid, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			check(invalidField("The merchant_id must be an integer."))
		}
		return http.StatusOK, accountView(mid, a.account(user, mid), product)
	}
	a.mu.Lock()
	accts := a.userAccounts(user)
	ids := make([]int64, 0, len(accts))
	for id := range accts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]accountJSON, 0, len(ids))
	for _, id := range ids {
		out = append(out, accountView(id, *accts[id], product))
	}
	a.mu.Unlock()
	return http.StatusOK, out
}

func (a *api) accountsUnlink(c *call) (int, any) {
	f := c.fields()
	user := knownUser(f)
	mid, _ := merchantField(f)
	a.mu.Lock()
	defer a.mu.Unlock()
	accts := a.userAccounts(user)
	if _, ok := accts[mid]; !ok {
		check(accountNotFound())
	}
	delete(accts, mid)
	return http.StatusOK, success
}

// ---- transactions ----

type syncResponse struct {
	Merchant     merchantRef       `json:"merchant"`
	Transactions []transactionJSON `json:"transactions"`
	NextCursor   *string           `json:"next_cursor"`
	Limit        int               `json:"limit"`
}

func (a *api) transactionsSync(c *call) (int, any) {
	f := c.fields()
	user := knownUser(f)
	mid, m := merchantField(f)
	limit := limitField(f, DefaultSyncLimit)
	cursor := must(f.str("cursor", false))
	a.connectedAccount(user, mid)
	p := 0
	if cursor != "" {
		p = decodeCursor(cursor, "txn", strconv.FormatInt(mid, 10))
		if p < 1 || p >= TransactionPages {
			check(badCursor())
		}
	}
	resp := syncResponse{
		Merchant:     merchantRef{ID: m.id, Name: m.name},
		Transactions: make([]transactionJSON, 0, limit),
		Limit:        limit,
	}
	for i := p * limit; i < (p+1)*limit; i++ {
		resp.Transactions = append(resp.Transactions, transaction(m, i))
	}
	if p+1 < TransactionPages {
		resp.NextCursor = encodeCursor("txn", strconv.FormatInt(mid, 10), strconv.Itoa(p+1))
	}
	return http.StatusOK, resp
}

func (a *api) transactionGet(c *call) (int, any) {
	m, i, ok := parseTransactionID(c.params["id"])
	if !ok {
		check(newAPIError(http.StatusNotFound, typeTransaction, codeTransactionNotFound, "The transaction could not be found."))
	}
	return http.StatusOK, transaction(m, i)
}

func (a *api) transactionsRefresh(c *call) (int, any) {
	f := c.fields()
	user := knownUser(f)
	mid, _ := merchantField(f)
	a.connectedAccount(user, mid)
	return http.StatusAccepted, success
}

// ---- shopping ----

func (a *api) cart(c *call) (int, any) {
	f := c.fields()
	user := knownUser(f)
	mid, _ := merchantField(f)
	products := must(f.objects("products", true))
	for i, p := range products {
		if _, e := p.str("external_id", true); e != nil {
			check(invalidField("The products.%d.external_id field is required.", i))
		}
		if ful, ok, e := p.object("fulfillment", false); ok || e != nil {
			check(e)
			must(ful.str("id", false))
		}
	}
	if loc, ok, e := f.object("delivery_location", false); ok || e != nil {
		check(e)
		addr := mustFirst(loc.object("address", true))
		for _, k := range []string{"line1", "city", "region", "postal_code", "country"} {
			if _, e := addr.str(k, true); e != nil {
				check(invalidField("The delivery_location.address.%s field is required.", k))
			}
		}
		must(addr.str("line2", false))
		for _, k := range []string{"first_name", "last_name"} {
			must(loc.str(k, false))
		}
		if phone := must(loc.str("phone_number", false)); phone != "" {
			check(checkPhone("phone_number", phone))
		}
		must2(loc.boolean("set_as_default"))
	}
	simulate(f)
	a.connectedAccount(user, mid)
	return http.StatusAccepted, success
}

// mustFirst is must for helpers that also report presence.
func mustFirst[A any, B any](a A, _ B, e *apiError) A {
	check(e)
	return a
}

func simulate(f fields) {
	if s := must(f.str("simulate", false)); s != "" {
		check(oneOf("simulate", s, "failed"))
	}
}

func (a *api) cartCheckout(c *call) (int, any) {
	f := c.fields()
	user := knownUser(f)
	mid, _ := merchantField(f)
	if pm, ok, e := f.object("payment_method", false); ok || e != nil {
		check(e)
		must(pm.str("id", false))
		must(pm.str("jwe", false))
		must2(pm.boolean("is_single_use"))
	}
	simulate(f)
	a.connectedAccount(user, mid)
	return http.StatusAccepted, success
}

// ---- subscriptions ----

func (a *api) subscriptionGet(c *call) (int, any) {
	s, ok := subscriptionByID(c.params["id"])
	if !ok {
		check(newAPIError(http.StatusNotFound, typeSubscription, codeSubscriptionNotFound, "The subscription could not be found."))
	}
	return http.StatusOK, s
}

type subscriptionList struct {
	Subscriptions []subscriptionJSON `json:"subscriptions"`
	NextCursor    *string            `json:"next_cursor"`
	Limit         int                `json:"limit"`
}

func (a *api) subscriptionsList(c *call) (int, any) {
	f := c.fields()
	knownUser(f)
	items, next, limit := page(f, "sub", subscriptions)
	return http.StatusOK, subscriptionList{Subscriptions: items, NextCursor: next, Limit: limit}
}

func (a *api) subscriptionCancel(c *call) (int, any) {
	f := c.fields()
	if f.has("external_user_id") {
		knownUser(f)
	}
	must2(f.integer("merchant_id", false))
	if _, ok := subscriptionByID(c.params["id"]); !ok {
		// Knot documents 400 for an unknown subscription on cancel.
		check(newAPIError(http.StatusBadRequest, typeSubscription, codeSubscriptionNotFound, "The subscription could not be found."))
	}
	return http.StatusAccepted, success
}

// ---- detect ----

func (a *api) detect(c *call) (int, any) {
	f := c.fields()
	must(f.str("external_user_id", true))
	check(checkEmail("email", must(f.str("email", true))))
	if phone := must(f.str("phone_number", false)); phone != "" {
		check(checkPhone("phone_number", phone))
	}
	return http.StatusAccepted, success
}

type detectedList struct {
	DetectedAccounts []detectedAccountJSON `json:"detected_accounts"`
	NextCursor       *string               `json:"next_cursor"`
	Limit            int                   `json:"limit"`
}

func (a *api) detectedList(c *call) (int, any) {
	f := c.fields()
	knownUser(f)
	items, next, limit := page(f, "det", detectedAccounts)
	return http.StatusOK, detectedList{DetectedAccounts: items, NextCursor: next, Limit: limit}
}

type searchResult struct {
	Name       string  `json:"name"`
	Detected   bool    `json:"detected"`
	DetectedAt *string `json:"detected_at"`
}

func (a *api) detectedSearch(c *call) (int, any) {
	f := c.fields()
	knownUser(f)
	names := must(f.strings("names", true))
	out := make([]searchResult, 0, len(names))
	for _, n := range names {
		r := searchResult{Name: n}
		for _, d := range detectedAccounts {
			if strings.EqualFold(strings.TrimSpace(n), d.Merchant.Name) {
				r.Detected, r.DetectedAt = true, ptr(d.DetectedAt)
			}
		}
		out = append(out, r)
	}
	return http.StatusOK, out
}

// ---- development helpers ----

func (a *api) devLink(c *call) (int, any) {
	f := c.fields()
	user := knownUser(f)
	mid, m := merchantField(f)
	if m == nil {
		check(invalidField("The selected merchant_id is invalid."))
	}
	txns, hasTxns := must2(f.object("transactions", false))
	cs, _ := must2(f.boolean("card_switcher"))
	switch {
	case hasTxns && cs:
		check(invalidField("The transactions and card_switcher fields cannot be used together."))
	case hasTxns:
		isNew, ok := must2(txns.boolean("new"))
		if !ok {
			check(invalidField("The transactions.new field is required."))
		}
		if updated, _ := must2(txns.boolean("updated")); updated && !isNew {
			check(invalidField("The transactions.updated field requires transactions.new to be true."))
		}
	case cs:
		if _, e := f.str("card_id", true); e != nil {
			check(invalidField("The card_id field is required when card_switcher is true."))
		}
	default:
		check(invalidField("The transactions field is required when card_switcher is not present."))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	accts := a.userAccounts(user)
	acct, ok := accts[mid]
	if !ok {
		acct = &account{scopes: []string{}}
		accts[mid] = acct
	}
	acct.status = "connected"
	if cs && !slices.Contains(acct.scopes, "update_card") {
		acct.scopes = append(acct.scopes, "update_card")
	}
	return http.StatusOK, success
}

func (a *api) devDisconnect(c *call) (int, any) {
	f := c.fields()
	user := knownUser(f)
	mid, _ := merchantField(f)
	a.mu.Lock()
	defer a.mu.Unlock()
	acct, ok := a.userAccounts(user)[mid]
	if !ok {
		check(accountNotFound())
	}
	acct.status = "disconnected"
	return http.StatusOK, success
}
