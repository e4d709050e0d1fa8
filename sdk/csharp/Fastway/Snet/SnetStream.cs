using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;

namespace Fastway.Snet
{
    /// <summary>The client side of an snet session (PROTOCOL.md §3): a Stream that
    /// survives the loss of its TCP connection. When the connection breaks (or
    /// TryReconnect asks) it dials a new one, resumes with the reconnect handshake,
    /// replays what the gateway did not get, and goes on; Read and Write block meanwhile,
    /// and no byte is lost or repeated. Byte-compatible with the gateway's snet
    /// (-ClientSnetEnable, -ClientSnetEncrypt). One Read and one Write at a time, from any
    /// threads, alongside TryReconnect and Dispose: what EndPoint does.</summary>
    public sealed class SnetStream : Stream
    {
        const int MaxChunk = 64 << 10;
        const int ChunkDivisor = 16;
        const int MinBackoffMs = 10, MaxBackoffMs = 1000;
        const int JoinTimeoutMs = 5000;

        enum State { Connected, Broken, Closed }

        readonly SnetConfig cfg;
        readonly Func<Stream> dialer;
        readonly ulong id;
        readonly byte[] key;
        readonly Stopwatch clock = Stopwatch.StartNew();

        readonly object readLock = new object(); // one Read at a time; guards readCipher
        readonly Rc4 readCipher;
        readonly object writeLock = new object(); // one writer at a time; guards writeCipher and ring
        readonly Rc4 writeCipher;
        readonly Ring ring;

        readonly object mu = new object();
        State state;
        Exception err;      // why it closed
        Stream conn;        // the current connection, null unless connected
        ulong gen;          // bumped whenever conn changes or the stream closes
        ulong readCount;    // data bytes read and handed to the caller
        ulong writeCount;   // data bytes accepted by Write (all in ring)
        ulong sent;         // stream offset up to which conn has been given bytes
        Stream hs;          // connection of the resume handshake in progress
        ulong hsSeq;        // numbers resume attempts; the latest wins
        int workers;        // reconnect and replay threads running
        int resumes;

        SnetStream(SnetConfig cfg, Func<Stream> dialer, ulong id, byte[] key, Rc4 read, Rc4 write, Stream conn)
        {
            this.cfg = cfg;
            this.dialer = dialer;
            this.id = id;
            this.key = key;
            readCipher = read;
            writeCipher = write;
            ring = new Ring(cfg.RewriterBufferSize);
            this.conn = conn;
            Fit(conn);
        }

        /// <summary>Connects over TCP to host:port (TcpDialer) and opens a new session.
        /// It blocks for the connect and the handshake: from Unity's main thread use
        /// ConnectAsync.</summary>
        public static SnetStream Connect(string host, int port, SnetConfig config = null)
        {
            var cfg = (config ?? new SnetConfig()).WithDefaults();
            return Connect(TcpDialer(host, port, cfg, cfg.HandshakeTimeout), cfg);
        }

        /// <summary>Connect on a thread-pool thread.</summary>
        public static Task<SnetStream> ConnectAsync(string host, int port, SnetConfig config = null)
        {
            return Task.Run(() => Connect(host, port, config));
        }

        /// <summary>Opens a new session over the stream dialer returns; the same dialer
        /// opens the connections it reconnects on (for TLS under snet, a dialer returning
        /// an authenticated SslStream). It should bound its own connect time.</summary>
        public static SnetStream Connect(Func<Stream> dialer, SnetConfig config = null)
        {
            if (dialer == null)
            {
                throw new ArgumentNullException("dialer");
            }
            var cfg = (config ?? new SnetConfig()).WithDefaults();
            var raw = dialer();
            try
            {
                SnetStream s = null;
                WithDeadline(raw, cfg.HandshakeTimeout, () => s = NewSession(cfg, dialer, raw));
                return s;
            }
            catch
            {
                raw.Dispose();
                throw;
            }
        }

