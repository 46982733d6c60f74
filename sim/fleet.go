package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// Fleet runs: the contention of many writers on one log, measured on
// logical time with a latency model (issue 17). See the package doc,
// "Fleet scale".

// MaxFleet is the most replicas a fleet run takes.
const MaxFleet = 1000

// Defaults of the zero FleetConfig fields.
const (
	DefaultFleetReplicas = 1000
	DefaultFleetInterval = time.Minute
	DefaultFleetRounds   = 3
	DefaultFleetWindow   = 8 // the engine's pullWindow
	DefaultSegmentBytes  = 256
	// MaxShards is the most logs a sharded fleet run takes.
	MaxShards = 256
)

// FleetConfig describes a fleet run: Replicas writers, each syncing (a
// pull, then a push of one segment) once per Interval, Rounds times, with
// a random phase, every remote request taking Latency of logical time;
// then every replica pulls until it has every segment.
type FleetConfig struct {
	// Seed seeds the phases and the latency draws: the same config gives
	// the same FleetReport.
	Seed uint64
	// Replicas is the number of writers, 1 to MaxFleet (default 1000).
	Replicas int
	// Latency is the request latency model; Latency.Mean is required.
	Latency Latency
	// Interval is how often each replica syncs (default one minute; its
	// first sync is at a random phase within the first Interval). Negative:
	// back to back, each starting when the last ended (the throughput
	// ceiling: every writer contends all the time).
	Interval time.Duration
	// Rounds is the number of pushes per replica (default 3).
	Rounds int
	// PushOnly pushes without pulling first: a writer knows the tip only
	// from its own pushes, like processes that push in a loop.
	PushOnly bool
	// Shards, above 1, runs the sharded-log design (package doc): Shards
	// logs, log/s<shard>/<pos>, each with its own tip; a writer appends to
	// the log of its shard, a pull lists every shard. 0 or 1: today's one
	// global log. At most MaxShards.
	Shards int
	// TipList lists the tail of the writer's log from its known tip just
	// before its first claim (one LIST per push), so that the claim aims
	// at a tip at most one request old.
	TipList bool
	// Window bounds the segment fetches in flight per pull (default 8, the
	// engine's).
	Window int
	// SegmentBytes is the size of each pushed segment (default 256).
	SegmentBytes int
}

// Validate returns the config with its defaults filled in, or why it is
// invalid.
func (c FleetConfig) Validate() (FleetConfig, error) {
	c.Replicas = orDefault(c.Replicas, DefaultFleetReplicas)
	c.Interval = orDefault(c.Interval, DefaultFleetInterval)
	c.Rounds = orDefault(c.Rounds, DefaultFleetRounds)
	c.Window = orDefault(c.Window, DefaultFleetWindow)
	c.SegmentBytes = orDefault(c.SegmentBytes, DefaultSegmentBytes)
	c.Shards = max(c.Shards, 1)
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sim: fleet: "+format, a...)) }
	var err error
	if c.Latency, err = c.Latency.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Replicas < 1 || c.Replicas > MaxFleet {
		bad("Replicas %d: want 1 to %d", c.Replicas, MaxFleet)
	}
	if c.Rounds < 1 {
		bad("Rounds %d: want at least 1", c.Rounds)
	}
	if c.Window < 1 {
		bad("Window %d: want at least 1", c.Window)
	}
	if c.SegmentBytes < 1 {
		bad("SegmentBytes %d: want at least 1", c.SegmentBytes)
	}
	if c.Shards > MaxShards {
		bad("Shards %d: want at most %d", c.Shards, MaxShards)
	}
	return c, errors.Join(errs...)
}

// Contention is the contention of the writers on the log: PUT and LIST
// requests per push (the registry swap and every claim; uncontended a
// push costs 2 PUTs and no LIST), the share of pushes whose first claim
// landed, and commits per simulated second (from the first push's start
// to the last commit).
type Contention struct {
	PutPerPush  float64 `json:"put_per_push"`
	ListPerPush float64 `json:"list_per_push"`
	FirstTry    float64 `json:"first_try"`
	CommitsPerS float64 `json:"commits_per_s"`
}

