package cli

import "context"

var lenCmd = &command{
	name:    "len",
	summary: "print the number of live keys",
	maxArgs: 0,
	run:     runLen,
}

func runLen(ctx context.Context, e *env) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	n := r.Len()
	if e.json {
		return writeJSON(e.stdout, struct {
			Keys int64 `json:"keys"`
		}{n})
	}
	o := newOutput(e.stdout)
	o.printf("%d\n", n)
	return o.flush()
}
