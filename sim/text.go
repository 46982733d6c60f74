package sim

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ebreplica/ebreplica/store"
)

// The text form of schedules: the regression schedules of DESIGN.md live
// in testdata/schedules/*.txt as datadriven files (run by TestSchedules),
// and a failure prints itself in the same form (Failure.Text), ready to
// paste there.
//
// A schedule is one operation a line, in the vocabulary of Op.String
// ("B put k=v", "A crash at push:staged during push"), optionally
// prefixed by "#ID" and "+ADVANCE":
//
//	#12 +2.5s A put k1=A12
//
// With no "#ID" an operation's ID is the previous one's plus one (the
// first: 0); the first nested operation of a pause has 1000 × (ID of the
// pause + 1). With no "+ADVANCE" an operation comes 1 s after the one
// before. The operations a pause runs meanwhile ("A pause at push:fenced
// during push for 2m0s, meanwhile 4 ops") follow it, indented by four
// spaces more. Blank lines and lines starting with "# " are skipped.

// DefaultAdvance is the advance of an operation whose text gives none.
const DefaultAdvance = time.Second

// ParseOp parses one operation as Op.String prints it. The ID, Advance
// and Nested operations are not part of that form: they are left zero.
func ParseOp(s string) (Op, error) {
	o, _, err := parseOp(s)
	return o, err
}

func kindNamed(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s && i > 0 {
			return Kind(i), true
		}
	}
	if strings.HasPrefix(s, "kind(") && strings.HasSuffix(s, ")") {
		n, err := strconv.Atoi(s[5 : len(s)-1])
		return Kind(n), err == nil && n >= 0 && n < 256
	}
	return 0, false
}

func replicaIndex(s string) (int, bool) {
	if len(s) != 1 || s[0] < 'A' || s[0] > 'Z' {
		return 0, false
	}
	return int(s[0] - 'A'), true
}

