package knotclient

import (
	"runtime"
	"runtime/debug"
)

// modulePath is the module this package belongs to.
const modulePath = "github.com/knotmtls/knotmtls"

// fallbackVersion is reported when the build carries no module version
// (a checkout built with `go build` inside the module itself).
const fallbackVersion = "devel"

// Version is the version of this module as recorded in the binary's build
// information, or "devel". It is part of the default User-Agent.
var Version = moduleVersion()

func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fallbackVersion
	}
	if bi.Main.Path == modulePath && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath && d.Version != "" && d.Version != "(devel)" {
			return d.Version
		}
	}
	return fallbackVersion
}

// defaultUserAgent is the User-Agent every request carries, optionally
// preceded by Config.UserAgent.
func defaultUserAgent() string {
	return "knotmtls/" + Version + " (+https://" + modulePath + ") Go/" + runtime.Version()
}
