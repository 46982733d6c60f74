package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/sim"
)

// simCompares says the sim command runs through sim.Compare: several
// policies, a trace or an HTML report.
func simCompares(p *parsed) bool {
	s, _ := p.value("policy")
	_, html := p.value("html")
	return strings.Contains(s, ",") || len(p.all("trace")) > 0 || html
}

// simPolicies is the --policy list (lww when not given).
func simPolicies(p *parsed) ([]string, error) {
	s, ok := p.value("policy")
	if !ok {
		return []string{sim.PolicyLWW}, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if _, ok := merge.Builtin(name); !ok {
			return nil, usageErrorf("--policy %q: unknown policy %q (want lww, mv, counter, set, json or json-mv, comma-separated)", s, name)
		}
		for _, o := range out {
			if o == name {
				return nil, usageErrorf("--policy %q: %s named twice", s, name)
			}
		}
		out = append(out, name)
	}
	return out, nil
}

// runSimCompare runs the policies on identical schedules (generated, or
// the trace's) and prints one table, or the one policy's report as
// without these flags; --html writes the page too. Bad input (a policy, a
// malformed trace line, an HTML path in no directory) is an error before
// anything runs.
func runSimCompare(e *env, cfg sim.Config, runs int) error {
	policies, err := simPolicies(e.flags)
	if err != nil {
		return err
	}
	o := sim.CompareOptions{Runs: runs, Policies: policies}
	if paths := e.flags.all("trace"); len(paths) > 0 {
		if _, ok := e.flags.value("replicas"); !ok {
			cfg.Replicas = 0 // the trace's
		}
		var files []sim.TraceFile
		for _, p := range paths {
			data, err := os.ReadFile(e.path(p))
			if err != nil {
				return usageErrorf("--trace %s: %v", p, trimOSPath(err))
			}
			files = append(files, sim.TraceFile{Name: p, Data: bytes.NewReader(data)})
		}
		if o.Trace, err = sim.ReadTrace(files...); err != nil {
			return usageErrorf("--trace: %s", strings.TrimPrefix(err.Error(), "sim: trace "))
		}
	}
	htmlPath, html := e.flags.value("html")
	if html {
		if htmlPath == "" {
			return usageErrorf("--html: expected a file name")
		}
		dir := filepath.Dir(e.path(htmlPath))
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return usageErrorf("--html %s: no directory %s to write it in", htmlPath, dir)
		}
		cfg.Timeline = true
	}
	c, failure := sim.Compare(cfg, o)
	var f *sim.Failure
	if failure != nil && !errors.As(failure, &f) {
		msg := strings.ReplaceAll(strings.ReplaceAll(failure.Error(), "sim: ", ""), "\n", "; ")
		return usageErrorf("%s", msg)
	}
	if html {
		if err := writeFileAtomic(e.path(htmlPath), c.WriteHTML); err != nil {
			return errorf(err, "--html %s: %v", htmlPath, trimOSPath(err))
		}
	}
	one := len(c.Policies) == 1
	switch {
	case e.json && one:
		err = writeJSON(e.stdout, c.Policies[0])
	case e.json:
		err = writeJSON(e.stdout, c)
	default:
		out := newOutput(e.stdout)
		if one {
			err = c.Policies[0].WriteText(out.w)
		} else {
			err = c.WriteText(out.w)
		}
		if err != nil {
			return outputError(err)
		}
		err = out.flush()
	}
	if err != nil {
		return err
	}
	if f != nil {
		failed, total := 0, 0
		for _, r := range c.Policies {
			failed += r.Failed
			total += r.Runs
		}
		return errorf(failure, "did not converge: seed %d broke %s under %s (%d of %d runs failed; the report shows the shortest failing schedule)",
			f.Seed, f.Rule, f.Config.Policy, failed, total)
	}
	return nil
}

// trimOSPath drops the path an *os.PathError repeats.
func trimOSPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// writeFileAtomic writes a file through a temporary one in its directory,
// renamed over it once complete.
func writeFileAtomic(path string, write func(w io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
