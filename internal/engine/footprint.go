package engine

// maybeCollectGarbage runs the local store's value-log GC when it is due
// (store.DefaultGCInterval since the last one, kept in the database):
// after every Push, Pull and Sync, outside the sync lock, so that a
// long-running process (sync --watch, serve) and a cron-driven one alike
// keep their disk proportional to the live data under steady rewrites.
// Its errors are not the sync's: the store logs them, and the next
// collection tries again.
func (r *Engine) maybeCollectGarbage() {
	_, _ = r.st.MaybeCollectGarbage()
}
