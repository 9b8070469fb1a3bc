# Vault dev server in a FROM scratch image, built from the static Vault
# binary that integration/vaultserver compiles (CGO_ENABLED=0). Used where
# hashicorp/vault cannot be pulled. The build context holds rootfs/bin/vault
# and an empty rootfs/tmp (mode 1777): scratch has no /tmp and Vault wants a
# writable one. Built by scripts/vault-image.sh and by the Go harness
# (integration/vaulttest), which share this file.
FROM scratch
COPY rootfs/ /
ENV HOME=/tmp \
    TMPDIR=/tmp \
    VAULT_DEV_LISTEN_ADDRESS=0.0.0.0:8200
EXPOSE 8200
ENTRYPOINT ["/bin/vault"]
CMD ["server", "-dev", "-dev-no-store-token"]
