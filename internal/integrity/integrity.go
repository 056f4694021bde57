// Package integrity holds what the integrity log signs and what its
// verifiers check, with no database and no HTTP: the log's signing keys
// (Ed25519, in the signed-note format of golang.org/x/mod/sumdb/note),
// checkpoints (C2SP signed notes of a tenant's tree size and root hash) and
// the leaf of an event. The tree itself is golang.org/x/mod/sumdb/tlog's
// (RFC 6962 hashing); internal/store keeps its hashes.
package integrity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
)

// LeafData is what the leaf of event e hashes (tlog.RecordHash, that is
// SHA-256(0x00 || data)): its canonical encoding, the body of
// GET /v1/audit/events/{id}.
func LeafData(e *audex.Event) []byte {
	return e.AppendJSON(make([]byte, 0, 512))
}

// Origin is the first line of a tenant's checkpoints: the log's name and
// the tenant, unique per tenant.
func Origin(logName, tenantID string) string {
	return logName + "/" + tenantID
}

// Checkpoint is what a checkpoint says: a tenant's tree of Size leaves has
// root hash Root.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text is the checkpoint's body as signed: origin, size in decimal and the
// base64 root hash, a line each.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpoint reads a checkpoint's body (Text's form; extension lines
// after the third are allowed and ignored).
func ParseCheckpoint(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return c, errors.New("checkpoint: want origin, size and root hash lines")
	}
	c.Origin = lines[0]
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return c, fmt.Errorf("checkpoint: size %q is not a decimal tree size", lines[1])
	}
	c.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint: root hash %q is not a base64 SHA-256", lines[2])
	}
	copy(c.Root[:], root)
	return c, nil
}

// OpenCheckpoint checks the signed checkpoint msg against the verifier
// keys and returns what it says: it must carry a signature of one of them.
func OpenCheckpoint(msg []byte, verifierKeys []string) (Checkpoint, error) {
	n, err := openNote(msg, verifierKeys)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	return ParseCheckpoint(n.Text)
}

// openNote checks that the signed note msg carries a signature of one of
// the verifier keys.
func openNote(msg []byte, verifierKeys []string) (*note.Note, error) {
	verifiers := make([]note.Verifier, 0, len(verifierKeys))
	for _, k := range verifierKeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		verifiers = append(verifiers, v)
	}
	return note.Open(msg, note.VerifierList(verifiers...))
}

// Keys are the log's signing keys: the newest signs, and the verifier keys
// of all of them (the older ones after a rotation) stay published.
type Keys struct {
	signer    note.Signer
	verifiers []string
}

// ParseKeys reads signing keys from text, one signed-note private key
// (PRIVATE+KEY+name+hash+base64) per line, oldest first; blank lines and
// lines starting with # are skipped. The last one signs.
func ParseKeys(text string) (*Keys, error) {
	k := &Keys{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		signer, err := note.NewSigner(line)
		if err != nil {
			// The line is a secret: never quote it.
			return nil, errors.New("log signing key: a line is not a signed-note private key (PRIVATE+KEY+name+hash+base64)")
		}
		vkey, err := verifierKey(line, signer.Name())
		if err != nil {
			return nil, err
		}
		k.signer = signer
		k.verifiers = append(k.verifiers, vkey)
	}
	if k.signer == nil {
		return nil, errors.New("log signing key: none given")
	}
	return k, nil
}

// verifierKey derives the verifier key of the Ed25519 private key skey.
func verifierKey(skey, name string) (string, error) {
	// skey is PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the seed>
	// (base64 may hold +); note.NewSigner checked its form.
	fields := strings.SplitN(strings.TrimPrefix(skey, "PRIVATE+KEY+"), "+", 3)
	if len(fields) != 3 {
		return "", errors.New("log signing key: not a signed-note private key")
	}
	raw, err := base64.StdEncoding.DecodeString(fields[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return "", errors.New("log signing key: not an Ed25519 key")
	}
	public := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, public)
}

// GenerateKey returns a new signing key of the log named name, as a line
// of a key file.
func GenerateKey(name string) (string, error) {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	return skey, err
}

// EnsureKeyFile creates the key file at path (and its folder) with a new
// key of the log named name when there is none, readable by its owner
// only, and says whether it did.
func EnsureKeyFile(path, name string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("log signing key file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("log signing key file: %w", err)
	}
	return true, AddKey(path, name)
}

// AddKey appends a new key of the log named name to the key file at path
// (creating it): the new key signs from then on, the older ones stay
// published.
func AddKey(path, name string) error {
	skey, err := GenerateKey(name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("log signing key file: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("log signing key file: %w", err)
	}
	return f.Close()
}

// VerifierKeys are the verifier keys of every key, oldest first, one per
// line in the format of note.NewVerifier (name+hash+base64).
func (k *Keys) VerifierKeys() []string { return k.verifiers }

// Sign returns the signed checkpoint of c.
func (k *Keys) Sign(c Checkpoint) (string, error) {
	msg, err := note.Sign(&note.Note{Text: c.Text()}, k.signer)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return string(msg), nil
}

// LoadKeys returns the keys of keyText (AUDEX_LOG_KEY) when it is set,
// else those of the key file at keyFile.
func LoadKeys(keyText, keyFile string) (*Keys, error) {
	if keyText != "" {
		return ParseKeys(keyText)
	}
	data, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("log signing key file %s is missing: `api migrate` creates it (or set AUDEX_LOG_KEY)", keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("log signing key file: %w", err)
	}
	return ParseKeys(string(data))
}