// FleetReport is what a fleet run measured. Times are logical.
type FleetReport struct {
	Config     FleetConfig
	Contention Contention
	// Pushes is the number of pushes (each commits one segment); Retries
	// the claims beyond each push's first; MaxClaims the most claims one
	// push made.
	Pushes, Retries int64
	MaxClaims       int
	// PushMean, PushP50 and PushP99 are how long pushes took, from the
	// registry swap to the commit.
	PushMean, PushP50, PushP99 time.Duration
	// Pulls is the number of pulls; ListPerPull and GetPerPull their
	// requests on average (the fan-in: a pull fetches every segment the
	// others pushed since its last); GetsPerS the whole fleet's GETs per
	// simulated second; PullMean how long a pull took.
	Pulls                  int64
	ListPerPull            float64
	GetPerPull             float64
	GetsPerS               float64
	PullMean               time.Duration
	Converged              bool
	ConvergeAfter          time.Duration // from the last commit until every replica held every segment
	Simulated              time.Duration // logical time the run took
	Requests               Requests
	BytesOut, BytesIn      int64
	Cost                   Cost
	firstStart, lastCommit time.Duration
}

// fnode is one writer of a fleet run.
type fnode struct {
	i      int
	shard  int
	name   string
	cursor []uint64 // by shard: the highest position pulled
	tip    []uint64 // by shard: the highest own position committed
	own    map[string]bool
	pushed int // pushes done
	done   bool
}

func (n *fnode) known(s int) uint64 { return max(n.cursor[s], n.tip[s]) }

type fleet struct {
	cfg   FleetConfig
	clk   eventClock
	rng   *rand.Rand
	mem   *memremote.Backend
	nodes []*fnode
	top   []uint64 // by shard: the highest position committed
	ctx   context.Context

	rep        FleetReport
	durations  []time.Duration
	pullTime   time.Duration
	pushPuts   int64
	pushLists  int64
	firstTries int64
	pullLists  int64
	pullGets   int64
	pushing    int // replicas with pushes left
	lastDone   time.Duration
	started    bool
}

// RunFleet runs a fleet simulation (see FleetConfig and the package doc).
// It is deterministic: the same config gives the same report.
func RunFleet(cfg FleetConfig) (FleetReport, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return FleetReport{}, err
	}
	f := &fleet{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0xf1ee7)), ctx: context.Background()}
	f.mem, err = memremote.NewWithOptions("fleet", memremote.Options{Now: func() time.Time { return Epoch.Add(f.clk.now) }})
	if err != nil {
		return FleetReport{}, err
	}
	f.top = make([]uint64, cfg.Shards)
	f.pushing = cfg.Replicas
	for i := range cfg.Replicas {
		n := &fnode{i: i, shard: i % cfg.Shards, name: fmt.Sprintf("r%04d", i),
			cursor: make([]uint64, cfg.Shards), tip: make([]uint64, cfg.Shards), own: map[string]bool{}}
		f.nodes = append(f.nodes, n)
		var phase time.Duration
		if cfg.Interval > 0 {
			phase = time.Duration(f.rng.Int64N(int64(cfg.Interval)))
		}
		f.clk.at(phase, func() { f.cycle(n, phase) })
	}
	// Every replica stops once it holds every segment; the bound only
	// guards against a bug.
	limit := time.Duration(cfg.Rounds+10)*max(cfg.Interval, time.Minute) + 1000*time.Hour
	f.clk.run(limit)
	f.finish()
	// The log must be dense, one segment per push: every position from 1
	// to the tip of every log, none twice.
	var held int64
	for s, top := range f.top {
		held += int64(top)
		for info, err := range f.mem.List(f.ctx, f.prefix(s), "") {
			if p, ok := f.parse(s, info.Key); err != nil || !ok || p < 1 || p > top {
				return f.rep, fmt.Errorf("sim: fleet: log %d holds %s beyond its tip %d (%v)", s, info.Key, top, err)
			}
		}
	}
	if held != f.rep.Pushes || f.mem.Len() != int(held)+cfg.Replicas {
		return f.rep, fmt.Errorf("sim: fleet: %d pushes committed, the logs' tips sum to %d and the store holds %d objects", f.rep.Pushes, held, f.mem.Len())
	}
	return f.rep, nil
}