        /// <summary>A dialer that connects to host:port over TCP within timeout, its socket
        /// buffers set to config.SocketBuffer before it connects, Nagle off.</summary>
        public static Func<Stream> TcpDialer(string host, int port, SnetConfig config, TimeSpan timeout)
        {
            var size = (config ?? new SnetConfig()).SocketBuffer;
            return () =>
            {
                IPAddress addr;
                if (!IPAddress.TryParse(host, out addr))
                {
                    var all = Dns.GetHostAddresses(host);
                    if (all.Length == 0)
                    {
                        throw new SnetException(SnetError.Handshake, "no address for " + host);
                    }
                    addr = all[0];
                }
                var sock = new Socket(addr.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    sock.SendBufferSize = size;
                    sock.ReceiveBufferSize = size;
                    sock.NoDelay = true;
                    var ar = sock.BeginConnect(addr, port, null, null);
                    if (!ar.AsyncWaitHandle.WaitOne(timeout))
                    {
                        throw new SnetException(SnetError.Handshake, "connect to " + host + ":" + port + " timed out");
                    }
                    sock.EndConnect(ar);
                    return new SocketStream(sock);
                }
                catch
                {
                    sock.Close();
                    throw;
                }
            };
        }

        // NewSession runs the new-connection handshake (§3) on raw.
        static SnetStream NewSession(SnetConfig cfg, Func<Stream> dialer, Stream raw)
        {
            ulong priv = cfg.PrivateKeySource != null ? cfg.PrivateKeySource() : Dh64.PrivateKey();
            raw.Write(Handshake.NewRequest(Dh64.PublicKey(priv)), 0, Handshake.NewRequestSize);
            var reply = ReadFull(raw, Handshake.NewReplySize);
            ulong serverPub = Wire.GetU64(reply, 0);
            if (!Dh64.ValidPublic(serverPub))
            {
                throw new SnetException(SnetError.Handshake, "gateway sent a zero public key");
            }
            var key = Handshake.SessionKey(Dh64.Secret(priv, serverPub));
            var read = new Rc4(key);
            var write = new Rc4(key);
            ulong pub, id, challenge;
            Handshake.ParseNewReply(reply, read, out pub, out id, out challenge);
            raw.Write(Handshake.ChallengeDigest(challenge, key), 0, Handshake.DigestSize);
            raw.Flush();
            return new SnetStream(cfg, dialer, id, key, read, write, raw);
        }

        /// <summary>The snet connection ID the gateway assigned.</summary>
        public ulong ID { get { return id; } }

        /// <summary>Whether a TCP connection carries the stream now.</summary>
        public bool IsConnected { get { lock (mu) { return state == State.Connected; } } }

        /// <summary>Why the stream closed; null while it is open (connected or resuming).</summary>
        public Exception Error { get { lock (mu) { return err; } } }

        /// <summary>How many reconnects have succeeded.</summary>
        public int Resumes { get { lock (mu) { return resumes; } } }

        /// <summary>Data bytes read and written so far, across reconnects.</summary>
        public ulong BytesRead { get { lock (mu) { return readCount; } } }

        /// <summary>Data bytes accepted by Write so far.</summary>
        public ulong BytesWritten { get { lock (mu) { return writeCount; } } }

        /// <summary>Drops the current TCP connection at once, as if it had broken (for a
        /// ping that went unanswered: EndPointConfig.TimeoutCallback), and reconnects. It
        /// does nothing while not connected; it never blocks.</summary>
        public void TryReconnect()
        {
            ulong g;
            lock (mu)
            {
                if (state != State.Connected)
                {
                    return;
                }
                g = gen;
            }
            Broken(g);
        }

        /// <summary>Reads data, decrypted when EnableCrypt is set. It blocks while a
        /// reconnect is in progress; once the stream is closed it throws SnetException.</summary>
        public override int Read(byte[] buffer, int offset, int count)
        {
            CheckRange(buffer, offset, count);
            lock (readLock)
            {
                while (true)
                {
                    Stream c;
                    ulong g;
                    lock (mu)
                    {
                        while (state == State.Broken)
                        {
                            Monitor.Wait(mu);
                        }
                        if (state == State.Closed)
                        {
                            throw ClosedError();
                        }
                        c = conn;
                        g = gen;
                    }
                    if (count == 0)
                    {
                        return 0;
                    }
                    int n;
                    try
                    {
                        n = c.Read(buffer, offset, count);
                    }
                    catch (Exception)
                    {
                        n = 0;
                    }
                    if (n > 0)
                    {
                        bool current;
                        lock (mu)
                        {
                            current = gen == g;
                            if (current)
                            {
                                readCount += (ulong)n;
                            }
                        }
                        if (current)
                        {
                            if (cfg.EnableCrypt)
                            {
                                readCipher.Xor(buffer, offset, n);
                            }
                            return n;
                        }
                        continue; // read from a connection being replaced: the peer replays it
                    }
                    Broken(g); // the end of the connection, or its failure
                }
            }
        }

