//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

// lockDir: no flock here, so no repair (see repairCrashLeftovers).
func lockDir(string) (unlock func(), err error) { return nil, errNoDirLock }