// parseOp parses an operation; for a pause it also returns how many
// nested operations the text says it has.
func parseOp(s string) (o Op, nested int, err error) {
	orig := s
	bad := func(format string, a ...any) (Op, int, error) {
		return Op{}, 0, fmt.Errorf("sim: operation %q: %s", orig, fmt.Sprintf(format, a...))
	}
	// The faults suffix: " faults{Errors:0 Ambiguous:1 ...}".
	if i := strings.LastIndex(s, " faults{"); i >= 0 && strings.HasSuffix(s, "}") {
		f, err := parseFaults(s[i+len(" faults{") : len(s)-1])
		if err != nil {
			return bad("%v", err)
		}
		o.Faults = &f
		s = s[:i]
	}
	r, rest, _ := strings.Cut(s, " ")
	var ok bool
	if o.R, ok = replicaIndex(r); !ok {
		return bad("no replica (A to Z) first")
	}
	kind, args, _ := strings.Cut(rest, " ")
	if o.Kind, ok = kindNamed(kind); !ok {
		return bad("unknown operation %q", kind)
	}
	// words consumes the fixed words of the vocabulary.
	words := func(ws ...string) bool {
		for _, w := range ws {
			var got string
			got, args, _ = strings.Cut(args, " ")
			if got != w {
				return false
			}
		}
		return true
	}
	word := func() string {
		var got string
		got, args, _ = strings.Cut(args, " ")
		return got
	}
	dur := func(s string) time.Duration {
		d, e := time.ParseDuration(s)
		if e != nil && err == nil {
			err = e
		}
		return d
	}
	num := func(s string) int {
		n, e := strconv.Atoi(s)
		if e != nil && err == nil {
			err = e
		}
		return n
	}
	via := func(s string) Kind {
		k, ok := kindNamed(s)
		if !ok && err == nil {
			err = fmt.Errorf("unknown operation %q", s)
		}
		return k
	}
	// atStep parses "at rest" or "at STEP during VIA".
	atStep := func() bool {
		if args == "at rest" {
			args = ""
			return true
		}
		if !words("at") {
			return false
		}
		o.Step = word()
		if !words("during") {
			return false
		}
		o.Via = via(word())
		return o.Step != ""
	}
	switch o.Kind {
	case OpPut:
		var found bool
		if o.Key, o.Value, found = strings.Cut(args, "="); !found {
			return bad("want key=value")
		}
		args = ""
	case OpDelete:
		o.Key, args = args, ""
	case OpBatch:
		for _, f := range strings.Fields(args) {
			if k, ok := strings.CutPrefix(f, "-"); ok {
				o.Items = append(o.Items, Item{Key: k, Delete: true})
			} else if k, v, ok := strings.Cut(f, "="); ok {
				o.Items = append(o.Items, Item{Key: k, Value: v})
			} else {
				return bad("batch item %q: want key=value or -key", f)
			}
		}
		args = ""
	case OpAdd:
		i := strings.LastIndexAny(args, "+-")
		if i < 0 {
			return bad("want key+delta or key-delta")
		}
		o.Key = args[:i]
		o.Delta, err = strconv.ParseInt(args[i:], 10, 64)
		args = ""
	case OpSetAdd, OpSetRemove:
		var found bool
		if o.Key, o.Elem, found = strings.Cut(args, " "); !found {
			return bad("want key element")
		}
		args = ""
	case OpPatch:
		var rest string
		var found bool
		if o.Key, rest, found = strings.Cut(args, " "); !found {
			return bad("want key field=value or key -field")
		}
		if f, ok := strings.CutPrefix(rest, "-"); ok {
			o.Elem = f
		} else if o.Elem, o.Value, found = strings.Cut(rest, "="); !found || o.Value == "" {
			return bad("want key field=value or key -field")
		}
		args = ""
	case OpCrash:
		switch {
		case args == "at rest":
			args = ""
		case strings.HasPrefix(args, "at "):
			if !atStep() {
				return bad("want at STEP during OP")
			}
		default:
			o.Kill = strings.HasPrefix(args, "(kill) ")
			args = strings.TrimPrefix(args, "(kill) ")
			if !words("after", "tx") {
				return bad("want at rest, at STEP during OP or after tx N during OP")
			}
			o.Tx = num(word())
			if !words("during") {
				return bad("want during OP")
			}
			o.Via = via(word())
			if o.Tx <= 0 {
				return bad("tx must be positive")
			}
		}
	case OpPause:
		if !words("at") {
			return bad("want at STEP during OP for D, meanwhile N ops")
		}
		o.Step = word()
		if !words("during") {
			return bad("want during OP")
		}
		o.Via = via(word())
		if !words("for") {
			return bad("want for D")
		}
		d, ok := strings.CutSuffix(word(), ",")
		if !ok {
			return bad("want for D, meanwhile N ops")
		}
		o.Pause = dur(d)
		if !words("meanwhile") {
			return bad("want meanwhile N ops")
		}
		nested = num(word())
		if !words("ops") {
			return bad("want meanwhile N ops")
		}
	case OpBackup, OpCopy:
		if o.Kind == OpCopy {
			if !words("to") {
				return bad("want to R")
			}
			if o.To, ok = replicaIndex(word()); !ok {
				return bad("want to R (A to Z)")
			}
		}
		if !atStep() {
			return bad("want at rest or at STEP during OP")
		}
	case OpPartition, OpOffline:
		if !words("for") {
			return bad("want for N ops")
		}
		o.For = num(word())
		if !words("ops") {
			return bad("want for N ops")
		}
	case OpClockJump:
		o.Jump = dur(word())
	case OpCompact:
		if args != "" {
			if !words("prune", "grace") {
				return bad("want prune grace D retire after D")
			}
			o.Prune = true
			o.Grace = dur(word())
			if !words("retire", "after") {
				return bad("want retire after D")
			}
			o.RetireAfter = dur(word())
		}
	case OpBootstrap:
		if !words("offset") {
			return bad("want offset D")
		}
		o.Jump = dur(word())
	}
	if err != nil {
		return bad("%v", err)
	}
	if args != "" {
		return bad("unexpected %q", args)
	}
	return o, nested, nil
}

func parseFaults(s string) (Faults, error) {
	var f Faults
	v := reflect.ValueOf(&f).Elem()
	for _, kv := range strings.Fields(s) {
		k, val, ok := strings.Cut(kv, ":")
		fv := v.FieldByName(k)
		if !ok || !fv.IsValid() {
			return f, fmt.Errorf("faults: %q: want Name:rate", kv)
		}
		x, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return f, fmt.Errorf("faults: %q: %v", kv, err)
		}
		fv.SetFloat(x)
	}
	return f, nil
}

// ScheduleText renders a schedule in the text form ParseSchedule reads
// (see above): IDs and advances only where they are not the defaults.
func ScheduleText(ops []Op) string {
	var b strings.Builder
	scheduleText(&b, ops, "", -1, true)
	return b.String()
}

func scheduleText(b *strings.Builder, ops []Op, indent string, prev int, top bool) {
	for i, o := range ops {
		b.WriteString(indent)
		want := prev + 1
		if !top && i == 0 {
			want = prev // the caller passes the first nested ID
		}
		if o.ID != want {
			fmt.Fprintf(b, "#%d ", o.ID)
		}
		if o.Advance != DefaultAdvance {
			fmt.Fprintf(b, "+%s ", o.Advance)
		}
		b.WriteString(o.String())
		b.WriteByte('\n')
		if o.Kind == OpPause {
			scheduleText(b, o.Nested, indent+"    ", 1000*(o.ID+1), false)
		}
		prev = o.ID
	}
}

