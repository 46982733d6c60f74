package cli

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ebreplica/ebreplica/remote"
)

// Progress on long commands: on a terminal only (stderr a TTY), never
// under --json, drawn by schollz/progressbar on stderr. A bar counts
// records (import, export, a bootstrap), bytes (what a push sends, once it
// has staged it) or log segments (what a pull applies, once it has listed
// them) with rate and ETA; beside it, push, pull, sync, compact and verify
// show a spinner with the bytes moved on the remote and the rate, read from
// the remote's counters. A bar is cleared when it finishes, and before the command's
// first line of output.

// showProgress reports whether this command may draw progress.
func (e *env) showProgress() bool {
	if e.json {
		return false
	}
	if e.held != nil { // forwarded: the client's stderr
		return e.held.stderrTTY
	}
	f, ok := e.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bar is a progress bar, or nothing (every method is safe on nil).
type bar struct {
	mu sync.Mutex
	pb *progressbar.ProgressBar
}

// newBar makes a bar; throttle is the least time between two drawings (0
// for a bar updated coarsely, which draws every update).
func newBar(w io.Writer, desc, unit string, total int64, bytes bool, throttle time.Duration) *bar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(throttle),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetElapsedTime(true),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionSetItsString(unit))
	}
	if total <= 0 {
		total = -1 // a spinner
		opts = append(opts, progressbar.OptionSpinnerType(14))
	}
	return &bar{pb: progressbar.NewOptions64(total, opts...)}
}

// newBar starts a bar of total units ("records"), or returns nil when this
// command shows no progress. fine: it is updated often (per record), and
// drawn at most ten times a second.
func (e *env) newBar(desc, unit string, total int64, fine bool) *bar {
	if !e.showProgress() {
		return nil
	}
	throttle := time.Duration(0)
	if fine {
		throttle = 100 * time.Millisecond
	}
	b := newBar(e.stderr, desc, unit, total, false, throttle)
	e.addBar(b)
	return b
}

// newBytesBar starts a bar of total bytes (nil when this command shows no
// progress).
func (e *env) newBytesBar(desc string, total int64) *bar {
	if !e.showProgress() {
		return nil
	}
	b := newBar(e.stderr, desc, "", total, true, 0)
	e.addBar(b)
	return b
}

func (b *bar) add(n int) {
	if b != nil {
		b.mu.Lock()
		_ = b.pb.Add(n)
		b.mu.Unlock()
	}
}

func (b *bar) set(n int64) {
	if b != nil {
		b.mu.Lock()
		_ = b.pb.Set64(n)
		b.mu.Unlock()
	}
}

// finish clears the bar from the terminal. Calling it again does nothing.
func (b *bar) finish() {
	if b != nil {
		b.mu.Lock()
		if !b.pb.IsFinished() {
			_ = b.pb.Finish()
		}
		b.mu.Unlock()
	}
}

// addBar registers b to be cleared before output and at the end.
func (e *env) addBar(b *bar) {
	e.barsMu.Lock()
	e.bars = append(e.bars, b)
	e.barsMu.Unlock()
}

// finishBars stops the remote tracker and clears every bar.
func (e *env) finishBars() {
	e.barsMu.Lock()
	stop, bars := e.stopTrack, e.bars
	e.stopTrack, e.bars = nil, nil
	e.barsMu.Unlock()
	if stop != nil {
		stop()
	}
	for _, b := range bars {
		b.finish()
	}
}

// trackRemote shows a spinner with the bytes b moves, until finishBars.
func (e *env) trackRemote(desc string, b remote.Backend) {
	if !e.showProgress() || e.stopTrack != nil {
		return
	}
	sp := newBar(e.stderr, desc, "", -1, true, 0)
	e.addBar(sp)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			st := b.Stats()
			sp.set(st.BytesIn.Load() + st.BytesOut.Load())
		}
	}()
	e.barsMu.Lock()
	e.stopTrack = func() { close(done); wg.Wait() }
	e.barsMu.Unlock()
}

// outputClearing returns stdout, made to clear the progress before its first
// write when it is a terminal too (where output would land on the progress
// line); to a file or a pipe it writes while the bar goes on.
func outputClearing(e *env, stdout io.Writer) io.Writer {
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &clearingWriter{w: stdout, e: e}
	}
	return stdout
}

// clearingWriter clears the progress before the first write through it, so
// that output never lands on a progress line.
type clearingWriter struct {
	w    io.Writer
	e    *env
	once sync.Once
}

func (c *clearingWriter) Write(p []byte) (int, error) {
	c.once.Do(c.e.finishBars)
	return c.w.Write(p)
}
