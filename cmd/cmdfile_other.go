//go:build !unix

package cmd

import (
	"errors"
	"os"
)

// openCmdFile opens the command file if it is a regular file and not a
// symbolic link, and is still the file checked once opened. (These systems
// have no SIGUSR1; RunFile still works.)
func openCmdFile(path string) (*os.File, error) {
	before, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, errors.New("not a regular file: refused")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	after, err := f.Stat()
	if err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, errors.New("replaced while being opened: refused")
	}
	return f, nil
}