// ParseSchedule parses a schedule in text form (see ScheduleText).
func ParseSchedule(text string) ([]Op, error) {
	type frame struct {
		indent int
		ops    *[]Op
		want   int // nested operations the pause said it has (-1: top)
		prev   int // the previous ID
		first  bool
	}
	var top []Op
	stack := []frame{{indent: 0, ops: &top, want: -1, prev: -1}}
	// pending is a pause whose nested operations may follow.
	var pending *frame
	check := func(f frame) error {
		if f.want >= 0 && len(*f.ops) != f.want {
			return fmt.Errorf("sim: a pause says it runs %d operations, %d follow it", f.want, len(*f.ops))
		}
		return nil
	}
	for ln, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed == "#" || strings.HasPrefix(trimmed, "# ") {
			continue
		}
		indent := len(line) - len(trimmed)
		if pending != nil {
			if indent <= stack[len(stack)-1].indent {
				return nil, fmt.Errorf("sim: line %d: %w", ln+1, check(*pending))
			}
			pending.indent = indent
			stack = append(stack, *pending)
			pending = nil
		}
		for len(stack) > 1 && indent < stack[len(stack)-1].indent {
			if err := check(stack[len(stack)-1]); err != nil {
				return nil, fmt.Errorf("line %d: %w", ln+1, err)
			}
			stack = stack[:len(stack)-1]
		}
		f := &stack[len(stack)-1]
		if indent != f.indent {
			return nil, fmt.Errorf("sim: line %d: indented by %d, want %d: %q", ln+1, indent, f.indent, line)
		}
		id, adv := f.prev+1, DefaultAdvance
		if f.first {
			id = f.prev
		}
		rest := trimmed
		if len(rest) > 1 && rest[0] == '#' && unicode.IsDigit(rune(rest[1])) {
			var n string
			n, rest, _ = strings.Cut(rest[1:], " ")
			var err error
			if id, err = strconv.Atoi(n); err != nil {
				return nil, fmt.Errorf("sim: line %d: ID %q: %v", ln+1, n, err)
			}
		}
		if strings.HasPrefix(rest, "+") {
			var d string
			d, rest, _ = strings.Cut(rest[1:], " ")
			var err error
			if adv, err = time.ParseDuration(d); err != nil {
				return nil, fmt.Errorf("sim: line %d: advance %q: %v", ln+1, d, err)
			}
		}
		o, nested, err := parseOp(rest)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", ln+1, err)
		}
		o.ID, o.Advance = id, adv
		*f.ops = append(*f.ops, o)
		f.prev, f.first = id, false
		if o.Kind == OpPause {
			last := &(*f.ops)[len(*f.ops)-1]
			pending = &frame{ops: &last.Nested, want: nested, prev: 1000 * (id + 1), first: true}
			if nested == 0 {
				pending = nil
			}
		}
	}
	if pending != nil {
		return nil, check(*pending)
	}
	for len(stack) > 1 {
		if err := check(stack[len(stack)-1]); err != nil {
			return nil, err
		}
		stack = stack[:len(stack)-1]
	}
	return top, nil
}

// The text form of a Config: "key=value" arguments of a datadriven
// directive, one per field that is not zero, named after the field in
// kebab case (SegmentCap: segment-cap=1). Durations are Go durations,
// lists are "(a, b)". The old rules (Rules, Merge, UnsyncedStaging,
// UnsyncedPending) and UserPolicy have no text form: a schedule names old
// rules ("run old-rule=NAME on=B"). "calm" stands for the base of the
// regression schedules: seed 1 and no random faults, partitions,
// crashes, jumps, drift or skew.

// configField is a field of Config with a text form.
func configFields() []reflect.StructField {
	var out []reflect.StructField
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		switch f.Name {
		case "Rules", "Merge", "UnsyncedStaging", "UnsyncedPending", "UserPolicy":
			continue
		}
		if !f.IsExported() {
			continue
		}
		out = append(out, f)
	}
	return out
}

// kebab turns a field name into its text name: DriftPPM -> drift-ppm.
func kebab(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte('-')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// fmtDuration prints a duration as Go does, without zero minutes and
// seconds after hours and minutes: 1h, 1h30m, 2m, 1.5s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var (
	durationType   = reflect.TypeFor[time.Duration]()
	durabilityType = reflect.TypeFor[store.Durability]()
)