        /// <summary>Writes data, encrypted when EnableCrypt is set. Each piece is kept in
        /// the rewrite buffer and counted before it is sent, so whatever Write accepted is
        /// replayed after a reconnect. It blocks while a reconnect is in progress.</summary>
        public override void Write(byte[] buffer, int offset, int count)
        {
            CheckRange(buffer, offset, count);
            WriteCore(buffer, offset, count, false);
        }

        void WriteCore(byte[] p, int off, int count, bool replay)
        {
            lock (writeLock)
            {
                while (true)
                {
                    Stream c;
                    ulong g;
                    ArraySegment<byte> first, second;
                    lock (mu)
                    {
                        while (state == State.Broken)
                        {
                            if (replay)
                            {
                                return; // the next install replays
                            }
                            Monitor.Wait(mu);
                        }
                        if (state == State.Closed)
                        {
                            if (replay)
                            {
                                return;
                            }
                            throw ClosedError();
                        }
                        if (sent == writeCount)
                        {
                            if (count == 0)
                            {
                                return;
                            }
                            int n = Math.Min(count, Math.Min(Math.Max(ring.Capacity / ChunkDivisor, 1), MaxChunk));
                            ring.Write(p, off, n, cfg.EnableCrypt ? writeCipher : null);
                            writeCount += (ulong)n;
                            off += n;
                            count -= n;
                        }
                        c = conn;
                        g = gen;
                        if (!ring.Since(sent, out first, out second))
                        {
                            // Cannot happen: the resume checked the gap.
                            var e = new SnetException(SnetError.GapTooLarge, "bytes to send are no longer buffered");
                            CloseLocked(e);
                            throw e;
                        }
                    }
                    try
                    {
                        Send(c, g, first);
                        Send(c, g, second);
                    }
                    catch (Exception)
                    {
                        Broken(g);
                    }
                }
            }
        }

        void Send(Stream c, ulong g, ArraySegment<byte> b)
        {
            if (b.Count == 0)
            {
                return;
            }
            c.Write(b.Array, b.Offset, b.Count);
            lock (mu)
            {
                if (gen == g)
                {
                    sent += (ulong)b.Count;
                }
            }
        }

        // Broken reports that the connection of generation g failed. The first report for
        // the current connection drops it and starts the reconnect.
        void Broken(ulong g)
        {
            lock (mu)
            {
                if (gen != g || state != State.Connected)
                {
                    return;
                }
                gen++;
                Dispose(conn);
                conn = null;
                state = State.Broken;
                Monitor.PulseAll(mu);
                StartWorkerLocked(Reconnect, "fastway snet reconnect");
            }
        }

        // Reconnect dials and resumes until it succeeds, is refused, or
        // ReconnWaitTimeout passes; on failure it closes the stream with the reason.
        void Reconnect()
        {
            long deadline = clock.ElapsedMilliseconds + (long)cfg.ReconnWaitTimeout.TotalMilliseconds;
            int backoff = MinBackoffMs;
            Exception last = null;
            while (true)
            {
                long left = deadline - clock.ElapsedMilliseconds;
                if (left <= 0)
                {
                    Shutdown(new SnetException(SnetError.ReconnectTimeout, "no reconnect within " + cfg.ReconnWaitTimeout +
                        (last != null ? " (last attempt: " + last.Message + ")" : ""), last));
                    return;
                }
                Stream raw = null;
                try
                {
                    raw = dialer();
                }
                catch (Exception e)
                {
                    last = e;
                }
                if (raw != null)
                {
                    try
                    {
                        Resume(raw, TimeSpan.FromMilliseconds(Math.Min(left, (long)cfg.HandshakeTimeout.TotalMilliseconds)));
                        return;
                    }
                    catch (SnetException e)
                    {
                        if (e.Error != SnetError.Handshake)
                        {
                            Shutdown(e);
                            return;
                        }
                        last = e;
                    }
                    catch (Exception e)
                    {
                        last = e;
                    }
                }
                lock (mu)
                {
                    if (state != State.Broken)
                    {
                        return;
                    }
                    Monitor.Wait(mu, (int)Math.Max(1, Math.Min(backoff, deadline - clock.ElapsedMilliseconds)));
                    if (state != State.Broken)
                    {
                        return;
                    }
                }
                backoff = Math.Min(2 * backoff, MaxBackoffMs);
            }
        }

