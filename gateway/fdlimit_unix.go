//go:build unix

package gateway

import "syscall"

// fdLimit returns the soft RLIMIT_NOFILE (0 if it cannot be read).
func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return clampLimit(rl.Cur)
}
