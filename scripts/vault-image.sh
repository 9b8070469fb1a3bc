#!/usr/bin/env bash
# Build, once, what the integration tests need to run a real Vault 1.21.0
# where no image can be pulled:
#   1. the static Vault server binary, compiled from the Go module proxy by
#      integration/vaultserver into ${KNOTMTLS_CACHE:-$HOME/.cache/knotmtls}/vault-1.21.0
#      (slow the first time: ~30 min cold on 2 cores);
#   2. the FROM scratch image knotmtls/vault-dev:1.21.0 holding that binary
#      (integration/vaulttest/vault.Dockerfile).
# Both steps are no-ops when their result is cached. Without a reachable
# Docker engine step 2 is skipped: the harness then runs the binary as a
# local process.
#
# Usage: scripts/vault-image.sh [all|binary|image]   (default: all)
set -euo pipefail

VERSION=1.21.0
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${KNOTMTLS_CACHE:-$HOME/.cache/knotmtls}
bin=${KNOTMTLS_VAULT_BINARY:-$cache/vault-$VERSION}
tag=knotmtls/vault-dev:$VERSION
what=${1:-all}

log() { echo "vault-image: $*"; }

# dur SECONDS -> "Xm Ys"
dur() { printf '%dm %ds' $(($1 / 60)) $(($1 % 60)); }

build_binary() {
	mkdir -p "$cache" "$(dirname "$bin")"
	# Serialise with other runs of this script.
	exec 9>"$cache/vault-build.lock"
	flock 9
	# A build started by hand (e.g. in the background at session start)
	# writes the same file: wait for it instead of starting a second one.
	local waited=0
	while pgrep -f "go build .*-o $bin( |$)" >/dev/null 2>&1; do
		if [ "$waited" -eq 0 ]; then log "another build of $bin is running; waiting for it"; fi
		if [ "$waited" -ge 3600 ]; then log "gave up waiting after 60 min"; exit 1; fi
		sleep 10
		waited=$((waited + 10))
	done
	if [ -s "$bin" ] && [ -x "$bin" ]; then
		log "binary cached: $bin ($(du -m "$bin" | cut -f1) MB)"
		flock -u 9
		return
	fi
	log "building Vault $VERSION server binary into $bin (slow the first time)"
	local tmp="$bin.tmp.$$" start=$SECONDS
	trap 'rm -f "$tmp"' EXIT
	(cd "$repo/integration/vaultserver" &&
		CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tmp" .)
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "vault build took $(dur $((SECONDS - start)))"
	flock -u 9
}

build_image() {
	if ! timeout 20 docker info >/dev/null 2>&1; then
		log "docker engine not reachable: skipping the image (the harness runs Vault as a local process)"
		return
	fi
	if docker image inspect "$tag" >/dev/null 2>&1; then
		log "image cached: $tag"
		return
	fi
	if [ ! -s "$bin" ]; then
		log "no binary at $bin: run '$0 binary' first"
		exit 1
	fi
	local ctx start=$SECONDS
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/vault-image.XXXXXX")
	trap 'rm -rf "$ctx"' EXIT
	mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/tmp"
	chmod 1777 "$ctx/rootfs/tmp"
	cp "$repo/integration/vaulttest/vault.Dockerfile" "$ctx/Dockerfile"
	# A hard link avoids copying ~360 MB when the cache is on the same disk.
	ln "$bin" "$ctx/rootfs/bin/vault" 2>/dev/null || cp "$bin" "$ctx/rootfs/bin/vault"
	chmod 0755 "$ctx/rootfs/bin/vault"
	log "building image $tag"
	# The classic builder needs no buildx plugin and works with old engines.
	DOCKER_BUILDKIT=0 docker build -q \
		--label org.knotmtls.vault-version=$VERSION \
		-t "$tag" "$ctx"
	rm -rf "$ctx"
	trap - EXIT
	echo "vault image build took $(dur $((SECONDS - start)))"
}

case "$what" in
all)
	build_binary
	build_image
	;;
binary) build_binary ;;
image) build_image ;;
*)
	echo "usage: $0 [all|binary|image]" >&2
	exit 2
	;;
esac