        // Resume runs the reconnect handshake (§3) on raw and installs it. It owns raw.
        void Resume(Stream raw, TimeSpan limit)
        {
            ulong seq, wc, rc, kept;
            lock (mu)
            {
                if (state != State.Broken)
                {
                    Dispose(raw);
                    if (state == State.Closed)
                    {
                        throw ClosedError();
                    }
                    return; // another attempt took over
                }
                hsSeq++;
                seq = hsSeq;
                hs = raw;
                wc = writeCount;
                rc = readCount;
                kept = ring.Kept;
            }
            try
            {
                ulong peerRead = 0;
                WithDeadline(raw, limit, () =>
                {
                    raw.Write(Handshake.ReconnectRequest(id, wc, rc, key), 0, Handshake.ReconnectRequestSize);
                    var reply = ReadFull(raw, Handshake.ReconnectReplySize);
                    ulong sw, sr, challenge;
                    if (!Handshake.ParseReconnectReply(reply, out sw, out sr, out challenge))
                    {
                        throw new SnetException(SnetError.Refused, "gateway refused the reconnect of session " + id);
                    }
                    if (sw < rc || sr > wc)
                    {
                        throw new SnetException(SnetError.BadCounts, "gateway wrote " + sw + " and read " + sr + ", we read " + rc + " and wrote " + wc);
                    }
                    if (wc - sr > kept)
                    {
                        throw new SnetException(SnetError.GapTooLarge, (wc - sr) + " bytes to replay, " + kept + " kept");
                    }
                    raw.Write(Handshake.ChallengeDigest(challenge, key), 0, Handshake.DigestSize);
                    raw.Flush();
                    peerRead = sr;
                });
                Install(raw, seq, peerRead);
            }
            catch
            {
                lock (mu)
                {
                    if (hsSeq == seq)
                    {
                        hs = null;
                    }
                }
                Dispose(raw);
                throw;
            }
        }

        // Install makes raw, whose resume handshake seq just succeeded, carry the stream;
        // the bytes from peerRead on are sent again first.
        void Install(Stream raw, ulong seq, ulong peerRead)
        {
            lock (mu)
            {
                if (state == State.Closed)
                {
                    throw ClosedError();
                }
                if (state != State.Broken || hsSeq != seq)
                {
                    throw new SnetException(SnetError.Handshake, "resume superseded");
                }
                hs = null;
                Fit(raw);
                conn = raw;
                gen++;
                state = State.Connected;
                sent = peerRead;
                resumes++;
                Monitor.PulseAll(mu);
                if (sent < writeCount)
                {
                    StartWorkerLocked(() => WriteCore(null, 0, 0, true), "fastway snet replay");
                }
            }
        }

        // Fit raises the rewrite buffer to twice what the socket's buffers hold, if more
        // than asked for (the kernel's floor), as the Go client does.
        void Fit(Stream s)
        {
            var ss = s as SocketStream;
            if (ss != null)
            {
                ring.Raise(Math.Min(2 * ss.Holds, 1 << 30));
            }
        }

        void StartWorkerLocked(Action work, string name)
        {
            workers++;
            var t = new Thread(() =>
            {
                workerOf = this;
                try
                {
                    work();
                }
                catch (Exception)
                {
                    // A worker's failure closes the stream through Shutdown or is retried.
                }
                finally
                {
                    lock (mu)
                    {
                        workers--;
                        Monitor.PulseAll(mu);
                    }
                }
            });
            t.IsBackground = true;
            t.Name = name;
            t.Start();
        }

        void Shutdown(Exception e)
        {
            lock (mu)
            {
                CloseLocked(e);
            }
        }

        void CloseLocked(Exception e)
        {
            if (state == State.Closed)
            {
                return;
            }
            state = State.Closed;
            err = e;
            gen++;
            Dispose(conn);
            conn = null;
            Dispose(hs);
            hs = null;
            Monitor.PulseAll(mu);
        }

