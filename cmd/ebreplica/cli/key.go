package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/replica"
)

// keyFileEnv names the key file when --key-file is not given.
const keyFileEnv = "EBREPLICA_KEY_FILE"

var keyFileFlag = flagDef{name: "key-file", value: true, arg: "F", usage: "this device's key file (an age X25519 identity; default $" + keyFileEnv + ")"}

var keyCmd = &command{
	name:    "key",
	args:    "new|add|remove|rotate|list [RECIPIENT]",
	summary: "make a device key; manage which devices can read an encrypted store",
	help: `An encrypted store (init --encrypt) seals every object body it writes to the
remote with a data key that only its devices' keys can unwrap.
  key new --key-file F   create a device key in F (mode 0600, never
                         overwritten); prints its public recipient, age1...
  key add RECIPIENT      let that device read the store: every data key
                         this device holds is wrapped for it; it then runs
                         init --key-file
  key remove RECIPIENT   take a device out: a new data key (epoch) wrapped
                         for the others only; what is written from now on
                         is sealed with it, so the removed device reads none
                         of it; compact --prune re-seals what the store holds
  key rotate             a new data key for the same devices
  key list               the devices (recipients) of the current data key,
                         one a line; "(this device)" marks this one
The key file is never a command-line argument: --key-file F or $` + keyFileEnv + `.
A replica records the path of the key file it was initialised with (never the
key) and reads it at each command that syncs; the key commands use --key-file
or $` + keyFileEnv + ` instead when given.
--json: key new and add/remove/rotate print {"recipient"[, "epoch"]}; key list
one {"recipient","this"} per line.`,
	flags:   []flagDef{keyFileFlag},
	minArgs: 1,
	maxArgs: 2,
	run:     runKey,
}

// keyFilePath returns the key file --key-file or $EBREPLICA_KEY_FILE names
// (a relative --key-file of a command forwarded to a server is the
// client's: see env.path).
func keyFilePath(e *env) (string, bool) {
	if v, ok := e.flags.value("key-file"); ok {
		if v == "" {
			return "", true
		}
		return e.path(v), true
	}
	if v := os.Getenv(keyFileEnv); v != "" {
		return v, true
	}
	return "", false
}