func fmtValueOf(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return fmtDuration(time.Duration(v.Int()))
	case v.Type() == durabilityType:
		return store.Durability(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Slice:
		var parts []string
		for i := range v.Len() {
			parts = append(parts, fmtValueOf(v.Index(i)))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// ConfigText renders the fields of c that are not zero as "key=value"
// arguments, in field order (see above). Shrinking's settings (NoShrink,
// ShrinkRuns) are left out.
func ConfigText(c Config) string { return configText(Config{}, c) }

// configText renders the fields of c that differ from base.
func configText(base, c Config) string {
	var parts []string
	v, bv := reflect.ValueOf(c), reflect.ValueOf(base)
	for _, f := range configFields() {
		if f.Name == "NoShrink" || f.Name == "ShrinkRuns" {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		if reflect.DeepEqual(fv.Interface(), bv.FieldByIndex(f.Index).Interface()) {
			continue
		}
		parts = append(parts, kebab(f.Name)+"="+fmtValueOf(fv))
	}
	return strings.Join(parts, " ")
}

// calmConfig is the base of the regression schedules: no random faults,
// drift, jumps or skew.
func calmConfig() Config {
	return Config{Seed: 1, Faults: -1, Partitions: -1, Crashes: -1, Jumps: -1, DriftPPM: -1, Skew: -1}
}

// SetConfigArg sets the field of c named key (kebab case, see ConfigText)
// from its values; "calm" (no values) resets c to the calm base.
func SetConfigArg(c *Config, key string, vals []string) error {
	if key == "calm" {
		*c = calmConfig()
		return nil
	}
	v := reflect.ValueOf(c).Elem()
	for _, f := range configFields() {
		if kebab(f.Name) != key {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		if fv.Kind() == reflect.Slice {
			s := reflect.MakeSlice(fv.Type(), len(vals), len(vals))
			for i, x := range vals {
				if err := setScalar(s.Index(i), x); err != nil {
					return fmt.Errorf("sim: %s: %w", key, err)
				}
			}
			fv.Set(s)
			return nil
		}
		if fv.Kind() == reflect.Bool && len(vals) == 0 {
			fv.SetBool(true)
			return nil
		}
		if len(vals) != 1 {
			return fmt.Errorf("sim: %s: want one value, have %d", key, len(vals))
		}
		if err := setScalar(fv, vals[0]); err != nil {
			return fmt.Errorf("sim: %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("sim: no config field %q", key)
}

func setScalar(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if s == "0" {
			d, err = 0, nil
		}
		v.SetInt(int64(d))
		return err
	case v.Type() == durabilityType:
		switch s {
		case store.Sync.String():
			v.SetInt(int64(store.Sync))
		case store.Relaxed.String():
			v.SetInt(int64(store.Relaxed))
		default:
			return fmt.Errorf("durability %q: want sync or relaxed", s)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		v.SetInt(int64(n))
		return err
	case reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		v.SetUint(n)
		return err
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		v.SetFloat(x)
		return err
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		v.SetBool(b)
		return err
	default:
		return errors.New("no text form")
	}
	return nil
}

// Text renders the failure as a datadriven file of testdata/schedules
// (TestSchedules), ready to paste: its config, its shortest failing
// schedule, and a run with the old rules it was given, whose expected
// output is this failure. Run with -rewrite once it is fixed.
func (f *Failure) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# seed %d: %s, shrunk to %d of %d operations.\n\n", f.Seed, f.Rule, len(f.Schedule), f.Generated)
	fmt.Fprintf(&b, "schedule %s\n%s----\n%s\n\n", ConfigText(f.Config), ScheduleText(f.Schedule), scheduleSummary(f.Config, f.Schedule))
	b.WriteString("run")
	for i, r := range f.Config.restored {
		if i > 0 {
			// One old rule a run; name the others.
			fmt.Fprintf(&b, "\n# also restored: %s%s", r.name, onText(r.on))
			continue
		}
		fmt.Fprintf(&b, " old-rule=%s%s", r.name, onText(r.on))
	}
	if f.Config.Rules != nil && len(f.Config.restored) == 0 || f.Config.UserPolicy != nil {
		b.WriteString("\n# the config had Rules or a UserPolicy set directly: no text form; name the old rule with old-rule=NAME")
	}
	fmt.Fprintf(&b, "\n----\n%s\n", failureText(f.Rule, f.Detail))
	return b.String()
}

func onText(on []int) string {
	if len(on) == 0 {
		return ""
	}
	var names []string
	for _, i := range on {
		names = append(names, replicaName(i))
	}
	if len(names) == 1 {
		return " on=" + names[0]
	}
	return " on=(" + strings.Join(names, ", ") + ")"
}

// scheduleSummary is the output of a schedule directive.
func scheduleSummary(c Config, ops []Op) string {
	nested := 0
	var count func([]Op)
	count = func(ops []Op) {
		for _, o := range ops {
			nested += len(o.Nested)
			count(o.Nested)
		}
	}
	count(ops)
	s := fmt.Sprintf("%d replicas, %d operations", c.Replicas, len(ops))
	if nested > 0 {
		s += fmt.Sprintf(" (and %d run during pauses)", nested)
	}
	return s
}

// failureText is how a failing run's outcome reads in a schedule file.
func failureText(rule, detail string) string {
	return "fails: " + rule + ": " + detail
}
