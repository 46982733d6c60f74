package sim

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/ebreplica/ebreplica/merge"
)

// CompareOptions says which policies Compare runs, and on what.
type CompareOptions struct {
	// Runs is the number of runs, over consecutive seeds from Config.Seed
	// (default 1). Every policy runs every seed.
	Runs int
	// Policies names the policies, in the table's order: built-in names
	// (lww, mv, counter, set, json, json-mv) or the Name of a User policy.
	Policies []string
	// User are a user's own policies (a merge.NewFunc, say). Each takes
	// part under its Name: where Policies names it, or after the named
	// ones.
	User []merge.Policy
	// Trace, when set, is the workload: its writes replayed (RunTrace)
	// instead of generated ones.
	Trace *Trace
}

// Comparison is the outcome of Compare: one summed Report per policy, in
// order, and each run's own report.
type Comparison struct {
	Seed       uint64 `json:"seed"` // the first seed
	Runs       int    `json:"runs"`
	Replicas   int    `json:"replicas"`
	Keys       int    `json:"keys"`
	Engine     string `json:"engine"`
	Durability string `json:"durability"`
	// Workload describes the schedules every policy ran.
	Workload string `json:"workload"`
	// Policies holds each policy's report, summed over the runs as
	// RunMany sums them.
	Policies []Report `json:"policies"`
	// PerRun holds, by policy (in the order of Policies), each run's
	// report; the first run's keeps its Trace and, with Config.Timeline,
	// its Timeline.
	PerRun [][]Report `json:"-"`
}

// entrant is one policy of a comparison.
type entrant struct {
	name string
	user merge.Policy // nil: the built-in name
}

func lineup(o CompareOptions) ([]entrant, error) {
	var out []entrant
	var errs []error
	seen := map[string]bool{}
	users := map[string]merge.Policy{}
	for _, p := range o.User {
		if p == nil {
			errs = append(errs, errors.New("sim: a nil User policy"))
			continue
		}
		if _, ok := merge.Builtin(p.Name()); ok {
			errs = append(errs, fmt.Errorf("sim: User policy %q has the name of a built-in policy", p.Name()))
			continue
		}
		if users[p.Name()] != nil {
			errs = append(errs, fmt.Errorf("sim: two User policies named %q", p.Name()))
			continue
		}
		users[p.Name()] = p
	}
	for _, name := range o.Policies {
		if seen[name] {
			errs = append(errs, fmt.Errorf("sim: policy %q named twice", name))
			continue
		}
		seen[name] = true
		if u := users[name]; u != nil {
			out = append(out, entrant{name: name, user: u})
			continue
		}
		if _, ok := merge.Builtin(name); !ok {
			errs = append(errs, fmt.Errorf("sim: unknown policy %q (want lww, mv, counter, set, json or json-mv, or the name of a User policy)", name))
			continue
		}
		out = append(out, entrant{name: name})
	}
	for _, p := range o.User {
		if p != nil && !seen[p.Name()] && users[p.Name()] == p {
			seen[p.Name()] = true
			out = append(out, entrant{name: p.Name(), user: p})
		}
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("sim: no policy to compare"))
	}
	return out, errors.Join(errs...)
}

func (e entrant) config(cfg Config) Config {
	cfg.Policy, cfg.UserPolicy = e.name, e.user
	if e.user != nil {
		cfg.Policy = ""
	}
	return cfg
}

// Compare runs every policy of o on identical schedules and returns their
// reports side by side. For each seed the schedule is made once: the
// trace's (o.Trace), or generated as Generate makes it for lww. Every
// policy then runs that schedule, operation for operation (same ids,
// replicas, logical times, keys, syncs, crashes, partitions and faults);
// for a policy with other writes than put and delete, each write is
// mapped (MapSchedule): counter, set and json keys take the same writes
// as increments, members and document fields. A lineup of one policy with
// no trace runs that policy's own schedule, exactly as Run does.
//
// A run that breaks an invariant is reported in its policy's row; the
// error is the first such failure (every run still runs), or a set-up
// error, which runs nothing.
func Compare(cfg Config, o CompareOptions) (Comparison, error) {
	runs := o.Runs
	if runs == 0 {
		runs = 1
	}
	if runs < 1 {
		return Comparison{}, fmt.Errorf("sim: runs %d: want at least 1", runs)
	}
	entrants, err := lineup(o)
	if err != nil {
		return Comparison{}, err
	}
	if o.Trace != nil {
		if cfg, err = o.Trace.config(cfg); err != nil {
			return Comparison{}, err
		}
	}
	var errs []error
	for _, e := range entrants {
		if _, err := e.config(cfg).validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Comparison{}, err
	}
	base := cfg
	base.Policy, base.UserPolicy = PolicyLWW, nil
	base, _ = base.validate()
	c := Comparison{Seed: base.Seed, Runs: runs, Replicas: base.Replicas, Keys: base.Keys,
		Engine: base.Engine, Durability: base.Durability.String(),
		Policies: make([]Report, len(entrants)), PerRun: make([][]Report, len(entrants))}
	native := o.Trace == nil && len(entrants) == 1
	switch {
	case o.Trace != nil:
		c.Workload = o.Trace.describe()
	case native:
		c.Workload = "generated"
	default:
		c.Workload = "generated once per seed, writes mapped for each policy"
	}
	var first error
	for i := range runs {
		seed := base.Seed + uint64(i)
		var ops []Op
		if !native {
			b := base
			b.Seed = seed
			if o.Trace != nil {
				ops = o.Trace.schedule(b)
			} else {
				ops = generate(b)
			}
		}
		for j, e := range entrants {
			ec, _ := e.config(cfg).validate()
			ec.Seed = seed
			sched := ops
			if native {
				sched = generate(ec)
			} else {
				sched = mapSchedule(sched, ec.kind())
			}
			rep, err := runShrunk(ec, sched)
			var f *Failure
			if err != nil && !errors.As(err, &f) {
				return Comparison{}, err
			}
			if err != nil && first == nil {
				first = err
			}
			if o.Trace != nil {
				rep.Workload = c.Workload
			}
			if i > 0 {
				rep.Trace, rep.Timeline = nil, nil
			}
			c.PerRun[j] = append(c.PerRun[j], rep)
			c.Policies[j].add(rep)
		}
	}
	for j := range c.Policies {
		c.Policies[j].Workload = c.PerRun[j][0].Workload
	}
	return c, first
}

