package main

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// portsPerSrcIP is how many client sockets the tool puts on one source
// address when -srcips is 0 (auto): Linux's default ephemeral range,
// 32768-60999, has about 28,000 ports per address, and other programs on the
// box use some of them.
const portsPerSrcIP = 20000

// maxSrcIPs is how many distinct addresses srcIP can make in 127.0.0.0/8
// (last octet 1-254).
const maxSrcIPs = 254 * 256 * 256

// srcIP returns the i-th source address, cycling through 127.0.0.1,
// 127.0.0.2, ..., 127.0.0.254, 127.0.1.1, ...: last octets 0 and 255 are
// skipped. The whole of 127.0.0.0/8 routes to lo on Linux, so a socket
// bound to any of them reaches a gateway listening on 127.0.0.1.
func srcIP(i int) net.IP {
	i %= maxSrcIPs
	return net.IPv4(127, byte(i/254/256), byte(i/254%256), byte(1+i%254))
}

// srcAddrs picks the local address of each client socket.
type srcAddrs struct {
	n   int // number of source addresses; 0: let the kernel choose
	off int // the first one's index (srcIP)
}

// newSrcAddrs spreads conns sockets over n source addresses (0: one per
// portsPerSrcIP sockets), when target is a loopback address; for any other
// target it binds nothing.
func newSrcAddrs(target string, n, conns int) (srcAddrs, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return srcAddrs{}, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() || !ip.IsLoopback() {
		return srcAddrs{}, nil
	}
	if n == 0 {
		n = (conns + portsPerSrcIP - 1) / portsPerSrcIP
	}
	return srcAddrs{n: min(max(n, 1), maxSrcIPs)}, nil
}

// local returns the local address for the i-th socket (nil: any).
func (s srcAddrs) local(i int) net.Addr {
	if s.n == 0 {
		return nil
	}
	return &net.TCPAddr{IP: srcIP(s.off + i%s.n)}
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// the new soft limit. (The Go runtime does the same at start-up; doing it
// here too makes the figure known for the check below.)
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// checkNoFile fails early, with a hint, when conns sockets cannot fit under
// the open-file limit.
func checkNoFile(conns int) error {
	limit, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("fastway-bench: raising RLIMIT_NOFILE: %w", err)
	}
	const spare = 64 // listeners, servers, /proc files, stdio
	if uint64(conns)+spare > limit {
		return fmt.Errorf("fastway-bench: %d connections need about %d file descriptors, but RLIMIT_NOFILE is %d "+
			"(raise the hard limit: ulimit -Hn as root, docker run --ulimit nofile=...)", conns, conns+spare, limit)
	}
	return nil
}
