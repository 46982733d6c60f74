package cli

import (
	"context"
	"fmt"

	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/replica"
)

var verifyCmd = &command{
	name:    "verify",
	summary: "check every object of the store on the remote; non-zero exit on damage",
	help: `Lists every object of the remote store and checks it: the manifest, each
replica registry, each log segment (decodes, checksum, a registered origin), that
no log position is missing above the prune floor (the newest snapshot), each
snapshot (its index, and each part's presence, size, checksum and records), and
that nothing foreign is there. Every record is read under its key's policy (a
counter or set key must hold its state), on the remote and, without --remote,
in the local store. Problems (corrupt, unreadable, unstable, missing, foreign,
version) exit 1 with a one-line summary on stderr; warnings (orphan snapshot
parts, an unregistered origin, a damaged read) and info (quarantined copies,
repair placeholders, probe objects) do not. An object that fails is read
again: only bytes read identically twice are damage. With --repair, each
corrupt log segment is copied to quarantine/ and replaced in place
(compare-and-swap) by a valid placeholder, so pulls go on; then run push --all
on a replica that applied it to publish its records again. An unreadable
counter or set key is cleared by delete.
--remote URL checks a store without a replica directory.
--json: {"ok","objects","segments","snapshots","local_records","problems","warnings","repaired","info"},
each problem {"object","kind","message"}.`,
	flags: []flagDef{
		{name: "repair", usage: "quarantine corrupt log segments and put valid placeholders in their place"},
		{name: "remote", value: true, arg: "URL", usage: "verify this store instead of the replica's remote"},
	},
	maxArgs: 0,
	run:     runVerify,
}

func runVerify(ctx context.Context, e *env) error {
	o := replica.VerifyOptions{Repair: e.flags.bool("repair"), Now: e.wall}
	if show := e.terminalProgress(); show != nil {
		o.Progress = func(done, total int64) { show("verify", done, total) }
	}
	var rep replica.VerifyReport
	var where string
	if raw, ok := e.flags.value("remote"); ok {
		url, err := normalizeRemote(raw)
		if err != nil {
			return err
		}
		if msg := s3CredentialsProblem(url); msg != "" {
			return errorf(nil, "remote %s: %s", url, msg)
		}
		b, err := remoteurl.Open(ctx, url)
		if err != nil {
			return errorf(err, "remote %s: %s", url, remoteProblem(url, err))
		}
		e.trackRemote("verify", b)
		if b, err = sealForVerify(ctx, e, b, url); err != nil { // key.go: an encrypted store
			return err
		}
		where = url
		if rep, err = replica.Verify(ctx, b, o); err != nil {
			return syncError("verify", err)
		}
	} else {
		r, err := e.openSynced(ctx)
		if err != nil {
			return err
		}
		where = remoteurl.Redact(r.RemoteURL())
		if rep, err = r.Verify(ctx, o); err != nil {
			return syncError("verify", err)
		}
	}
	if e.json {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else if err := printVerify(e, rep, where); err != nil {
		return err
	}
	if rep.OK {
		return nil
	}
	p := rep.Problems[0]
	err := errorf(nil, "%s in the store at %s, first %s: %s (report on stdout)", plural(len(rep.Problems), "problem"), where, p.Object, p.Kind)
	err.(*cliError).reported = true
	return err
}

func printVerify(e *env, rep replica.VerifyReport, where string) error {
	o := newOutput(e.stdout)
	o.printf("%s: %d objects, %d log segments, %d snapshots\n", where, rep.Objects, rep.Segments, rep.Snapshots)
	for _, l := range []struct {
		label string
		list  []replica.Problem
	}{{"PROBLEM", rep.Problems}, {"repaired", rep.Repaired}, {"warning", rep.Warnings}, {"info", rep.Info}} {
		for _, p := range l.list {
			o.printf("%-8s %-12s %s: %s\n", l.label, p.Kind, p.Object, p.Message)
		}
	}
	switch {
	case rep.OK && len(rep.Repaired) > 0:
		o.printf("ok: %d repaired\n", len(rep.Repaired))
	case rep.OK:
		o.printf("ok\n")
	default:
		o.printf("damaged: %s\n", plural(len(rep.Problems), "problem"))
	}
	return o.flush()
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