        Exception ClosedError()
        {
            return new SnetException(err is SnetException ? ((SnetException)err).Error : SnetError.Closed,
                "session " + id + " closed: " + (err != null ? err.Message : "closed"), err);
        }

        /// <summary>Closes the session and its connection, and waits briefly for its
        /// threads. The gateway is not told: to it this looks like a break, and the
        /// session lingers there until -ClientSnetWaitTimeout.</summary>
        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                lock (mu)
                {
                    CloseLocked(new SnetException(SnetError.Closed, "closed"));
                    long deadline = clock.ElapsedMilliseconds + JoinTimeoutMs;
                    while (workers > 0 && clock.ElapsedMilliseconds < deadline && !IsWorker())
                    {
                        Monitor.Wait(mu, 100);
                    }
                }
            }
            base.Dispose(disposing);
        }

        static bool IsWorker()
        {
            return workerOf != null;
        }

        [ThreadStatic] static SnetStream workerOf; // set on this stream's worker threads

        static void Dispose(Stream s)
        {
            if (s == null)
            {
                return;
            }
            try
            {
                s.Dispose();
            }
            catch (Exception)
            {
                // Closing a broken connection may fail; it is closed either way.
            }
        }

        // WithDeadline runs body, disposing raw if it takes longer than limit (the
        // blocked read or write then fails) and reporting that as a handshake timeout.
        static void WithDeadline(Stream raw, TimeSpan limit, Action body)
        {
            var gate = new object();
            bool done = false, fired = false;
            using (new Timer(_ =>
            {
                lock (gate)
                {
                    if (done)
                    {
                        return;
                    }
                    fired = true;
                }
                Dispose(raw);
            }, null, limit, Timeout.InfiniteTimeSpan))
            {
                Exception failure = null;
                try
                {
                    body();
                }
                catch (Exception e)
                {
                    failure = e;
                }
                lock (gate)
                {
                    done = true;
                }
                if (fired)
                {
                    throw new SnetException(SnetError.Handshake, "handshake timed out after " + limit, failure);
                }
                if (failure is SnetException)
                {
                    throw failure;
                }
                if (failure != null)
                {
                    throw new SnetException(SnetError.Handshake, "handshake: " + failure.Message, failure);
                }
            }
        }

        static byte[] ReadFull(Stream s, int n)
        {
            var b = new byte[n];
            int got = 0;
            while (got < n)
            {
                int m = s.Read(b, got, n - got);
                if (m <= 0)
                {
                    throw new EndOfStreamException("fastway: snet: connection closed during the handshake");
                }
                got += m;
            }
            return b;
        }

        static void CheckRange(byte[] b, int offset, int count)
        {
            if (b == null)
            {
                throw new ArgumentNullException("buffer");
            }
            if (offset < 0 || count < 0 || offset > b.Length - count)
            {
                throw new ArgumentOutOfRangeException("offset");
            }
        }

        /// <inheritdoc/>
        public override bool CanRead { get { return true; } }
        /// <inheritdoc/>
        public override bool CanWrite { get { return true; } }
        /// <inheritdoc/>
        public override bool CanSeek { get { return false; } }
        /// <inheritdoc/>
        public override long Length { get { throw new NotSupportedException(); } }
        /// <inheritdoc/>
        public override long Position
        {
            get { throw new NotSupportedException(); }
            set { throw new NotSupportedException(); }
        }
        /// <summary>Does nothing: Write hands every byte to the connection before it returns.</summary>
        public override void Flush() { }
        /// <inheritdoc/>
        public override long Seek(long offset, SeekOrigin origin) { throw new NotSupportedException(); }
        /// <inheritdoc/>
        public override void SetLength(long value) { throw new NotSupportedException(); }
    }

    /// <summary>A NetworkStream that owns its socket and tells how much its kernel buffers hold.</summary>
    internal sealed class SocketStream : NetworkStream
    {
        internal SocketStream(Socket s) : base(s, true) { }

        /// <summary>The socket's send plus receive buffer as the kernel reports them.</summary>
        internal int Holds
        {
            get
            {
                try
                {
                    return Socket.SendBufferSize + Socket.ReceiveBufferSize;
                }
                catch (Exception)
                {
                    return 0;
                }
            }
        }
    }
}
