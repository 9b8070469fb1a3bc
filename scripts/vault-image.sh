#!/usr/bin/env bash
# Make sure, once, that the integration tests and the demo can run a real
# Vault 1.21.0, cheapest way first:
#   1. what is cached: the Vault binary in ${KNOTMTLS_CACHE:-$HOME/.cache/knotmtls}/vault-1.21.0
#      and/or the image knotmtls/vault-dev:1.21.0 (the binary is copied out of
#      the image when only the image is there);
#   2. the official image hashicorp/vault:1.21.0, when present or pullable
#      (no compile; its static /bin/vault is copied into the cache for the
#      process backend). KNOTMTLS_VAULT_BUILD=1 skips this step;
#   3. otherwise compile the static Vault server from the Go module proxy
#      (integration/vaultserver; ~15-20 min on 2 cores the first time, a
#      progress line every PROGRESS_EVERY=15 s) and pack it into the
#      FROM scratch image knotmtls/vault-dev:1.21.0
#      (integration/vaulttest/vault.Dockerfile).
# Without a reachable Docker engine only the binary is built: the harness
# then runs it as a local process.
#
# Usage: scripts/vault-image.sh [all|binary|image]   (default: all)
set -euo pipefail

VERSION=1.21.0
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${KNOTMTLS_CACHE:-$HOME/.cache/knotmtls}
bin=${KNOTMTLS_VAULT_BINARY:-$cache/vault-$VERSION}
tag=knotmtls/vault-dev:$VERSION
upstream=hashicorp/vault:$VERSION
what=${1:-all}
PROGRESS_EVERY=${PROGRESS_EVERY:-15}
PULL_TIMEOUT=${PULL_TIMEOUT:-300}

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
	log "no Vault binary cached at $bin and no $upstream image: compiling Vault $VERSION from the Go module proxy."
	log "this happens once per machine and takes about 15-20 min on 2 cores with module downloads (10-13 min with a warm module cache)."
	log "later runs reuse $bin and the image $tag. Progress is printed every ${PROGRESS_EVERY}s."
	local tmp="$bin.tmp.$$" start=$SECONDS pid rc
	trap 'rm -f "$tmp"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null' EXIT
	(cd "$repo/integration/vaultserver" &&
		CGO_ENABLED=0 exec go build -trimpath -ldflags="-s -w" -o "$tmp" .) &
	pid=$!
	progress "$pid" "$start" "compiling Vault $VERSION"
	if wait "$pid"; then rc=0; else rc=$?; fi
	pid=
	if [ "$rc" -ne 0 ]; then
		log "vault build failed (exit $rc) after $(dur $((SECONDS - start)))"
		exit "$rc"
	fi
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "vault build took $(dur $((SECONDS - start)))"
	flock -u 9
}

# progress PID START WHAT: while PID runs, print one line every
# PROGRESS_EVERY seconds with the elapsed time, so a long build is never
# silent. Returns when PID has exited (its status is collected by wait).
progress() {
	local pid=$1 start=$2 what=$3 next=$((SECONDS + PROGRESS_EVERY))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$next" ]; then
			log "$what... $(dur $((SECONDS - start))) elapsed"
			next=$((SECONDS + PROGRESS_EVERY))
		fi
		sleep 1
	done
}

docker_up() { timeout 20 docker info >/dev/null 2>&1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# extract_binary IMAGE: copy /bin/vault out of IMAGE into the cache, so the
# process backend (and tests that need the binary) work without compiling.
# Both images hold a static binary at /bin/vault.
extract_binary() {
	if [ -s "$bin" ] && [ -x "$bin" ]; then return; fi
	mkdir -p "$(dirname "$bin")"
	local cid tmp="$bin.tmp.$$"
	cid=$(docker create "$1" version)
	if docker cp "$cid:/bin/vault" "$tmp" >/dev/null; then
		docker rm -f "$cid" >/dev/null
		chmod 0755 "$tmp"
		mv -f "$tmp" "$bin"
		log "copied the Vault binary out of $1 into $bin"
	else
		docker rm -f "$cid" >/dev/null
		rm -f "$tmp"
		log "could not copy /bin/vault out of $1; compiling instead"
		build_binary
	fi
}

# use_upstream: true when the official image is present or can be pulled;
# then nothing needs compiling (the harness prefers a local image when one
# exists, else the official one). KNOTMTLS_VAULT_BUILD=1 skips this and
# always builds (e.g. to test the FROM scratch path where pulls work).
use_upstream() {
	[ "${KNOTMTLS_VAULT_BUILD:-0}" = 1 ] && return 1
	docker_up || return 1
	if have_image "$upstream"; then
		log "image $upstream present: no Vault compile needed"
		return 0
	fi
	log "trying to pull $upstream (skips compiling Vault where a registry is reachable)"
	if timeout "$PULL_TIMEOUT" docker pull -q "$upstream" >/dev/null 2>&1; then
		log "pulled $upstream: no Vault compile needed"
		return 0
	fi
	log "cannot pull $upstream (no registry reachable): building Vault locally instead"
	return 1
}

build_image() {
	if ! docker_up; then
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
	if [ -s "$bin" ] && [ -x "$bin" ] && { ! docker_up || have_image "$tag" || have_image "$upstream"; }; then
		log "binary cached: $bin"
		if docker_up; then build_image; fi
	elif docker_up && have_image "$tag"; then
		log "image cached: $tag"
		extract_binary "$tag"
	elif use_upstream; then
		extract_binary "$upstream"
	else
		build_binary
		build_image
	fi
	;;
binary) build_binary ;;
image) build_image ;;
*)
	echo "usage: $0 [all|binary|image]" >&2
	exit 2
	;;
esac
