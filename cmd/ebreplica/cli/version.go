package cli

import (
	"context"
	"runtime"
	"runtime/debug"
)

// Version is the release version; set at link time with
// -ldflags "-X github.com/ebreplica/ebreplica/cmd/ebreplica/cli.Version=v1.2.3".
// When empty, the module version from the build info is used.
var Version = ""

var versionCmd = &command{
	name:    "version",
	summary: "print the version and build info",
	maxArgs: 0,
	run:     runVersion,
}

type versionInfo struct {
	Version  string `json:"version"`
	Module   string `json:"module,omitempty"`
	Go       string `json:"go"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"revision_time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

func buildInfo() versionInfo {
	v := versionInfo{Version: Version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.Module = bi.Main.Path
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			v.Go = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func runVersion(ctx context.Context, e *env) error {
	v := buildInfo()
	if e.json {
		return writeJSON(e.stdout, v)
	}
	o := newOutput(e.stdout)
	o.printf("ebreplica %s", v.Version)
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		o.printf(" (revision %s", rev)
		if v.Modified {
			o.printf(", modified")
		}
		o.printf(")")
	}
	o.printf(" %s %s/%s\n", v.Go, v.OS, v.Arch)
	return o.flush()
}