// loadKey reads the key file at path, returning it and its absolute path.
func loadKey(path string) (*sealremote.Keys, string, error) {
	if path == "" {
		return nil, "", usageErrorf("--key-file must not be empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", usageErrorf("key file %q: %v", path, err)
	}
	k, err := sealremote.LoadKeyFile(abs)
	if err != nil {
		return nil, "", errorf(err, "%s", strings.TrimPrefix(err.Error(), "sealremote: "))
	}
	return k, abs, nil
}

type keyOutput struct {
	Recipient string `json:"recipient,omitempty"`
	Epoch     uint32 `json:"epoch,omitempty"`
}

type keyLine struct {
	Recipient string `json:"recipient"`
	This      bool   `json:"this"`
}

func runKey(ctx context.Context, e *env) error {
	verb := e.args[0]
	wantArgs := map[string]int{"new": 1, "add": 2, "remove": 2, "rotate": 1, "list": 1}
	n, known := wantArgs[verb]
	switch {
	case !known:
		return usageErrorf("key %q: unknown; use key new, key add RECIPIENT, key remove RECIPIENT, key rotate or key list", verb)
	case len(e.args) != n && n == 2:
		return usageErrorf("key %s takes one RECIPIENT (age1...)", verb)
	case len(e.args) != n:
		return usageErrorf("key %s takes no argument (the key file is --key-file F or $%s)", verb, keyFileEnv)
	}
	if verb == "new" {
		return runKeyNew(e)
	}
	var recipient string
	if n == 2 {
		r, err := sealremote.ParseRecipient(e.args[1])
		if err != nil {
			return usageErrorf("%s", strings.TrimPrefix(err.Error(), "sealremote: "))
		}
		recipient = r.(interface{ String() string }).String()
	}
	if path, ok := keyFilePath(e); ok {
		k, _, err := loadKey(path)
		if err != nil {
			return err
		}
		e.tune = func(o *replica.Options) { o.Keys = k }
	}
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	b, err := r.Backend(ctx)
	if err != nil {
		return errorf(err, "remote %s: %s", r.RemoteURL(), remoteProblem(r.RemoteURL(), err))
	}
	sb, ok := b.(*sealremote.Backend)
	if !ok {
		// Not connected yet in this directory, or a plain store: the
		// manifest says which.
		if _, cerr := r.Connect(ctx); cerr != nil {
			return syncError("key "+verb, cerr)
		}
		if b, err = r.Backend(ctx); err == nil {
			sb, ok = b.(*sealremote.Backend)
		}
		if !ok {
			return errorf(replica.ErrNotEncrypted, "the store at %s is not encrypted (a store is encrypted from its first init --encrypt)", r.RemoteURL())
		}
	}
	fail := func(err error) error {
		return errorf(err, "key %s: %s", verb, strings.TrimPrefix(err.Error(), "sealremote: "))
	}
	o := newOutput(e.stdout)
	switch verb {
	case "list":
		rs, err := sb.Recipients(ctx)
		if err != nil {
			return fail(err)
		}
		self := keyOfStore(sb)
		for _, rc := range rs {
			if e.json {
				o.json(keyLine{Recipient: rc, This: rc == self})
				continue
			}
			if rc == self {
				o.printf("%s  (this device)\n", rc)
			} else {
				o.printf("%s\n", rc)
			}
		}
		return o.flush()
	case "add":
		if _, err := sb.AddRecipient(ctx, recipient); err != nil {
			return fail(err)
		}
	case "remove":
		if _, err := sb.Rotate(ctx, recipient); err != nil {
			return fail(err)
		}
	case "rotate":
		if _, err := sb.Rotate(ctx); err != nil {
			return fail(err)
		}
	}
	if e.json {
		return writeJSON(e.stdout, keyOutput{Recipient: recipient, Epoch: sb.Epoch()})
	}
	if recipient != "" {
		o.printf("%s  ", recipient)
	}
	o.printf("epoch %d\n", sb.Epoch())
	return o.flush()
}

// keyOfStore is the recipient of the key the sealing backend opened with.
func keyOfStore(sb *sealremote.Backend) string { return sb.Recipient() }

func runKeyNew(e *env) error {
	path, ok := keyFilePath(e)
	if !ok {
		return usageErrorf("key new needs --key-file F (or $%s): the file to create", keyFileEnv)
	}
	if path == "" {
		return usageErrorf("--key-file must not be empty")
	}
	k, err := sealremote.NewKeys()
	if err != nil {
		return errorf(err, "key new: %v", err)
	}
	if err := sealremote.WriteKeyFile(path, k); err != nil {
		return errorf(err, "%s", strings.TrimPrefix(err.Error(), "sealremote: "))
	}
	if e.json {
		return writeJSON(e.stdout, keyOutput{Recipient: k.Recipient()})
	}
	o := newOutput(e.stdout)
	o.printf("%s\n", k.Recipient())
	return o.flush()
}

// initKeys decides the encryption of init: the device key (nil for a
// plain store), its absolute path, and whether to create an encrypted
// store. It reads the store's manifest (m, exists) and refuses, before
// anything is created, what cannot work: --encrypt on a store that
// exists, a key for a plain store, no key (or a key that is no
// recipient) for an encrypted one.
func initKeys(ctx context.Context, e *env, b remote.Backend, url string, m format.Manifest, exists bool) (*sealremote.Keys, string, bool, error) {
	encrypt := e.flags.bool("encrypt")
	path, given := keyFilePath(e)
	_, flagGiven := e.flags.value("key-file")
	switch {
	case encrypt && !given:
		return nil, "", false, usageErrorf("--encrypt needs this device's key file: --key-file F or $%s (make one with `ebreplica key new --key-file F`)", keyFileEnv)
	case encrypt && exists:
		return nil, "", false, errorf(nil, "the store at %s exists; --encrypt only makes a new store (a later device of an encrypted store gives just --key-file F)", url)
	case !exists && given && !encrypt && flagGiven:
		return nil, "", false, errorf(nil, "there is no store at %s yet; init --encrypt --key-file F makes an encrypted one", url)
	case exists && !m.Encrypted() && flagGiven:
		return nil, "", false, errorf(replica.ErrNotEncrypted, "the store at %s is not encrypted; --key-file is for an encrypted store", url)
	case exists && m.Encrypted() && !given:
		return nil, "", false, errorf(replica.ErrKeyRequired, "the store at %s is encrypted: give this device's key file with --key-file F or $%s (make one with `ebreplica key new --key-file F`; a device of the store then runs `ebreplica key add RECIPIENT`)", url, keyFileEnv)
	}
	if !encrypt && !(exists && m.Encrypted()) {
		return nil, "", false, nil // a plain store; $EBREPLICA_KEY_FILE does not apply
	}
	k, abs, err := loadKey(path)
	if err != nil {
		return nil, "", false, err
	}
	if exists {
		if _, err := sealremote.Open(ctx, b, m.RemoteID, k); err != nil {
			if errors.Is(err, sealremote.ErrNoKey) {
				return nil, "", false, errorf(err, "the key in %s cannot open the store at %s: %s (nothing was created)", abs, url, strings.TrimPrefix(strings.TrimPrefix(err.Error(), sealremote.ErrNoKey.Error()), ": "))
			}
			return nil, "", false, errorf(err, "remote %s: %s", url, remoteProblem(url, err))
		}
	}
	return k, abs, encrypt, nil
}

// sealForVerify returns b sealed when the store is encrypted, with the key
// of --key-file or $EBREPLICA_KEY_FILE (verify --remote).
func sealForVerify(ctx context.Context, e *env, b remote.Backend, url string) (remote.Backend, error) {
	m, ok, err := format.ReadManifest(ctx, b)
	if err != nil || !ok || !m.Encrypted() {
		return b, nil // verify reports what is wrong with the manifest
	}
	path, given := keyFilePath(e)
	if !given {
		return nil, errorf(replica.ErrKeyRequired, "the store at %s is encrypted: give a device's key file with $%s", url, keyFileEnv)
	}
	k, _, err := loadKey(path)
	if err != nil {
		return nil, err
	}
	sb, err := sealremote.Open(ctx, b, m.RemoteID, k)
	if err != nil {
		return nil, errorf(err, "remote %s: %s", url, strings.TrimPrefix(err.Error(), "sealremote: "))
	}
	return sb, nil
}