// MapSchedule returns ops as a policy of the given name runs them: under
// lww, mv or a user policy (any name that is not built in) unchanged;
// under counter, set, json and json-mv each put, delete and batch becomes
// that policy's write of the same key, drawn from the operation's id so
// that every policy sees one workload:
//
//   - counter: a put adds 1 + id%5, a delete subtracts 1 + id%3;
//   - set: a put adds the member e<id%4>, a delete removes it;
//   - json, json-mv: a put sets a field of the document (name, email,
//     addr.city, addr.zip: to the put's value; or increments visits, or
//     adds a member to tags), a delete removes one (name, email, addr, or
//     a member of tags);
//
// a batch becomes the write of its first item. Other operations are kept
// as they are.
func MapSchedule(ops []Op, policy string) []Op {
	if _, ok := merge.Builtin(policy); !ok {
		return slices.Clone(ops)
	}
	return mapSchedule(ops, Config{Policy: policy}.kind())
}

func mapSchedule(ops []Op, kind policyKind) []Op {
	out := make([]Op, len(ops))
	for i, o := range ops {
		out[i] = mapWrite(o, kind)
		if len(o.Nested) > 0 {
			out[i].Nested = mapSchedule(o.Nested, kind)
		}
	}
	return out
}

func mapWrite(o Op, kind policyKind) Op {
	if kind == kindRegister {
		return o
	}
	if o.Kind == OpBatch {
		if len(o.Items) == 0 {
			return o
		}
		it := o.Items[0]
		o.Items = nil
		o.Kind, o.Key, o.Value = OpPut, it.Key, it.Value
		if it.Delete {
			o.Kind, o.Value = OpDelete, ""
		}
	}
	if o.Kind != OpPut && o.Kind != OpDelete {
		return o
	}
	del := o.Kind == OpDelete
	id := max(o.ID, 0)
	switch kind {
	case kindCounter:
		o.Kind, o.Delta = OpAdd, int64(1+id%5)
		if del {
			o.Delta = -int64(1 + id%3)
		}
		o.Value = ""
	case kindSet:
		o.Kind, o.Elem, o.Value = OpSetAdd, fmt.Sprintf("e%d", id%4), ""
		if del {
			o.Kind = OpSetRemove
		}
	case kindJSON:
		if del {
			o.Elem = docRemovable[id%len(docRemovable)]
			o.Value = docOpValue(o.Elem, id)
		} else {
			o.Elem = docLeaves[id%len(docLeaves)]
			if v := docOpValue(o.Elem, id); v != "" {
				o.Value = v
			} else if o.Value == "" {
				o.Value = fmt.Sprintf("%s%d", replicaName(o.R), id)
			}
		}
		o.Kind = OpPatch
	}
	return o
}

// WriteText writes the comparison as one table, a row per policy,
// deterministically.
func (c Comparison) WriteText(w io.Writer) error {
	var b strings.Builder
	runs := fmt.Sprintf("seed %d", c.Seed)
	if c.Runs > 1 {
		runs = fmt.Sprintf("%d runs, seeds %d..%d", c.Runs, c.Seed, c.Seed+uint64(c.Runs)-1)
	}
	fmt.Fprintf(&b, "ebreplica sim: %s; %d replicas, %d keys, engine %s, durability %s; %d policies on identical schedules\n",
		runs, c.Replicas, c.Keys, c.Engine, c.Durability, len(c.Policies))
	fmt.Fprintf(&b, "workload: %s\n", c.Workload)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tconverged\trounds\tlost updates\tconflicts\tmax siblings\twrites\tPUT\tGET\tLIST\tDELETE\tbytes out\tbytes in\test. cost\t")
	for _, r := range c.Policies {
		conv := "yes"
		if !r.Converged {
			conv = fmt.Sprintf("NO (%d/%d)", r.Failed, r.Runs)
		}
		lost := "-"
		if r.Policy == PolicyLWW {
			lost = fmt.Sprint(r.LostUpdates)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t$%.6f\t\n",
			r.Policy, conv, r.Rounds, lost, r.Conflicts, r.MaxSiblings, r.Writes,
			r.Requests.Put, r.Requests.Get, r.Requests.List, r.Requests.Delete, r.BytesOut, r.BytesIn, r.Cost.USD)
	}
	tw.Flush()
	b.WriteString("rounds: the most sync rounds any run took to converge once the faults stopped; lost updates (lww only): concurrent writes overwritten unread;\n")
	fmt.Fprintf(&b, "cost at S3 request prices: PUT and LIST $%.4f per 1,000, GET $%.4f per 1,000 (DELETE free; transfer and storage not counted)\n",
		PricePutListPer1000, PriceGetPer1000)
	for _, r := range c.Policies {
		if r.Failure != "" {
			fmt.Fprintf(&b, "first failure under %s:\n%s\n", r.Policy, r.Failure)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
