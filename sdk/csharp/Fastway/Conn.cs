using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Fastway
{
    /// <summary>Where a virtual connection stands.</summary>
    public enum ConnState
    {
        /// <summary>Dial sent, no reply yet. Sends are kept and go out once it opens.</summary>
        Dialing,
        /// <summary>Open: the gateway assigned its ID.</summary>
        Open,
        /// <summary>Closed for good: by either side, refused, or with its endpoint.
        /// Error says why when it was not a plain close.</summary>
        Closed,
    }

    /// <summary>One virtual connection of an EndPoint, from Dial or Accept. Every member
    /// is thread-safe, and none blocks: the polling calls (Send, Receive, TryReceive)
    /// suit Unity's Update loop, the Task-based ones (DialAsync, SendAsync,
    /// ReceiveAsync) .NET programs.</summary>
    public sealed class Conn
    {
        /// <summary>What Receive returns when no message is waiting (compare with ==: an
        /// empty message received is another array).</summary>
        public static readonly byte[] NoMsg = new byte[0];

        readonly EndPoint ep;
        readonly object mu;
        readonly uint remoteID;
        uint id;
        ConnState state;
        Exception error;
        readonly Queue<byte[]> queue = new Queue<byte[]>();
        List<TaskCompletionSource<byte[]>> receivers; // ReceiveAsync calls waiting, oldest first
        List<TaskCompletionSource<Conn>> openWaiters;   // DialAsync calls waiting
        List<byte[]> early;                             // sent while dialing
        int earlyBytes;

        /// <summary>Set when the caller closed a Conn still dialing: its Accept is answered
        /// with Close.</summary>
        internal bool Abandoned;

        internal Conn(EndPoint ep, uint id, uint remoteID, ConnState state)
        {
            this.ep = ep;
            mu = ep.Lock;
            this.id = id;
            this.remoteID = remoteID;
            this.state = state;
        }

        /// <summary>The virtual connection's ID, assigned by the gateway (0 while dialing).</summary>
        public uint ID { get { lock (mu) { return id; } } }

        /// <summary>The peer's ID: the server dialed, or the server that dialed us.</summary>
        public uint RemoteID { get { return remoteID; } }

        /// <summary>The endpoint this virtual connection belongs to.</summary>
        public EndPoint EndPoint { get { return ep; } }

        /// <summary>Dialing, Open or Closed.</summary>
        public ConnState State { get { lock (mu) { return state; } } }

        /// <summary>Whether it is closed (messages received before may still be waiting).</summary>
        public bool IsClosed { get { lock (mu) { return state == ConnState.Closed; } } }

        /// <summary>Why it closed, when that was not a plain Close by either side:
        /// RefusedException, ReceiveOverflowException, or the endpoint's error.</summary>
        public Exception Error { get { lock (mu) { return error; } } }

        /// <summary>How many received messages wait to be read.</summary>
        public int Pending { get { lock (mu) { return queue.Count; } } }

        /// <summary>Queues msg as one data frame and returns true; false when the virtual
        /// connection or its endpoint is closed. It never blocks, and does not keep msg.
        /// While dialing the message is kept and sent once the dial is accepted. It throws
        /// MessageTooLargeException past MaxPacket and SendQueueFullException when the send
        /// queue is at its bound (use SendAsync to wait for room).</summary>
        public bool Send(byte[] msg)
        {
            if (msg == null)
            {
                throw new ArgumentNullException("msg");
            }
            return Send(msg, 0, msg.Length);
        }

        /// <summary>Send for msg[offset..offset+count).</summary>
        public bool Send(byte[] msg, int offset, int count)
        {
            CheckRange(msg, offset, count);
            lock (mu)
            {
                return TrySendLocked(msg, offset, count, true);
            }
        }

        /// <summary>Send that waits for room in the send queue instead of throwing. It
        /// returns false when the connection closes first, and throws
        /// OperationCanceledException when ct is cancelled first.</summary>
        public async Task<bool> SendAsync(byte[] msg, CancellationToken ct = default(CancellationToken))
        {
            if (msg == null)
            {
                throw new ArgumentNullException("msg");
            }
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                Task room;
                lock (mu)
                {
                    if (TrySendLocked(msg, 0, msg.Length, false))
                    {
                        return true;
                    }
                    if (state == ConnState.Closed)
                    {
                        return false;
                    }
                    room = ep.RoomLocked();
                }
                await Tasks.WaitAsync(room, ct).ConfigureAwait(false);
            }
        }

        /// <summary>Encodes message with the endpoint's Codec and sends it (see Send).</summary>
        public bool SendMessage(object message)
        {
            return Send(Codec().Encode(message));
        }

        // TrySendLocked queues the frame; false when closed or (unless throwFull) full.
        bool TrySendLocked(byte[] msg, int offset, int count, bool throwFull)
        {
            if (state == ConnState.Closed)
            {
                return false;
            }
            if (Wire.SizeOfConnID + count > ep.Config.MaxPacket)
            {
                throw new MessageTooLargeException(count, ep.Config.MaxPacket);
            }
            if (state == ConnState.Dialing)
            {
                if (earlyBytes > 0 && earlyBytes + count > ep.Config.SendQueueBytes)
                {
                    if (throwFull)
                    {
                        throw new SendQueueFullException(earlyBytes, ep.Config.SendQueueBytes);
                    }
                    return false;
                }
                var copy = new byte[count];
                Buffer.BlockCopy(msg, offset, copy, 0, count);
                if (early == null)
                {
                    early = new List<byte[]>();
                }
                early.Add(copy);
                earlyBytes += count;
                return true;
            }
            return ep.EnqueueDataLocked(id, msg, offset, count, throwFull);
        }

        /// <summary>Returns the next message without waiting: a message (a new array the
        /// caller owns, possibly empty), NoMsg when none is waiting, or null once the
        /// connection is closed and every message received before has been returned.</summary>
        public byte[] Receive()
        {
            lock (mu)
            {
                if (queue.Count > 0)
                {
                    return queue.Dequeue();
                }
                return state == ConnState.Closed ? null : NoMsg;
            }
        }

        /// <summary>Takes the next message if one is waiting. When it returns false, check
        /// IsClosed to tell "none yet" from "no more".</summary>
        public bool TryReceive(out byte[] msg)
        {
            lock (mu)
            {
                if (queue.Count > 0)
                {
                    msg = queue.Dequeue();
                    return true;
                }
                msg = null;
                return false;
            }
        }

        /// <summary>TryReceive decoded with the endpoint's Codec. A message that fails to
        /// decode is dropped and the codec's exception thrown; the connection stays open.</summary>
        public bool TryReceiveMessage(out object message)
        {
            byte[] msg;
            if (!TryReceive(out msg))
            {
                message = null;
                return false;
            }
            message = Codec().Decode(msg);
            return true;
        }

        /// <summary>Waits for the next message: a message, or null once the connection is
        /// closed and drained. It throws OperationCanceledException when ct is cancelled
        /// first (no message is lost then).</summary>
        public Task<byte[]> ReceiveAsync(CancellationToken ct = default(CancellationToken))
        {
            TaskCompletionSource<byte[]> tcs;
            lock (mu)
            {
                if (queue.Count > 0)
                {
                    return Task.FromResult(queue.Dequeue());
                }
                if (state == ConnState.Closed)
                {
                    return Task.FromResult<byte[]>(null);
                }
                if (ct.IsCancellationRequested)
                {
                    return Tasks.Canceled<byte[]>(ct);
                }
                tcs = Tasks.NewSource<byte[]>();
                if (receivers == null)
                {
                    receivers = new List<TaskCompletionSource<byte[]>>();
                }
                receivers.Add(tcs);
            }
            if (ct.CanBeCanceled)
            {
                var reg = ct.Register(() =>
                {
                    lock (mu)
                    {
                        if (receivers != null && receivers.Remove(tcs))
                        {
                            tcs.TrySetCanceled(ct);
                        }
                    }
                });
                tcs.Task.ContinueWith(t => reg.Dispose(), TaskContinuationOptions.ExecuteSynchronously);
            }
            return tcs.Task;
        }

        /// <summary>ReceiveAsync decoded with the endpoint's Codec; null once closed and drained.</summary>
        public async Task<object> ReceiveMessageAsync(CancellationToken ct = default(CancellationToken))
        {
            var msg = await ReceiveAsync(ct).ConfigureAwait(false);
            return msg == null ? null : Codec().Decode(msg);
        }

        /// <summary>Closes the virtual connection: messages still queued are dropped,
        /// Receive returns null, Send false. Unless the gateway closed it already, Close is
        /// sent to the gateway after the frames already queued, so they are delivered
        /// first. A Conn still dialing is closed as soon as its Accept arrives. Idempotent.</summary>
        public void Close()
        {
            lock (mu)
            {
                switch (state)
                {
                    case ConnState.Open:
                        ep.ForgetLocked(this);
                        ep.EnqueueCommandLocked(new Command(Cmd.Close, id, 0));
                        break;
                    case ConnState.Dialing:
                        Abandoned = true;
                        break;
                }
                CloseLocked(null, false);
            }
        }

        /// <summary>Completes when the dial is accepted (with this Conn), or fails with its
        /// Error (RefusedException, ClosedException).</summary>
        internal Task<Conn> WhenOpenLocked()
        {
            switch (state)
            {
                case ConnState.Open:
                    return Task.FromResult(this);
                case ConnState.Closed:
                    return Tasks.Failed<Conn>(error ?? new ClosedException("fastway: closed while dialing"));
            }
            var tcs = Tasks.NewSource<Conn>();
            if (openWaiters == null)
            {
                openWaiters = new List<TaskCompletionSource<Conn>>();
            }
            openWaiters.Add(tcs);
            return tcs.Task;
        }

        // The endpoint's side, called with the lock held.

        internal uint IDLocked { get { return id; } }

        internal ConnState StateLocked { get { return state; } }

        /// <summary>Queues a message from the gateway; false when the queue is full.</summary>
        internal bool DeliverLocked(byte[] msg)
        {
            if (state == ConnState.Closed)
            {
                return true; // dropped: closed by the caller already
            }
            if (receivers != null && receivers.Count > 0)
            {
                var r = receivers[0];
                receivers.RemoveAt(0);
                r.TrySetResult(msg);
                return true;
            }
            if (queue.Count >= ep.Config.RecvQueueSize)
            {
                return false;
            }
            queue.Enqueue(msg);
            return true;
        }

        /// <summary>The dial was accepted as ConnID connID: queue what was sent meanwhile.</summary>
        internal void OpenLocked(uint connID)
        {
            id = connID;
            state = ConnState.Open;
            if (early != null)
            {
                foreach (var m in early)
                {
                    ep.EnqueueDataLocked(id, m, 0, m.Length, false, true);
                }
                early = null;
                earlyBytes = 0;
                ep.WakeRoomLocked();
            }
            if (openWaiters != null)
            {
                foreach (var w in openWaiters)
                {
                    w.TrySetResult(this);
                }
                openWaiters = null;
            }
        }

        /// <summary>Closes with err (null: a plain close); keepQueue keeps the messages
        /// received so far readable.</summary>
        internal void CloseLocked(Exception err, bool keepQueue)
        {
            if (state == ConnState.Closed)
            {
                if (!keepQueue)
                {
                    queue.Clear();
                }
                return;
            }
            state = ConnState.Closed;
            error = err;
            if (early != null)
            {
                early = null;
                earlyBytes = 0;
                ep.WakeRoomLocked();
            }
            if (!keepQueue)
            {
                queue.Clear();
            }
            if (receivers != null)
            {
                foreach (var r in receivers)
                {
                    r.TrySetResult(null);
                }
                receivers = null;
            }
            if (openWaiters != null)
            {
                var e = err ?? new ClosedException("fastway: closed while dialing");
                foreach (var w in openWaiters)
                {
                    w.TrySetException(e);
                }
                openWaiters = null;
            }
        }

        IMessageCodec Codec()
        {
            var c = ep.Config.Codec;
            if (c == null)
            {
                throw new InvalidOperationException("fastway: no Codec in the EndPointConfig");
            }
            return c;
        }

        static void CheckRange(byte[] b, int offset, int count)
        {
            if (b == null)
            {
                throw new ArgumentNullException("msg");
            }
            if (offset < 0 || count < 0 || offset > b.Length - count)
            {
                throw new ArgumentOutOfRangeException("offset");
            }
        }

        /// <inheritdoc/>
        public override string ToString()
        {
            lock (mu)
            {
                return "Conn(" + id + " to " + remoteID + ", " + state + ")";
            }
        }
    }
}
