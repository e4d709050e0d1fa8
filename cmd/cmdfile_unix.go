//go:build unix

package cmd

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openCmdFile opens the command file for reading without following a
// symbolic link in its last component (O_NOFOLLOW) and without blocking
// (O_NONBLOCK: a FIFO or a device put in its place returns at once), then
// checks what was opened (fstat on the descriptor, so a swap between a
// check and the open cannot fool it): a regular file, owned by the
// process's effective user, not writable by group or others, with one
// link. Anything else is refused with the reason.
func openCmdFile(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		// O_NOFOLLOW on a symbolic link: ELOOP (Linux, macOS), EMLINK (BSD).
		if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK) {
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
				return nil, errors.New("a symbolic link: refused (write the command into a regular file)")
			}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkCmdFileStat(&st); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkCmdFileStat applies openCmdFile's rules to what fstat says.
func checkCmdFileStat(st *syscall.Stat_t) error {
	mode := uint32(st.Mode)
	switch {
	case mode&syscall.S_IFMT != syscall.S_IFREG:
		return fmt.Errorf("not a regular file (%s): refused", fileKind(mode&syscall.S_IFMT))
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("owned by uid %d, not by the gateway's user (uid %d): refused", st.Uid, os.Geteuid())
	case mode&0o022 != 0:
		return fmt.Errorf("writable by group or others (mode %04o): refused (chmod go-w)", mode&0o7777)
	case st.Nlink != 1:
		return fmt.Errorf("has %d hard links: refused (want a file of its own)", st.Nlink)
	}
	return nil
}

// fileKind names a file type from its S_IFMT bits.
func fileKind(t uint32) string {
	switch t {
	case syscall.S_IFIFO:
		return "a FIFO"
	case syscall.S_IFCHR:
		return "a character device"
	case syscall.S_IFBLK:
		return "a block device"
	case syscall.S_IFDIR:
		return "a directory"
	case syscall.S_IFSOCK:
		return "a socket"
	case syscall.S_IFLNK:
		return "a symbolic link"
	}
	return fmt.Sprintf("type %#o", t)
}
