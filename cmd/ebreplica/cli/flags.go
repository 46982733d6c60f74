package cli

import (
	"strconv"
	"strings"
)

// flagDef declares one flag. The parser is our own rather than package
// flag's, because the contract needs what flag cannot do: flags anywhere
// among the arguments (global ones after the command name too), only known
// names taken as flags, and negative numbers taken as arguments.
type flagDef struct {
	name  string // without dashes
	value bool   // takes a value (--name VALUE or --name=VALUE); else a bool
	multi bool   // may be repeated; every value is kept (for help text)
	need  bool   // required (for help text; the command checks it)
	arg   string // the value's placeholder in help text
	usage string
	alias string // this name stands for flag alias (-h for --help)
}

var globalFlags = []flagDef{
	{name: "dir", value: true, arg: "DIR", usage: "the replica's directory (default $EBREPLICA_DIR, else ./.ebreplica)"},
	{name: "json", usage: "machine-readable output: one JSON object, or one per line for listings"},
	{name: "clock-offset", value: true, arg: "D", usage: "add the Go duration D (-90s, 24h, -36h) to this process's wall clock"},
	{name: "timeout", value: true, arg: "D", usage: "bound every remote request of this command by the Go duration D (default 30s)"},
	{name: "low-memory", usage: "open the replica with the small-footprint profile (also $EBREPLICA_LOW_MEMORY=1; always on 32-bit builds)"},
	{name: "help", usage: "show help"},
	{name: "h", alias: "help"},
}

// parsed holds the flags and positional arguments found.
type parsed struct {
	values map[string][]string // value flags, every occurrence in order
	bools  map[string]bool
	args   []string // positional arguments
}

func (p *parsed) setValue(name, v string) {
	if p.values == nil {
		p.values = map[string][]string{}
	}
	p.values[name] = append(p.values[name], v)
}

func (p *parsed) setBool(name string, v bool) {
	if p.bools == nil {
		p.bools = map[string]bool{}
	}
	p.bools[name] = v
}

// value returns the last value given for a value flag.
func (p *parsed) value(name string) (string, bool) {
	vs := p.values[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// all returns every value given for a repeatable flag.
func (p *parsed) all(name string) []string { return p.values[name] }

func (p *parsed) bool(name string) bool { return p.bools[name] }

// merge adds o's flags after p's, so o's values win.
func (p *parsed) merge(o *parsed) {
	for name, vs := range o.values {
		for _, v := range vs {
			p.setValue(name, v)
		}
	}
	for name, v := range o.bools {
		p.setBool(name, v)
	}
}

// parseFlags takes the flags named in defs from args into p, and the other
// arguments into p.args, up to "--", after which everything is an argument.
// A flag is -name or --name, with its value after "=" or in the next
// argument; bools accept --name=true|false. A token that looks like a flag
// but names none of defs is a usage error (never data: `put --jsno k` must
// not write a key "--jsno"); a negative number is an argument.
//
// With stopAtArg, parsing stops at the first argument (the command name)
// and returns it and everything after it untouched; a flag-like token
// before it that names no flag is then a usage error.
func parseFlags(args []string, defs []flagDef, p *parsed, stopAtArg bool) (rest []string, err error) {
	for i := 0; i < len(args); i++ {
		tok := args[i]
		if tok == "--" {
			if stopAtArg {
				return args[i+1:], nil
			}
			p.args = append(p.args, args[i+1:]...)
			return nil, nil
		}
		name, val, hasVal, ok := splitFlag(tok)
		var def *flagDef
		if ok {
			def = findFlag(defs, name)
		}
		if def == nil {
			if stopAtArg {
				if ok {
					return nil, usageErrorf("unknown global flag %s (command flags go after the command name)", tok)
				}
				return args[i:], nil
			}
			if ok {
				return nil, usageErrorf("unknown flag %s (an argument that starts with - goes after --)", tok)
			}
			p.args = append(p.args, tok)
			continue
		}
		if !def.value {
			b := true
			if hasVal {
				if b, err = strconv.ParseBool(val); err != nil {
					return nil, usageErrorf("flag --%s takes no value, or =true or =false; got %q", def.name, val)
				}
			}
			p.setBool(def.name, b)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, usageErrorf("flag --%s needs a value %s", def.name, def.arg)
			}
			i++
			val = args[i]
		}
		p.setValue(def.name, val)
	}
	return nil, nil
}

// splitFlag splits -name, --name, -name=value or --name=value. ok is false
// for tokens that are not flag-shaped: no dash, a lone "-" (stdin), three
// dashes, or a negative number such as -3 or -.5.
func splitFlag(tok string) (name, val string, hasVal, ok bool) {
	if len(tok) < 2 || tok[0] != '-' {
		return "", "", false, false
	}
	if c := tok[1]; c >= '0' && c <= '9' || c == '.' {
		return "", "", false, false
	}
	s := strings.TrimPrefix(tok[1:], "-")
	if s == "" || s[0] == '-' || s[0] == '=' {
		return "", "", false, false
	}
	name, val, hasVal = strings.Cut(s, "=")
	return name, val, hasVal, true
}

func looksLikeFlag(tok string) bool {
	_, _, _, ok := splitFlag(tok)
	return ok
}

func findFlag(defs []flagDef, name string) *flagDef {
	for i := range defs {
		if defs[i].name == name {
			if defs[i].alias != "" {
				return findFlag(defs, defs[i].alias)
			}
			return &defs[i]
		}
	}
	return nil
}
