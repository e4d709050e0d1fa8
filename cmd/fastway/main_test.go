package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/logfmt"
	"github.com/fastway-go/fastway/internal/testbin"
	"github.com/fastway-go/fastway/proto"
)

// timeout bounds every wait in these tests.
const timeout = 10 * time.Second

// password is the server password the tests run the gateway with.
const password = "secret"

// binary is the fastway binary TestMain builds once for every test.
var binary string

func TestMain(m *testing.M) { testbin.Main(m, ".", &binary) }

// proc is a running fastway process. Its stderr (the log) is read line by
// line into lines.
type proc struct {
	t   *testing.T
	cmd *exec.Cmd
	dir string // working directory: pidfile, command file, profiles

	mu      sync.Mutex
	lines   []logLine
	changed chan struct{} // closed and replaced when a line arrives or the process exits
	exited  chan struct{} // closed once the process has exited
	code    int           // exit code, set before exited is closed
}

// logLine is one log record, split into its key=value pairs.
type logLine struct {
	raw string
	kv  map[string]string
}

// startProc starts fastway in dir with args. The process is killed when
// the test ends, if it still runs; on failure its log is printed.
func startProc(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startBinary(t, binary, dir, args...)
}

// startBinary is startProc with another fastway binary (for measurements
// of an older build).
func startBinary(t *testing.T, bin, dir string, args ...string) *proc {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Dir = dir
	c.Env = envWithout(authPasswordEnv, adminTokenEnv)
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: c, dir: dir, changed: make(chan struct{}), exited: make(chan struct{})}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, logLine{raw: sc.Text(), kv: logfmt.Parse(sc.Text())})
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		c.Wait()
		p.mu.Lock()
		p.code = c.ProcessState.ExitCode()
		close(p.exited)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			c.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(timeout):
				t.Errorf("pid %d did not exit after SIGKILL", c.Process.Pid)
			}
		}
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, l := range p.lines {
				t.Logf("pid %d: %s", c.Process.Pid, l.raw)
			}
		}
	})
	return p
}