// cycle is one sync of n, started at t: a pull then a push while it has
// pushes left (a push alone with PushOnly), a pull alone after that until
// it holds every segment.
func (f *fleet) cycle(n *fnode, t time.Duration) {
	next := func() {
		at := f.clk.now
		if f.cfg.Interval > 0 {
			at = max(t+f.cfg.Interval, f.clk.now)
		}
		f.clk.at(at, func() { f.cycle(n, at) })
	}
	if n.pushed < f.cfg.Rounds {
		push := func() {
			f.push(n, func() {
				if n.pushed++; n.pushed == f.cfg.Rounds {
					f.pushing--
				}
				next()
			})
		}
		if f.cfg.PushOnly {
			push()
		} else {
			f.pull(n, push)
		}
		return
	}
	f.pull(n, func() {
		if f.pushing == 0 && f.holdsAll(n) {
			n.done = true
			f.lastDone = max(f.lastDone, f.clk.now)
			return
		}
		next()
	})
}

func (f *fleet) holdsAll(n *fnode) bool {
	for s, top := range f.top {
		if n.known(s) < top {
			return false
		}
	}
	return true
}

// Log layout: today's log/<pos>, or log/s<shard>/<pos> for shards.
func (f *fleet) prefix(s int) string {
	if f.cfg.Shards == 1 {
		return remote.LogPrefix
	}
	return fmt.Sprintf("%ss%03d/", remote.LogPrefix, s)
}

func (f *fleet) key(s int, pos uint64) string {
	if f.cfg.Shards == 1 {
		return remote.LogKey(pos)
	}
	return fmt.Sprintf("%s%020d", f.prefix(s), pos)
}

func (f *fleet) parse(s int, key string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, f.prefix(s))
	if !ok || len(rest) != 20 {
		return 0, false
	}
	p, err := strconv.ParseUint(rest, 10, 64)
	return p, err == nil
}

// req sends one request: do runs at the store when it arrives, then runs
// when the answer is back.
func (f *fleet) req(do func(), then func()) {
	there, back := f.cfg.Latency.draw(f.rng)
	f.clk.at(f.clk.now+there, func() {
		do()
		f.clk.at(f.clk.now+back, then)
	})
}

// listAll lists prefix after after, one request per page of 1000, and
// returns the positions of shard s listed; lists counts the requests.
func (f *fleet) listAll(s int, after string, lists *int64, then func([]uint64)) {
	var out []uint64
	var page func(after string)
	page = func(after string) {
		var more bool
		var last string
		f.req(func() {
			*lists++
			f.rep.Requests.List++
			n := 0
			for info, err := range f.mem.List(f.ctx, f.prefix(s), after) {
				if err != nil {
					panic(err) // the memory store fails no listing of a valid prefix
				}
				if n == 1000 {
					more = true
					break
				}
				n++
				last = info.Key
				if p, ok := f.parse(s, info.Key); ok {
					out = append(out, p)
				}
			}
		}, func() {
			if more {
				page(last)
				return
			}
			then(out)
		})
	}
	page(after)
}

// push swaps n's registry object (one PUT), optionally lists the tail,
// claims the next free position of its log as the engine's upload does
// (tip+1; on "exists" the next; every second "exists" a listing from
// there), reads its registry back (absence rule 3) and commits.
func (f *fleet) push(n *fnode, done func()) {
	s := n.shard
	start := f.clk.now
	if !f.started {
		f.started, f.rep.firstStart = true, start
	}
	puts, lists, claims := int64(0), int64(0), 0
	body := []byte(fmt.Sprintf("segment %s #%d ", n.name, n.pushed))
	body = append(body, make([]byte, max(f.cfg.SegmentBytes-len(body), 0))...)
	var claim func(pos uint64, exists int)
	commit := func(pos uint64) {
		f.req(func() { // the registry read after the create
			f.rep.Requests.Get++
		}, func() {
			n.tip[s] = max(n.tip[s], pos)
			n.own[f.key(s, pos)] = true
			f.top[s] = max(f.top[s], pos)
			f.rep.lastCommit = max(f.rep.lastCommit, f.clk.now)
			f.rep.Pushes++
			f.pushPuts += puts
			f.pushLists += lists
			f.rep.Retries += int64(claims - 1)
			f.rep.MaxClaims = max(f.rep.MaxClaims, claims)
			if claims == 1 {
				f.firstTries++
			}
			f.durations = append(f.durations, f.clk.now-start)
			done()
		})
	}
	claim = func(pos uint64, exists int) {
		var err error
		f.req(func() {
			puts++
			claims++
			f.rep.Requests.Put++
			_, err = f.mem.PutIfAbsent(f.ctx, f.key(s, pos), body)
			if err == nil {
				f.rep.BytesOut += int64(len(body))
			}
		}, func() {
			switch {
			case err == nil:
				commit(pos)
			case !errors.Is(err, remote.ErrExists):
				panic(err) // the memory store fails no create of a valid key
			case (exists+1)%2 == 1:
				claim(pos+1, exists+1)
			default:
				f.listAll(s, f.key(s, pos-1), &lists, func(ps []uint64) {
					tip := pos - 1
					for _, p := range ps {
						tip = max(tip, p)
					}
					claim(max(tip, pos)+1, exists+1)
				})
			}
		})
	}
	reg := []byte(fmt.Sprintf(`{"replica":%q,"seq":%d,"ack":%d}`, n.name, n.pushed, n.known(s)))
	f.req(func() { // the registry swap (PutIfMatch on the writer's own object: never contended)
		puts++
		f.rep.Requests.Put++
		f.rep.BytesOut += int64(len(reg))
		if _, err := f.mem.Put(f.ctx, "registry/"+n.name, reg); err != nil {
			panic(err)
		}
	}, func() {
		if !f.cfg.TipList {
			claim(n.known(s)+1, 0)
			return
		}
		from := n.known(s)
		f.listAll(s, f.key(s, from), &lists, func(ps []uint64) {
			for _, p := range ps {
				from = max(from, p)
			}
			claim(from+1, 0)
		})
	})
}

