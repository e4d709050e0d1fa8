using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace Fastway
{
    /// <summary>A game client's physical connection to a gateway's client port
    /// (PROTOCOL.md §1), over any Stream: a NetworkStream, an SslStream for TLS, or an
    /// SnetStream. It carries many virtual connections (Conn): Dial opens one to a
    /// server, Accept takes one a server opened to us.
    ///
    /// Threads: a reader, which reads frames and queues each message to its Conn; a
    /// writer, which writes whatever is queued in one Write; and a keep-alive thread
    /// (none when PingInterval is negative), which needs no thread-pool thread, so a busy
    /// pool cannot delay a Ping. No
    /// public member blocks on the network, so every one may be called from Unity's main
    /// thread; all are thread-safe.</summary>
    public sealed class EndPoint : IDisposable
    {
        const int InitialSendBuffer = 16 << 10;
        const int JoinTimeoutMs = 5000;

        internal readonly object Lock = new object();
        internal readonly EndPointConfig Config; // defaults filled in

        readonly Stream stream;
        readonly Thread reader, writer, keepalive;
        readonly object keepaliveGate = new object(); // the keep-alive thread sleeps on it
        readonly Stopwatch clock = Stopwatch.StartNew();

        // Guarded by Lock.
        readonly Dictionary<uint, Conn> conns = new Dictionary<uint, Conn>();
        readonly Queue<Conn> pending = new Queue<Conn>(); // Dials awaiting Accept or Refuse, oldest first
        readonly Queue<Conn> acceptq = new Queue<Conn>();
        List<TaskCompletionSource<Conn>> acceptors;       // AcceptAsync calls waiting
        TaskCompletionSource<bool> room;                  // SendAsync calls waiting for room
        byte[] sendBuf = new byte[InitialSendBuffer];     // frames queued for the writer
        int sendLen;
        byte[] spare = new byte[InitialSendBuffer];       // the writer's buffer between writes
        bool closed;
        Exception error;

        // Counters, read with Interlocked.
        long recvCount;   // frames read
        long pingsRecv;   // Pings read
        long lastSend;    // clock ms when the last write finished

        // Keep-alive state, used by the keep-alive thread only.
        bool pinging;
        long pingAt, pingMark;

        /// <summary>Starts an endpoint over stream, an already connected stream to the
        /// gateway's client port. The endpoint owns stream and disposes of it on Close.</summary>
        public EndPoint(Stream stream, EndPointConfig config = null)
        {
            if (stream == null)
            {
                throw new ArgumentNullException("stream");
            }
            this.stream = stream;
            Config = (config ?? new EndPointConfig()).WithDefaults();
            reader = new Thread(ReadLoop) { IsBackground = true, Name = "fastway reader" };
            writer = new Thread(WriteLoop) { IsBackground = true, Name = "fastway writer" };
            reader.Start();
            writer.Start();
            if (Config.PingInterval > TimeSpan.Zero)
            {
                keepalive = new Thread(KeepaliveLoop) { IsBackground = true, Name = "fastway keep-alive" };
                keepalive.Start();
            }
        }

        /// <summary>The original fastway C# client's constructor: Pings every
        /// pingIntervalMs (0 or less: none), and after pingTimeoutMs (0 or less: never)
        /// without an answer runs timeoutCallback and stays open (null: closes).</summary>
        public EndPoint(Stream stream, int pingIntervalMs, int pingTimeoutMs, Action timeoutCallback)
            : this(stream, new EndPointConfig
            {
                PingInterval = TimeSpan.FromMilliseconds(pingIntervalMs > 0 ? pingIntervalMs : -1),
                PingTimeout = TimeSpan.FromMilliseconds(pingTimeoutMs > 0 ? pingTimeoutMs : -1),
                TimeoutCallback = timeoutCallback == null ? (Func<bool>)null : () => { timeoutCallback(); return true; },
            })
        {
        }

        /// <summary>Whether the endpoint is closed; Error says why.</summary>
        public bool IsClosed { get { lock (Lock) { return closed; } } }

        /// <summary>Why the endpoint closed (ClosedException after Close, PingTimeoutException,
        /// ProtocolException, or a ClosedException wrapping the stream's error); null while open.</summary>
        public Exception Error { get { lock (Lock) { return error; } } }

        /// <summary>Pings received from the gateway (each answers one of ours).</summary>
        public long PingsReceived { get { return Interlocked.Read(ref pingsRecv); } }

        /// <summary>Frames received from the gateway.</summary>
        public long FramesReceived { get { return Interlocked.Read(ref recvCount); } }

        /// <summary>Bytes queued for the writer and not yet handed to the stream.</summary>
        public int SendQueueBytes { get { lock (Lock) { return sendLen; } } }

        /// <summary>Opens a virtual connection to remoteID (a server's ID) without waiting:
        /// the Conn is Dialing until the gateway answers, then Open, or Closed with a
        /// RefusedException as its Error. Messages sent meanwhile go out once it opens.
        /// Dials may be pipelined; the gateway answers them in order.</summary>
        public Conn Dial(uint remoteID)
        {
            lock (Lock)
            {
                var c = new Conn(this, 0, remoteID, ConnState.Dialing);
                if (closed)
                {
                    c.CloseLocked(error, false);
                    return c;
                }
                pending.Enqueue(c);
                EnqueueCommandLocked(new Command(Cmd.Dial, 0, remoteID));
                return c;
            }
        }

        /// <summary>Dials remoteID and waits for the answer: the open Conn, or
        /// RefusedException, or ClosedException if the endpoint closes first. When ct is
        /// cancelled first it throws OperationCanceledException, and the virtual
        /// connection, if the gateway opens it later, is closed.</summary>
        public async Task<Conn> DialAsync(uint remoteID, CancellationToken ct = default(CancellationToken))
        {
            var c = Dial(remoteID);
            Task<Conn> open;
            lock (Lock)
            {
                open = c.WhenOpenLocked();
            }
            try
            {
                return await Tasks.WaitAsync(open, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                c.Close();
                throw;
            }
        }

        /// <summary>Returns the next virtual connection a server opened to this client
        /// (Connect), or null when none is waiting or the endpoint is closed.</summary>
        public Conn Accept()
        {
            lock (Lock)
            {
                return acceptq.Count > 0 ? acceptq.Dequeue() : null;
            }
        }

        /// <summary>Waits for the next virtual connection a server opens to this client.
        /// It throws ClosedException when the endpoint closes first, and
        /// OperationCanceledException when ct is cancelled first.</summary>
        public Task<Conn> AcceptAsync(CancellationToken ct = default(CancellationToken))
        {
            TaskCompletionSource<Conn> tcs;
            lock (Lock)
            {
                if (acceptq.Count > 0)
                {
                    return Task.FromResult(acceptq.Dequeue());
                }
                if (closed)
                {
                    return Tasks.Failed<Conn>(new ClosedException("fastway: endpoint closed", error));
                }
                if (ct.IsCancellationRequested)
                {
                    return Tasks.Canceled<Conn>(ct);
                }
                tcs = Tasks.NewSource<Conn>();
                if (acceptors == null)
                {
                    acceptors = new List<TaskCompletionSource<Conn>>();
                }
                acceptors.Add(tcs);
            }
            if (ct.CanBeCanceled)
            {
                var reg = ct.Register(() =>
                {
                    lock (Lock)
                    {
                        if (acceptors != null && acceptors.Remove(tcs))
                        {
                            tcs.TrySetCanceled(ct);
                        }
                    }
                });
                tcs.Task.ContinueWith(t => reg.Dispose(), TaskContinuationOptions.ExecuteSynchronously);
            }
            return tcs.Task;
        }

        /// <summary>Closes the endpoint: the stream (frames still queued are not sent),
        /// every virtual connection (each keeps the messages it received: Receive returns
        /// them, then null), and the threads, which it waits for briefly. Idempotent.</summary>
        public void Close()
        {
            Shutdown(new ClosedException("fastway: endpoint closed"));
            var self = Thread.CurrentThread;
            if (self != reader && reader.IsAlive)
            {
                reader.Join(JoinTimeoutMs);
            }
            if (self != writer && writer.IsAlive)
            {
                writer.Join(JoinTimeoutMs);
            }
            if (keepalive != null && self != keepalive && keepalive.IsAlive)
            {
                keepalive.Join(JoinTimeoutMs);
            }
        }

        /// <summary>Close.</summary>
        public void Dispose()
        {
            Close();
        }

        // Shutdown closes the endpoint with err unless it is closed already. It does not
        // wait, so any thread may call it.
        void Shutdown(Exception err)
        {
            lock (Lock)
            {
                if (closed)
                {
                    return;
                }
                closed = true;
                error = err;
                foreach (var c in conns.Values)
                {
                    c.CloseLocked(err, true);
                }
                conns.Clear();
                foreach (var c in pending)
                {
                    c.CloseLocked(err, true);
                }
                pending.Clear();
                foreach (var c in acceptq)
                {
                    c.CloseLocked(err, false);
                }
                acceptq.Clear();
                if (acceptors != null)
                {
                    foreach (var a in acceptors)
                    {
                        a.TrySetException(new ClosedException("fastway: endpoint closed", err));
                    }
                    acceptors = null;
                }
                WakeRoomLocked();
                Monitor.PulseAll(Lock);
            }
            lock (keepaliveGate)
            {
                Monitor.PulseAll(keepaliveGate);
            }
            try
            {
                stream.Dispose();
            }
            catch (Exception)
            {
                // Closing a broken stream may fail; it is closed either way.
            }
        }

        // The reader thread.
        void ReadLoop()
        {
            Exception err;
            try
            {
                var fr = new FrameReader(stream, Config.BufferSize, Config.MaxPacket);
                uint id;
                byte[] msg;
                Command cmd;
                while (fr.Next(out id, out msg, out cmd))
                {
                    Interlocked.Increment(ref recvCount);
                    lock (Lock)
                    {
                        if (closed)
                        {
                            return;
                        }
                        if (id != 0)
                        {
                            DeliverLocked(id, msg);
                        }
                        else
                        {
                            HandleLocked(cmd);
                        }
                    }
                }
                err = new ClosedException("fastway: gateway closed the connection");
            }
            catch (ProtocolException e)
            {
                err = e;
            }
            catch (EndOfStreamException e)
            {
                err = new ClosedException("fastway: gateway closed the connection inside a frame", e);
            }
            catch (Exception e)
            {
                err = new ClosedException("fastway: reading from gateway: " + e.Message, e);
            }
            Shutdown(err);
        }

        // DeliverLocked queues a data frame's message to its Conn. Data for a ConnID that
        // is not live (late data after our Close) is dropped.
        void DeliverLocked(uint id, byte[] msg)
        {
            Conn c;
            if (!conns.TryGetValue(id, out c))
            {
                return;
            }
            if (!c.DeliverLocked(msg))
            {
                // Full: close it on both sides rather than wait for its receiver.
                conns.Remove(id);
                c.CloseLocked(new ReceiveOverflowException(id), true);
                EnqueueCommandLocked(new Command(Cmd.Close, id, 0));
            }
        }

        // HandleLocked acts on a command from the gateway; it throws ProtocolException.
        void HandleLocked(Command cmd)
        {
            Conn c;
            switch (cmd.Type)
            {
                case Cmd.Ping:
                    Interlocked.Increment(ref pingsRecv);
                    return;
                case Cmd.Close:
                    // The gateway closed it, or acknowledges our Close (then it is gone).
                    if (conns.TryGetValue(cmd.ConnID, out c))
                    {
                        conns.Remove(cmd.ConnID);
                        c.CloseLocked(null, true);
                    }
                    return;
                case Cmd.Accept:
                case Cmd.Refuse:
                    if (pending.Count == 0)
                    {
                        throw new ProtocolException(ProtocolError.Unexpected, cmd.Type + " without a pending Dial");
                    }
                    c = pending.Peek();
                    if (cmd.RemoteID != c.RemoteID)
                    {
                        throw new ProtocolException(ProtocolError.Unexpected, cmd.Type + " for remote " + cmd.RemoteID + ", oldest pending Dial is to " + c.RemoteID);
                    }
                    if (cmd.Type == Cmd.Accept && (cmd.ConnID == 0 || conns.ContainsKey(cmd.ConnID)))
                    {
                        throw new ProtocolException(ProtocolError.Unexpected, "Accept of ConnID " + cmd.ConnID + ", 0 or already live");
                    }
                    pending.Dequeue();
                    if (cmd.Type == Cmd.Refuse)
                    {
                        c.CloseLocked(new RefusedException(cmd.RemoteID), false);
                    }
                    else if (c.Abandoned)
                    {
                        EnqueueCommandLocked(new Command(Cmd.Close, cmd.ConnID, 0));
                    }
                    else
                    {
                        conns[cmd.ConnID] = c;
                        c.OpenLocked(cmd.ConnID);
                    }
                    return;
                case Cmd.Connect:
                    if (cmd.ConnID == 0 || conns.ContainsKey(cmd.ConnID))
                    {
                        throw new ProtocolException(ProtocolError.Unexpected, "Connect of ConnID " + cmd.ConnID + ", 0 or already live");
                    }
                    if (acceptq.Count >= EndPointConfig.AcceptBacklog)
                    {
                        EnqueueCommandLocked(new Command(Cmd.Close, cmd.ConnID, 0));
                        return;
                    }
                    c = new Conn(this, cmd.ConnID, cmd.RemoteID, ConnState.Open);
                    conns[cmd.ConnID] = c;
                    if (acceptors != null && acceptors.Count > 0)
                    {
                        var a = acceptors[0];
                        acceptors.RemoveAt(0);
                        a.TrySetResult(c);
                    }
                    else
                    {
                        acceptq.Enqueue(c);
                    }
                    return;
            }
            throw new ProtocolException(ProtocolError.Unexpected, "gateway sent " + cmd.Type);
        }

        /// <summary>Removes an open Conn the caller closes.</summary>
        internal void ForgetLocked(Conn c)
        {
            Conn live;
            if (conns.TryGetValue(c.IDLocked, out live) && live == c)
            {
                conns.Remove(c.IDLocked);
            }
        }

        /// <summary>Queues a command frame; commands never wait for room.</summary>
        internal void EnqueueCommandLocked(Command cmd)
        {
            if (closed)
            {
                return;
            }
            int n = Wire.CmdSize(cmd.Type);
            GrowLocked(n);
            Wire.PutCommand(sendBuf, sendLen, cmd);
            sendLen += n;
            Monitor.PulseAll(Lock);
        }

        /// <summary>Queues a data frame. When the queue is at its bound it throws
        /// SendQueueFullException (throwFull) or returns false; force skips the bound.</summary>
        internal bool EnqueueDataLocked(uint id, byte[] msg, int offset, int count, bool throwFull, bool force = false)
        {
            if (closed)
            {
                return false;
            }
            int n = Wire.HeaderSize + count;
            if (!force && sendLen > 0 && sendLen + n > Config.SendQueueBytes)
            {
                if (throwFull)
                {
                    throw new SendQueueFullException(sendLen, Config.SendQueueBytes);
                }
                return false;
            }
            GrowLocked(n);
            Wire.PutHeader(sendBuf, sendLen, n, id);
            Buffer.BlockCopy(msg, offset, sendBuf, sendLen + Wire.HeaderSize, count);
            sendLen += n;
            Monitor.PulseAll(Lock);
            return true;
        }

        void GrowLocked(int n)
        {
            if (sendBuf.Length - sendLen >= n)
            {
                return;
            }
            var b = new byte[Math.Max(2 * sendBuf.Length, sendLen + n)];
            Buffer.BlockCopy(sendBuf, 0, b, 0, sendLen);
            sendBuf = b;
        }

        /// <summary>A task that completes when there may be room in the send queue.</summary>
        internal Task RoomLocked()
        {
            if (closed)
            {
                return Task.FromResult(true);
            }
            if (room == null)
            {
                room = Tasks.NewSource<bool>();
            }
            return room.Task;
        }

        internal void WakeRoomLocked()
        {
            if (room != null)
            {
                room.TrySetResult(true);
                room = null;
            }
        }

        // The writer thread: writes what is queued, in one Write each time.
        void WriteLoop()
        {
            try
            {
                while (true)
                {
                    byte[] buf;
                    int n;
                    lock (Lock)
                    {
                        while (sendLen == 0 && !closed)
                        {
                            Monitor.Wait(Lock);
                        }
                        if (closed)
                        {
                            return;
                        }
                        buf = sendBuf;
                        n = sendLen;
                        sendBuf = spare;
                        sendLen = 0;
                        spare = null;
                        WakeRoomLocked();
                    }
                    stream.Write(buf, 0, n);
                    stream.Flush();
                    Interlocked.Exchange(ref lastSend, clock.ElapsedMilliseconds);
                    if (buf.Length > 16 * InitialSendBuffer && n < buf.Length / 4)
                    {
                        buf = new byte[InitialSendBuffer]; // give a burst's buffer back
                    }
                    lock (Lock)
                    {
                        spare = buf;
                    }
                }
            }
            catch (Exception e)
            {
                Shutdown(new ClosedException("fastway: writing to gateway: " + e.Message, e));
            }
        }

        // KeepaliveLoop sends a Ping when nothing was sent for PingInterval and runs
        // TimeoutCallback when nothing arrived for PingTimeout after a Ping, sleeping
        // until the next of those moments (as the Go endpoint's timer does).
        void KeepaliveLoop()
        {
            long due = clock.ElapsedMilliseconds + (long)Config.PingInterval.TotalMilliseconds;
            while (true)
            {
                lock (keepaliveGate)
                {
                    while (true)
                    {
                        if (IsClosed)
                        {
                            return;
                        }
                        long wait = due - clock.ElapsedMilliseconds;
                        if (wait <= 0)
                        {
                            break;
                        }
                        Monitor.Wait(keepaliveGate, (int)Math.Min(wait, int.MaxValue));
                    }
                }
                long next = KeepaliveStep();
                if (next < 0)
                {
                    return;
                }
                due = clock.ElapsedMilliseconds + Math.Max(next, 1);
            }
        }

        // KeepaliveStep does what is due and returns the milliseconds until the next
        // step, or -1 once the endpoint closed.
        long KeepaliveStep()
        {
            long interval = (long)Config.PingInterval.TotalMilliseconds;
            long timeout = (long)Config.PingTimeout.TotalMilliseconds;
            long now = clock.ElapsedMilliseconds;
            if (pinging && Interlocked.Read(ref recvCount) != pingMark)
            {
                pinging = false; // something arrived since the Ping
            }
            if (pinging && timeout > 0 && now - pingAt >= timeout)
            {
                var cb = Config.TimeoutCallback;
                bool keep = false;
                if (cb != null)
                {
                    try
                    {
                        keep = cb();
                    }
                    catch (Exception)
                    {
                        keep = false;
                    }
                }
                if (!keep)
                {
                    Shutdown(new PingTimeoutException());
                    return -1;
                }
                pinging = false;
                now = clock.ElapsedMilliseconds;
            }
            long next = interval - (now - Interlocked.Read(ref lastSend));
            if (next <= 0)
            {
                if (!pinging)
                {
                    pinging = true;
                    pingAt = now;
                    pingMark = Interlocked.Read(ref recvCount);
                }
                lock (Lock)
                {
                    EnqueueCommandLocked(new Command(Cmd.Ping, 0, 0));
                }
                next = interval;
            }
            if (pinging && timeout > 0)
            {
                next = Math.Min(next, pingAt + timeout - now);
            }
            return next;
        }
    }
}
