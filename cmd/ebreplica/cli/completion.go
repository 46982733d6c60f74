package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

var completionCmd = &command{
	name:    "completion",
	args:    "bash|zsh|fish",
	summary: "print a shell completion script (commands, flags, files)",
	help: `Load it in the shell's startup file:

  bash:  source <(ebreplica completion bash)        (in ~/.bashrc)
  zsh:   source <(ebreplica completion zsh)         (in ~/.zshrc, after compinit)
  fish:  ebreplica completion fish > ~/.config/fish/completions/ebreplica.fish

The script completes command names, each command's flags and the global
flags, --policy names, and file names where a command takes a file.`,
	minArgs: 1,
	maxArgs: 1,
	// run is set by init: the scripts list commandTable, which lists
	// completionCmd (an initialization cycle otherwise).
}

func init() { completionCmd.run = runCompletion }

func runCompletion(ctx context.Context, e *env) error {
	var s string
	switch e.args[0] {
	case "bash":
		s = bashCompletion()
	case "zsh":
		s = zshCompletion()
	case "fish":
		s = fishCompletion()
	default:
		return usageErrorf("no completion for shell %q (bash, zsh or fish)", e.args[0])
	}
	o := newOutput(e.stdout)
	o.printf("%s", s)
	return o.flush()
}

// completionCommands is every command the scripts complete, help included.
func completionCommands() []*command {
	cmds := append([]*command{}, commandTable()...)
	return append(cmds, &command{name: "help", summary: "show help for a command"})
}

func flagNames(defs []flagDef) []string {
	var out []string
	for _, f := range defs {
		if f.alias == "" {
			out = append(out, "--"+f.name)
		}
	}
	return out
}

