// Package snet is a reconnectable, optionally encrypted byte stream between
// TCP and the gateway framing (docs/protocol.md §3). A mobile client that
// loses its TCP connection resumes the same stream on a new one without
// losing or repeating a byte.
//
// A client calls [Dial]; a server wraps its listener with [Listen], whose
// Accept returns new sessions only. Both hand out a [*Conn], a net.Conn whose
// Read and Write block (rather than fail) while the stream is being resumed.
// The client reconnects by itself when its TCP connection breaks, or when
// [Conn.TryReconn] asks it to; the server keeps a broken session waiting for
// [Config.ReconnWaitTimeout] and then closes it for good.
//
// # Wire format
//
// All integers are little-endian u64. The handshake is identical with and
// without encryption.
//
// New connection (§3.2):
//
//	client → 00 · clientPublic
//	server → serverPublic · (connID XOR first 8 bytes of the server's write RC4) · challenge
//	client → MD5(challenge || key)
//
// Reconnect (§3.4):
//
//	client → ff · connID · writeCount · readCount · MD5(those 24 bytes || key)
//	server → writeCount · readCount · challenge        (24 zero bytes: refused)
//	client → MD5(challenge || key)
//	both   → replay of the bytes the peer has not read, then the stream resumes
//
// # Decisions where §3 is open
//
//   - The session key is the DH64 secret as 8 little-endian bytes. It keys
//     both RC4 ciphers of a side, and it is the "key" in every
//     MD5(... || key). The challenge is hashed as its 8 wire bytes.
//   - The connection ID is XORed as its 8 little-endian bytes. This is the
//     only use of a cipher in the handshake: the server→client keystream
//     (server write, client read) therefore starts data at offset 8, the
//     client→server keystream (client write, server read) at offset 0. The
//     ciphers advance even when EnableCrypt is off, and then go unused.
//   - A peer public key that is 0 modulo P is refused: the server closes
//     without replying, the client's Dial fails with [ErrBadHandshake].
//   - Write and read counts are data bytes since the session began, across
//     reconnects; handshake bytes are not counted.
//   - The server assigns connection IDs 1, 2, 3… per listener. A challenge is
//     8 random bytes, never all zero, so a real reply is never all zero.
//   - Digests are compared in constant time. The server looks up the ID and
//     checks the reconnect digest, then checks the counts against the
//     session (its read count must not exceed the client's write count, the
//     client's read count must not exceed its write count, and the
//     difference must still be in its buffer) and answers with its counts
//     and a challenge. None of that touches the session: a TCP connection
//     it still has carries on, and so does the wait of one that has none.
//     Only a reconnect that answers the challenge correctly takes the
//     session over: then, and not before, the old TCP connection is closed
//     (if the server had not noticed the break yet). A reconnect request
//     carries no server nonce, so a captured one can be replayed while its
//     counts are current; it gets a reply and goes no further, as it cannot
//     answer the challenge. Several reconnects may wait for their answer at
//     once; the first right answer wins and the others are closed.
//   - The counts the server sends are those of the moment it replies. If
//     the old TCP connection was still alive, the server may read and write
//     more on it before the answer arrives. Writes are covered (the server
//     replays from the client's read count, so they go out again); bytes it
//     read meanwhile are dropped from the start of the client's replay, as
//     many as it read since its reply, so nothing is delivered twice. The
//     wire is the same as before: a client replays from the read count it
//     was sent, as it always did.
//   - After a refusal (24 zero bytes) the server closes the TCP connection.
//   - If the client's answer to the reconnect challenge is wrong the server
//     closes the new TCP connection; the session is untouched.
//   - The client checks its own side: the server's write count must not be
//     below the client's read count, and the client's replay must fit in its
//     buffer, or it closes with [ErrBadHandshake] / [ErrGapTooLarge]. Only
//     the client can tell why it refused; to the client, any server refusal
//     is [ErrRefused].
//   - Replay: each side installs the new TCP connection as soon as its
//     handshake is done (client: after sending its digest; server: after
//     checking it), then sends its missing bytes from a goroutine, before any
//     new Write, while reads already flow. Neither side waits for the other's
//     replay, so large buffers cannot deadlock.
//   - Bytes a side reads from a TCP connection after it started replacing
//     that connection are dropped uncounted; the peer replays them.
//   - There is no close message: closing one side looks like a break to the
//     other. A closed client's session lingers on the server until
//     ReconnWaitTimeout; a closed server session refuses the client's next
//     reconnect ([ErrRefused]).
//   - Both sides must use the same EnableCrypt; nothing negotiates it.
//
// # Limits
//
// Bytes a side wrote but the peer never read must still be in its rewrite
// buffer, or the reconnect fails with [ErrGapTooLarge] (the session is lost,
// never corrupted). After a cut those bytes are: the piece of a Write not
// yet handed to the kernel (at most a sixteenth of the buffer), the sender's
// socket send buffer, what the path holds (in flight bytes are in the send
// buffer until acknowledged; a TCP-terminating hop, such as a proxy or a
// load balancer in TCP mode, holds bytes of its own), and the receiver's
// socket receive buffer. So the rule is
//
//	RewriterBufferSize ≥ RewriterBufferSize/16 + sender's SO_SNDBUF + path + receiver's SO_RCVBUF
//
// with the socket buffers as the kernel holds them. Left to TCP autotuning
// they grow to megabytes; snet therefore sets them, before the connection is
// made, to [Config.SocketBuffer] (a sixteenth of the buffer, 2 KiB at the
// least; the kernel doubles it): [Config.Control] for a net.Dialer or
// net.ListenConfig, [TCPDialer] for Dial, and [Listen] on a
// *net.TCPListener (accepted sockets inherit a listening socket's sizes).
// At the default 32 KiB that is 4096 + 4608 bytes in the kernel on Linux
// (which may let a send buffer run over by part of a segment) and 2 KiB for
// the Write piece, which leaves about 21 KiB for the path.
// Shrinking a receive buffer after the connection is established instead
// can leave the peer's writes stalled on TCP's persist timer for minutes.
// Both ends must follow the rule: a peer that leaves its receive buffer to
// autotuning can hold more unread bytes than any rewrite buffer covers. A
// Conn also raises its buffer's capacity to twice what its own socket's
// buffers hold (getsockopt) when the kernel gives more than was asked (its
// floor, under small buffers) or the socket was not sized at all; that
// covers a peer sized like itself, not one that autotunes. Over TLS, add a
// TLS record (16 KiB) each way: tls.Conn reads a whole record before snet
// sees any of it.
//
// The buffer is allocated as bytes are written, up to RewriterBufferSize:
// a session that has written nothing holds none, one that has written less
// than the buffer holds about what it wrote, and one that has written more
// keeps the last RewriterBufferSize bytes for as long as it lives.
//
// The server learns that a TCP connection broke when a Read or Write on it
// fails, or when the client's reconnect arrives; the gateway always has a
// Read pending, so that is enough. Each TCP connection's handshake holds one
// goroutine for at most HandshakeTimeout, and a Listener runs at most
// [Config.MaxHandshakes] at once: past it a new connection is closed as
// soon as it is accepted. Nothing is allocated for a session before its
// handshake succeeds, and its rewrite buffer only as it writes, so a flood
// of handshakes costs a few KiB each ([Listener.Stats] and
// [Config.Logger] count and log every refusal).
//
// A reconnect request carries no server nonce, so a captured request can be
// replayed while the counts in it are current. The server answers it with a
// challenge and leaves the session alone until the challenge is answered,
// which needs the key: a replay costs the server one handshake and the
// session nothing. The key itself is another matter: RC4 and a 64-bit
// Diffie-Hellman exist for compatibility with deployed clients only. A
// passive observer of the new-connection handshake recovers the key in
// about a second (docs/security.md) and can then read, forge and take over
// the session; use TLS for security.
package snet
