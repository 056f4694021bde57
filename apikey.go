package audex

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// NewPlainKey returns a new random plain API key and the hash to store for
// it. The plain key is shown once and never stored.
func NewPlainKey() (plain string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	plain = PlainKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, HashKey(plain)
}

// HashKey returns the stored form of a plain API key.
func HashKey(plain string) []byte {
	sum := sha256.Sum256([]byte(plain))
	return sum[:]
}
