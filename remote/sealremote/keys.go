package sealremote

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// Keys is a device's identity: an age X25519 identity (its secret key) and
// the public recipient other devices wrap the store's data keys for.
type Keys struct {
	id *age.X25519Identity
}

// NewKeys makes a new device identity.
func NewKeys() (*Keys, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("sealremote: %w", err)
	}
	return &Keys{id: id}, nil
}

// ParseKeys reads an age identity file: comment lines (#) and one
// AGE-SECRET-KEY-1... line.
func ParseKeys(data []byte) (*Keys, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("sealremote: not an age identity file: %v", trimAge(err))
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return &Keys{id: x}, nil
		}
	}
	return nil, errors.New("sealremote: the identity file holds no X25519 identity (AGE-SECRET-KEY-1...)")
}

// LoadKeyFile reads a key file written by WriteKeyFile (or age-keygen).
// A key file that others may read is refused: it holds a secret key.
func LoadKeyFile(path string) (*Keys, error) {
	if path == "" {
		return nil, errors.New("sealremote: no key file given")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sealremote: key file: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("sealremote: key file %s is a directory", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("sealremote: key file %s has mode %04o: others may read it (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sealremote: key file: %w", err)
	}
	k, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%w (key file %s)", err, path)
	}
	return k, nil
}

// WriteKeyFile writes k to path with mode 0600, refusing to replace a file
// that exists (a lost identity cannot be recovered).
func WriteKeyFile(path string, k *Keys) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("sealremote: key file %s exists; it is never overwritten", path)
		}
		return fmt.Errorf("sealremote: key file: %w", err)
	}
	_, werr := f.Write(k.Marshal())
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return fmt.Errorf("sealremote: key file: %w", err)
	}
	return nil
}

// Marshal returns the identity file text.
func (k *Keys) Marshal() []byte {
	return []byte("# ebreplica device key (an age X25519 identity); keep it secret\n# public key: " +
		k.Recipient() + "\n" + k.id.String() + "\n")
}

// Recipient returns the device's public recipient, age1...
func (k *Keys) Recipient() string { return k.id.Recipient().String() }

// ParseRecipient checks a recipient string (age1...).
func ParseRecipient(s string) (age.Recipient, error) {
	r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("sealremote: %q is not an age X25519 recipient (age1...): %v", s, trimAge(err))
	}
	return r, nil
}

// recipientID names a recipient in object names: 16 hex digits of the
// SHA-256 of its public key, so names show no key.
func recipientID(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return hex.EncodeToString(sum[:8])
}

// wrap encrypts a data key for a recipient with age.
func wrap(key []byte, r age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(key); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unwrap decrypts a wrapped data key; ok is false when k is not among its
// recipients.
func (k *Keys) unwrap(wrapped []byte) (key []byte, ok bool, err error) {
	r, err := age.Decrypt(bytes.NewReader(wrapped), k.id)
	var nomatch *age.NoIdentityMatchError
	if errors.As(err, &nomatch) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	key, err = io.ReadAll(io.LimitReader(r, 64))
	if err != nil {
		return nil, false, err
	}
	if len(key) != keySize {
		return nil, false, fmt.Errorf("wrapped key of %d bytes", len(key))
	}
	return key, true, nil
}

func trimAge(err error) string { return strings.TrimPrefix(err.Error(), "age: ") }
