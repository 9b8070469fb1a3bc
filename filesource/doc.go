// Package filesource is a [provider.CertificateSource] that reads the client
// certificate and its private key from PEM files, and reloads them when they
// change.
//
// # When to use it
//
// This source is for development, and for files rendered by Vault Agent (a
// template that writes tls.crt and tls.key from a KV secret). The private key
// sits on disk here. In production prefer the Vault source (package
// vaultsource), which keeps the key in Vault and, with Transit, never lets it
// leave Vault at all.
//
// # Files
//
//   - the certificate file holds the leaf certificate, optionally followed by
//     its chain (leaf first, then each issuer);
//   - an optional chain file ([WithChainFile]) holds more chain certificates,
//     appended after those of the certificate file, in order;
//   - the key file holds the leaf's private key, unencrypted, as PKCS#1
//     ("RSA PRIVATE KEY"), PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY").
//
// PEM parsing and the key/certificate pairing check are the provider
// package's ([provider.ParseCertificates], [provider.ParsePrivateKey],
// [provider.CheckKeyPair]), so malformed input yields the same sentinel errors
// ([provider.ErrNotPEM], [provider.ErrEncryptedKey], [provider.ErrKeyMismatch],
// ...) as every other source, wrapped in a [*FileError] that names the file.
// Errors name paths, never file content. Knot's own rules (RSA-2048,
// SHA-256 with RSA, CN equal to the client_id, validity) are checked by the
// [provider.Provider] before it serves a bundle.
//
// # Versions
//
// [Source.Version] reads the files and returns a short SHA-256 digest of their
// bytes: a few kilobytes of reads and one hash, far cheaper than parsing the
// key. A stat is not enough, because two writes within the file system's
// mtime granularity (or a copy that preserves mtime) would be missed.
// [Source.Fetch] stamps the bundle with the digest of exactly the bytes it
// parsed, so the Provider fetches only when the content really changed.
//
// # Never a half-written pair
//
// Tools write the certificate and the key one after the other, and may be
// caught in between. Fetch protects against serving a mixed pair twice over:
//
//   - it reads the three files, then reads them again and compares digests,
//     retrying a few times until two consecutive reads agree, so it does not
//     combine a certificate read before a write with a key read after it
//     (a torn read). This costs one extra read of a few kilobytes per Fetch;
//   - whatever it read, the key must match the leaf certificate, or Fetch
//     fails with [provider.ErrKeyMismatch]. The Provider then keeps serving
//     the old pair, reports the failure, and rotates as soon as the second
//     file lands.
//
// # Hot reload
//
// [Source.Watch] uses fsnotify on the directories that contain the files,
// not on the files themselves, because a watch on a file follows its inode
// and is lost when the file is replaced. Watching the directory sees every
// way the files are updated: in-place writes, editors and Vault Agent writing
// a temporary file and renaming it over the old one, and the Kubernetes
// secret-volume layout, where tls.crt is a symlink to ..data/tls.crt and an
// update atomically swaps the ..data symlink to a new timestamped directory.
// When a configured path is a symlink into another directory, that directory
// is watched too.
//
// Events are batched for a short window ([DefaultDebounce]) so that a
// certificate and a key written together cause one refresh. After each batch
// Watch recomputes the version and tells the Provider only if it changed, so a
// busy directory or a touch costs a few small reads, not a refresh. If
// fsnotify cannot be used (no inotify instances left, a watched directory
// removed), Watch returns an error and the Provider's poll interval, with its
// cheap version check, takes over.
package filesource