// valueFlags lists the flags that take a value, sorted.
func valueFlags() []string {
	set := map[string]bool{}
	for _, c := range completionCommands() {
		for _, f := range c.flags {
			if f.value {
				set["--"+f.name] = true
			}
		}
	}
	for _, f := range globalFlags {
		if f.value {
			set["--"+f.name] = true
		}
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func bashCompletion() string {
	var b strings.Builder
	var names []string
	for _, c := range completionCommands() {
		names = append(names, c.name)
	}
	b.WriteString("# bash completion for ebreplica: source <(ebreplica completion bash)\n")
	b.WriteString("_ebreplica() {\n")
	b.WriteString("    local cur prev cmd i\n")
	b.WriteString("    cur=${COMP_WORDS[COMP_CWORD]}\n")
	b.WriteString("    prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("    cmd=\n")
	b.WriteString("    for ((i = 1; i < COMP_CWORD; i++)); do\n")
	b.WriteString("        case ${COMP_WORDS[i]} in\n")
	fmt.Fprintf(&b, "        %s) ((i++)) ;;\n", strings.Join(valueFlags(), "|"))
	b.WriteString("        --) break ;;\n")
	b.WriteString("        -*) ;;\n")
	b.WriteString("        *) cmd=${COMP_WORDS[i]}; break ;;\n")
	b.WriteString("        esac\n")
	b.WriteString("    done\n")
	b.WriteString("    case $prev in\n")
	b.WriteString("    --dir|--key-file|--token-file) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n")
	fmt.Fprintf(&b, "    --policy) COMPREPLY=($(compgen -W \"=lww =mv =counter =set =json\" -- \"$cur\")); return ;;\n")
	fmt.Fprintf(&b, "    %s) return ;;\n", strings.Join(valueFlags(), "|"))
	b.WriteString("    esac\n")
	fmt.Fprintf(&b, "    local global=%q\n", strings.Join(flagNames(globalFlags), " "))
	b.WriteString("    if [[ -z $cmd ]]; then\n")
	fmt.Fprintf(&b, "        if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$global\" -- \"$cur\")); else COMPREPLY=($(compgen -W %q -- \"$cur\")); fi\n", strings.Join(names, " "))
	b.WriteString("        return\n")
	b.WriteString("    fi\n")
	b.WriteString("    local flags=\n")
	b.WriteString("    case $cmd in\n")
	for _, c := range completionCommands() {
		words := flagNames(c.flags)
		switch c.name {
		case "help":
			fmt.Fprintf(&b, "    help) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", strings.Join(names, " "))
			continue
		case "completion":
			b.WriteString("    completion) COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\")); return ;;\n")
			continue
		}
		fmt.Fprintf(&b, "    %s) flags=%q ;;\n", c.name, strings.Join(words, " "))
	}
	b.WriteString("    esac\n")
	b.WriteString("    if [[ $cur == -* ]]; then\n")
	b.WriteString("        COMPREPLY=($(compgen -W \"$flags $global\" -- \"$cur\"))\n")
	b.WriteString("    elif [[ $cmd == import ]]; then\n")
	b.WriteString("        COMPREPLY=($(compgen -f -- \"$cur\"))\n")
	b.WriteString("    fi\n")
	b.WriteString("}\n")
	b.WriteString("complete -F _ebreplica ebreplica\n")
	return b.String()
}

// zshQuote quotes s for a zsh single-quoted word, escaping ':' for
// _describe and brackets for _arguments.
func zshQuote(s string) string {
	s = strings.NewReplacer("'", `'\''`, ":", `\:`, "[", `\[`, "]", `\]`).Replace(s)
	return "'" + s + "'"
}

func zshCompletion() string {
	var b strings.Builder
	b.WriteString("#compdef ebreplica\n# zsh completion for ebreplica: source <(ebreplica completion zsh)\n")
	b.WriteString("_ebreplica() {\n")
	b.WriteString("    local -a commands global\n")
	b.WriteString("    commands=(\n")
	for _, c := range completionCommands() {
		fmt.Fprintf(&b, "        %s\n", zshQuote(c.name+":"+c.summary))
	}
	b.WriteString("    )\n")
	b.WriteString("    global=(\n")
	for _, f := range globalFlags {
		if f.alias == "" {
			b.WriteString("        " + zshFlag(f) + "\n")
		}
	}
	b.WriteString("    )\n")
	b.WriteString("    local i cmd\n")
	b.WriteString("    for ((i = 2; i < CURRENT; i++)); do\n")
	b.WriteString("        case ${words[i]} in\n")
	fmt.Fprintf(&b, "        %s) ((i++)) ;;\n", strings.Join(valueFlags(), "|"))
	b.WriteString("        -*) ;;\n")
	b.WriteString("        *) cmd=${words[i]}; break ;;\n")
	b.WriteString("        esac\n")
	b.WriteString("    done\n")
	b.WriteString("    if [[ -z $cmd ]]; then\n")
	b.WriteString("        _arguments -s $global '*::command:->cmd' && return\n")
	b.WriteString("        _describe -t commands 'ebreplica command' commands\n")
	b.WriteString("        return\n")
	b.WriteString("    fi\n")
	b.WriteString("    case $cmd in\n")
	for _, c := range completionCommands() {
		fmt.Fprintf(&b, "    %s) _arguments -s $global", c.name)
		for _, f := range c.flags {
			if f.alias == "" {
				b.WriteString(" " + zshFlag(f))
			}
		}
		switch c.name {
		case "import":
			b.WriteString(" '*:file:_files'")
		case "completion":
			b.WriteString(" '1:shell:(bash zsh fish)'")
		case "help":
			b.WriteString(" '1:command:->cmds'")
		default:
			b.WriteString(" '*:argument:'")
		}
		b.WriteString(" ;;\n")
	}
	b.WriteString("    esac\n")
	b.WriteString("    [[ $state == cmds ]] && _describe -t commands 'ebreplica command' commands\n")
	b.WriteString("}\n")
	b.WriteString("compdef _ebreplica ebreplica\n")
	return b.String()
}

func zshFlag(f flagDef) string {
	spec := "--" + f.name + "[" + f.usage + "]"
	if f.value {
		action := ""
		switch f.name {
		case "dir", "key-file", "token-file":
			action = "_files"
		}
		spec += ":" + f.arg + ":" + action
	}
	if f.multi {
		spec = "*" + spec
	}
	return zshQuote(spec)
}

func fishCompletion() string {
	var b strings.Builder
	q := func(s string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
	}
	b.WriteString("# fish completion for ebreplica: ebreplica completion fish > ~/.config/fish/completions/ebreplica.fish\n")
	b.WriteString("complete -c ebreplica -f\n")
	var names []string
	for _, c := range completionCommands() {
		names = append(names, c.name)
	}
	for _, f := range globalFlags {
		if f.alias != "" {
			continue
		}
		fmt.Fprintf(&b, "complete -c ebreplica -l %s", f.name)
		if f.value {
			b.WriteString(" -r")
			if f.name == "dir" {
				b.WriteString(" -a '(__fish_complete_directories)'")
			}
		}
		fmt.Fprintf(&b, " -d %s\n", q(f.usage))
	}
	for _, c := range completionCommands() {
		fmt.Fprintf(&b, "complete -c ebreplica -n '__fish_use_subcommand' -a %s -d %s\n", c.name, q(c.summary))
		for _, f := range c.flags {
			if f.alias != "" {
				continue
			}
			fmt.Fprintf(&b, "complete -c ebreplica -n '__fish_seen_subcommand_from %s' -l %s", c.name, f.name)
			if f.value {
				b.WriteString(" -r")
			}
			fmt.Fprintf(&b, " -d %s\n", q(f.usage))
		}
	}
	b.WriteString("complete -c ebreplica -n '__fish_seen_subcommand_from import' -F\n")
	b.WriteString("complete -c ebreplica -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
	fmt.Fprintf(&b, "complete -c ebreplica -n '__fish_seen_subcommand_from help' -a %s\n", q(strings.Join(names, " ")))
	return b.String()
}