// pull brings n up to date: with one log as the engine does (a GET of
// cursor+1, idle when not found, else a listing after the cursor), with
// shards a listing of every shard at once; then it fetches every listed
// segment not its own, Window at a time.
func (f *fleet) pull(n *fnode, done func()) {
	start := f.clk.now
	f.rep.Pulls++
	type item struct {
		s   int
		pos uint64
	}
	var todo []item
	fetch := func() {
		next, inflight := 0, 0
		var launch func()
		finish := func() {
			for _, it := range todo {
				n.cursor[it.s] = max(n.cursor[it.s], it.pos)
			}
			f.pullTime += f.clk.now - start
			done()
		}
		launch = func() {
			for inflight < f.cfg.Window && next < len(todo) {
				it := todo[next]
				next++
				key := f.key(it.s, it.pos)
				if n.own[key] {
					continue
				}
				inflight++
				f.req(func() {
					f.pullGets++
					f.rep.Requests.Get++
					obj, err := f.mem.Get(f.ctx, key)
					if err != nil {
						panic(err) // nothing is ever deleted in a fleet run
					}
					f.rep.BytesIn += int64(len(obj.Data))
				}, func() {
					inflight--
					launch()
				})
			}
			if inflight == 0 && next == len(todo) {
				finish()
			}
		}
		launch()
	}
	if f.cfg.Shards == 1 {
		var found bool
		probe := f.key(0, n.cursor[0]+1)
		f.req(func() {
			f.pullGets++
			f.rep.Requests.Get++
			obj, err := f.mem.Get(f.ctx, probe)
			found = err == nil
			f.rep.BytesIn += int64(len(obj.Data))
		}, func() {
			if !found {
				f.pullTime += f.clk.now - start
				done()
				return
			}
			f.listAll(0, f.key(0, n.cursor[0]), &f.pullLists, func(ps []uint64) {
				for _, p := range ps {
					if p != n.cursor[0]+1 { // the probe fetched it
						todo = append(todo, item{0, p})
					}
				}
				n.cursor[0] = max(n.cursor[0], n.cursor[0]+1)
				fetch()
			})
		})
		return
	}
	left := f.cfg.Shards
	got := make([][]uint64, f.cfg.Shards)
	for s := range f.cfg.Shards {
		f.listAll(s, f.key(s, n.cursor[s]), &f.pullLists, func(ps []uint64) {
			got[s] = ps
			if left--; left == 0 {
				for s, ps := range got {
					for _, p := range ps {
						todo = append(todo, item{s, p})
					}
				}
				fetch()
			}
		})
	}
}