// envWithout returns the environment without the variables names.
func envWithout(names ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, name := range names {
			if strings.HasPrefix(kv, name+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// mark returns the number of log lines read so far, for waitFrom.
func (p *proc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// waitFrom waits for the first log line at index since or later whose
// msg is msg and which has every key=value pair in kv, and returns it.
func (p *proc) waitFrom(since int, msg string, kv ...string) logLine {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines[min(since, len(p.lines)):] {
			if l.match(msg, kv...) {
				p.mu.Unlock()
				return l
			}
		}
		changed := p.changed
		exited := p.exited
		p.mu.Unlock()
		select {
		case <-exited:
			// One last look: the line may have come with the exit.
			p.mu.Lock()
			lines := p.lines[min(since, len(p.lines)):]
			p.mu.Unlock()
			for _, l := range lines {
				if l.match(msg, kv...) {
					return l
				}
			}
			p.t.Fatalf("fastway exited (code %d) without logging msg=%q %q", p.code, msg, kv)
		case <-changed:
		case <-deadline.C:
			p.t.Fatalf("no log line msg=%q %q within %v", msg, kv, timeout)
		}
	}
}

// match reports whether l has message msg and every key=value pair in kv.
func (l logLine) match(msg string, kv ...string) bool {
	if l.kv["msg"] != msg {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if l.kv[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

// ready waits until p listens on both ports and serves commands, and
// returns the client and server addresses it logged.
func (p *proc) ready() (clientAddr, serverAddr string) {
	p.t.Helper()
	clientAddr = p.waitFrom(0, "listening", "side", "client").kv["addr"]
	serverAddr = p.waitFrom(0, "listening", "side", "server").kv["addr"]
	p.waitFrom(0, "started")
	p.waitFrom(0, "fastway: cmd: serving")
	return clientAddr, serverAddr
}

// signal sends sig to p.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for p to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("fastway did not exit within %v", timeout)
		return -1
	}
}

// run sends the ops command line through the command file and SIGUSR1 and
// returns the log line with its outcome: "fastway: cmd: command done" or,
// if wantErr, "fastway: cmd: command failed".
func (p *proc) run(line string, wantErr bool) logLine {
	p.t.Helper()
	since := p.mark()
	if err := os.WriteFile(filepath.Join(p.dir, "fastway.cmd"), []byte(line+"\n"), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.signal(syscall.SIGUSR1)
	msg := "fastway: cmd: command done"
	if wantErr {
		msg = "fastway: cmd: command failed"
	}
	// The log names the command only (its first word), never its arguments.
	return p.waitFrom(since, msg, "cmd", strings.Fields(line)[0])
}

// loopback turns a logged listening address (maybe "[::]:port") into one
// a test can dial.
func loopback(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("logged address %q: %v", addr, err)
	}
	if port == "0" {
		t.Fatalf("logged address %q has port 0, want the real port", addr)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// peer is a raw client or server connection to the gateway.
type peer struct {
	t    *testing.T
	conn net.Conn
	fr   *proto.FrameReader
}

func dialPeer(t *testing.T, addr string) *peer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn, fr: proto.NewFrameReader(conn, nil, 0, 0)}
}

// dialServer connects a game server with id and waits until the gateway
// has registered it: the answer to its first Ping proves it.
func dialServer(t *testing.T, addr string, id uint32) *peer {
	t.Helper()
	p := dialPeer(t, addr)
	if err := proto.AuthenticateToGateway(p.conn, password, id, timeout); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	p.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	p.readCmd(proto.CmdPing)
	return p
}

func (p *peer) send(frame []byte) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := p.conn.Write(frame); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *peer) read() []byte {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(timeout))
	f, err := p.fr.ReadFrame()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return f
}

func (p *peer) readCmd(want proto.Cmd) proto.Command {
	p.t.Helper()
	c, err := proto.DecodeCommand(p.read())
	if err != nil {
		p.t.Fatalf("read command: %v", err)
	}
	if c.Type != want {
		p.t.Fatalf("got %+v, want %v", c, want)
	}
	return c
}

// readData reads a data frame and checks its ConnID and message.
func (p *peer) readData(connID uint32, msg string) {
	p.t.Helper()
	f := p.read()
	if id := proto.Header(f).ConnID(); id != connID || string(f[proto.HeaderSize:]) != msg {
		p.t.Fatalf("got %q on ConnID %d, want %q on %d", f[proto.HeaderSize:], id, msg, connID)
	}
}

// exchange connects a server with id and a client, has the client dial the
// server and both send a message, and closes both.
func exchange(t *testing.T, clientAddr, serverAddr string, id uint32) {
	t.Helper()
	srv := dialServer(t, serverAddr, id)
	defer srv.conn.Close()
	cl := dialPeer(t, clientAddr)
	defer cl.conn.Close()
	cl.send(proto.Command{Type: proto.CmdDial, RemoteID: id}.Encode(nil))
	acc := cl.readCmd(proto.CmdAccept)
	if acc.RemoteID != id || acc.ConnID == 0 {
		t.Fatalf("Accept %+v, want RemoteID %d and a ConnID", acc, id)
	}
	if con := srv.readCmd(proto.CmdConnect); con.ConnID != acc.ConnID {
		t.Fatalf("Connect %+v, want ConnID %d", con, acc.ConnID)
	}
	cl.send(proto.EncodeData(nil, acc.ConnID, []byte("hello")))
	srv.readData(acc.ConnID, "hello")
	srv.send(proto.EncodeData(nil, acc.ConnID, []byte("world")))
	cl.readData(acc.ConnID, "world")
}

// checkPidFile checks that dir's pidfile holds p's PID.
func (p *proc) checkPidFile() {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "fastway.pid"))
	if err != nil {
		p.t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), strconv.Itoa(p.cmd.Process.Pid); got != want {
		p.t.Fatalf("pidfile holds %q, want %s", got, want)
	}
}

// checkNoPidFile checks that dir has no pidfile.
func checkNoPidFile(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "fastway.pid")); !os.IsNotExist(err) {
		t.Fatalf("pidfile: %v, want it removed", err)
	}
}
