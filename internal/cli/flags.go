package cli

import (
	"flag"
	"fmt"
	"strings"
)

// flagRule is one constraint between flags, checked after parsing and
// before any I/O. A rule either makes flags exclude each other (exclusive)
// or says that flags only apply in some mode (only): a flag that would be
// ignored is refused, so an operator never believes a flag took effect
// when it did not.
type flagRule struct {
	// exclusive: at most one of these flags may be given.
	exclusive []string
	why       string // why they exclude each other
	// only: these flags may be given only when applies is true.
	only    []string
	applies func(v flagValues) bool
	when    string // the mode in which they apply, e.g. "with --transit"
}

// flagValues reads parsed flag values by name.
type flagValues struct {
	fs  *flag.FlagSet
	set map[string]bool
}

func (v flagValues) str(name string) string {
	f := v.fs.Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

func (v flagValues) on(name string) bool { return v.str(name) == "true" }

// checkFlagRules applies rules to the flags given on the command line.
func checkFlagRules(fs *flag.FlagSet, set map[string]bool, rules []flagRule) *usageError {
	v := flagValues{fs: fs, set: set}
	for _, r := range rules {
		var given []string
		for _, name := range r.exclusive {
			if set[name] && (fs.Lookup(name) == nil || !isBool(fs.Lookup(name)) || v.on(name)) {
				given = append(given, "--"+name)
			}
		}
		if len(given) > 1 {
			return &usageError{msg: fmt.Sprintf("%s cannot be used together: %s", strings.Join(given, " and "), r.why)}
		}
		if r.applies != nil && !r.applies(v) {
			for _, name := range r.only {
				if set[name] {
					return &usageError{msg: fmt.Sprintf("--%s applies only %s", name, r.when)}
				}
			}
		}
	}
	return nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Rules every command shares: the location flags of the mode not chosen,
// and the login flags of the methods not chosen. kvApplies says when the
// KV location flags apply with --transit too (check reads --secret-kv
// from --kv-mount).
func commonRules(kvApplies func(v flagValues) bool) []flagRule {
	kv := func(v flagValues) bool { return !v.on("transit") || (kvApplies != nil && kvApplies(v)) }
	return []flagRule{
		{only: []string{"kv-path"}, applies: func(v flagValues) bool { return !v.on("transit") },
			when: "without --transit (with --transit the key is the Transit key --transit-key)"},
		{only: []string{"kv-mount", "kv-version"}, applies: kv,
			when: "without --transit (with --transit the key is the Transit key --transit-key)"},
		{only: []string{"transit-mount", "transit-key", "key-version"}, applies: func(v flagValues) bool { return v.on("transit") },
			when: "with --transit (without it the key is in the KV secret --kv-path)"},
		{only: []string{"token-file"}, applies: func(v flagValues) bool { return v.str("auth") == AuthToken },
			when: "with --auth token"},
		{only: []string{"approle-role-id", "approle-secret-id-file", "approle-mount", "approle-wrapped"},
			applies: func(v flagValues) bool { return v.str("auth") == AuthAppRole }, when: "with --auth approle"},
		{only: []string{"k8s-role", "k8s-mount", "k8s-token-file"},
			applies: func(v flagValues) bool { return v.str("auth") == AuthKubernetes }, when: "with --auth kubernetes"},
	}
}