func (f *fleet) finish() {
	r := &f.rep
	r.Config = f.cfg
	r.Simulated = f.clk.now
	r.Converged = true
	for _, n := range f.nodes {
		r.Converged = r.Converged && n.done
	}
	if r.Converged {
		r.ConvergeAfter = f.lastDone - r.lastCommit
	}
	if r.Pushes > 0 {
		p := float64(r.Pushes)
		r.Contention.PutPerPush = float64(f.pushPuts) / p
		r.Contention.ListPerPush = float64(f.pushLists) / p
		r.Contention.FirstTry = float64(f.firstTries) / p
		if span := r.lastCommit - r.firstStart; span > 0 {
			r.Contention.CommitsPerS = p / span.Seconds()
		}
		d := slices.Clone(f.durations)
		slices.Sort(d)
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		r.PushMean = sum / time.Duration(len(d))
		r.PushP50 = d[len(d)/2]
		r.PushP99 = d[min(len(d)-1, len(d)*99/100)]
	}
	if r.Pulls > 0 {
		r.ListPerPull = float64(f.pullLists) / float64(r.Pulls)
		r.GetPerPull = float64(f.pullGets) / float64(r.Pulls)
		r.PullMean = f.pullTime / time.Duration(r.Pulls)
	}
	if r.Simulated > 0 {
		r.GetsPerS = float64(f.pullGets) / r.Simulated.Seconds()
	}
	r.Cost = estimate(r.Requests)
}

// ContendedReport is a simulation Report with the contention of a fleet
// run added: the JSON form of ebreplica sim --latency.
type ContendedReport struct {
	Report
	Contention Contention `json:"contention"`
}

// Report is the fleet run as a simulation Report (ebreplica sim
// --latency --json): the replicas, convergence, requests, bytes and cost,
// and the contention.
func (r FleetReport) Report() ContendedReport {
	rounds := 0
	if r.Config.Interval > 0 && r.Converged {
		rounds = int((r.ConvergeAfter + r.Config.Interval - 1) / r.Config.Interval)
	}
	rep := Report{Seed: r.Config.Seed, Runs: 1, Policy: PolicyLWW, Engine: "fleet", Durability: "sync",
		Replicas: r.Config.Replicas, Ops: int(r.Pushes + r.Pulls), Converged: r.Converged, Rounds: rounds,
		Writes: r.Pushes, FaultsByKind: map[string]int64{}, Requests: r.Requests,
		BytesOut: r.BytesOut, BytesIn: r.BytesIn, Cost: r.Cost}
	return ContendedReport{Report: rep, Contention: r.Contention}
}

// WriteText writes the fleet report for people, deterministically.
func (r FleetReport) WriteText(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	layout := "one global log"
	if c.Shards > 1 {
		layout = fmt.Sprintf("%d sharded logs", c.Shards)
	}
	if c.TipList {
		layout += ", tail listed before the claim"
	}
	every := "every " + c.Interval.String()
	if c.Interval < 0 {
		every = "back to back"
	}
	what := "syncs"
	if c.PushOnly {
		what = "pushes"
	}
	fmt.Fprintf(&b, "ebreplica sim --latency %s: seed %d; %d replicas, each %s %s %d times; %s; request latency %s ±%.0f%%\n",
		c.Latency.Mean, c.Seed, c.Replicas, what, every, c.Rounds, layout, c.Latency.Mean, max(c.Latency.Jitter, 0)*100)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, a...)) }
	conv := "NO"
	if r.Converged {
		conv = fmt.Sprintf("yes, every replica held every segment %s after the last commit", fmtSeconds(r.ConvergeAfter))
	}
	row("converged", "%s", conv)
	row("pushes", "%d: %.2f PUT and %.2f LIST per push, %.1f%% landed on the first try, %d retries (at most %d claims in one push)",
		r.Pushes, r.Contention.PutPerPush, r.Contention.ListPerPush, 100*r.Contention.FirstTry, r.Retries, r.MaxClaims)
	row("push time", "mean %s, median %s, p99 %s", fmtSeconds(r.PushMean), fmtSeconds(r.PushP50), fmtSeconds(r.PushP99))
	row("log throughput", "%.2f commits per simulated second", r.Contention.CommitsPerS)
	row("pulls", "%d: %.2f LIST and %.1f GET per pull (fan-in), mean %s; the fleet reads %.0f GET/s",
		r.Pulls, r.ListPerPull, r.GetPerPull, fmtSeconds(r.PullMean), r.GetsPerS)
	row("simulated", "%s", fmtSeconds(r.Simulated))
	row("requests", "PUT %d, GET %d, LIST %d, DELETE %d", r.Requests.Put, r.Requests.Get, r.Requests.List, r.Requests.Delete)
	row("bytes", "%d out, %d in", r.BytesOut, r.BytesIn)
	row("estimated cost", "$%.4f at S3 request prices: PUT and LIST $%.4f per 1,000, GET $%.4f per 1,000",
		r.Cost.USD, PricePutListPer1000, PriceGetPer1000)
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + " s"
}
