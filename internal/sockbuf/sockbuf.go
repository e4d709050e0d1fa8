// Package sockbuf sets and reads the kernel's buffer sizes of a socket
// (SO_SNDBUF, SO_RCVBUF), for snet and the test fault proxy. Where socket
// options are not reachable through syscall (not unix) it does nothing.
package sockbuf

import "syscall"

// Control returns a net.Dialer or net.ListenConfig Control function that
// sets a socket's send and receive buffers to size bytes before it
// connects or listens (accepted sockets inherit a listener's).
func Control(size int) func(network, address string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = Set(fd, size) }); cerr != nil {
			return cerr
		}
		return err
	}
}
