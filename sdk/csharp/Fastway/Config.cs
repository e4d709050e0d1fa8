using System;

namespace Fastway
{
    /// <summary>Turns messages into the bytes of a data frame and back
    /// (Conn.SendMessage, Conn.TryReceiveMessage, Conn.ReceiveMessageAsync). Both methods
    /// may be called from several threads at once.</summary>
    public interface IMessageCodec
    {
        /// <summary>Returns the bytes of message; the endpoint copies them before Send returns.</summary>
        byte[] Encode(object message);

        /// <summary>Returns the message in payload, a new array the codec may keep.</summary>
        object Decode(byte[] payload);
    }

    /// <summary>Configures an EndPoint. Every field left at zero (or null) takes the
    /// default named in its comment, as the Go endpoint's EndPointCfg does.</summary>
    public sealed class EndPointConfig
    {
        /// <summary>How long an endpoint may send nothing before it sends a Ping (10 s):
        /// well below the gateway's -ClientIdleTimeout (30 s).</summary>
        public static readonly TimeSpan DefaultPingInterval = TimeSpan.FromSeconds(10);
        /// <summary>How long an endpoint waits for any frame after a Ping (20 s).</summary>
        public static readonly TimeSpan DefaultPingTimeout = TimeSpan.FromSeconds(20);
        /// <summary>The read buffer (8 KiB).</summary>
        public const int DefaultBufferSize = 8 << 10;
        /// <summary>The bound on queued outgoing bytes (4 MiB).</summary>
        public const int DefaultSendQueueBytes = 4 << 20;
        /// <summary>Each virtual connection's receive queue (1024 messages).</summary>
        public const int DefaultRecvQueueSize = 1024;
        /// <summary>Virtual connections opened to us and not accepted yet; a Connect past it
        /// is answered with Close.</summary>
        public const int AcceptBacklog = 1024;

        /// <summary>When the endpoint has sent nothing for this long it sends a Ping (the
        /// gateway answers each one). Zero: DefaultPingInterval; negative: no keep-alive at
        /// all (no Ping, no timeout).</summary>
        public TimeSpan PingInterval;

        /// <summary>When nothing at all arrives for this long after a Ping,
        /// TimeoutCallback runs. Zero: DefaultPingTimeout; negative: never time out (Pings
        /// are still sent).</summary>
        public TimeSpan PingTimeout;

        /// <summary>Runs when PingTimeout passed with nothing received, on a thread-pool
        /// thread (not Unity's main thread). Return true to keep the endpoint open (for
        /// instance after SnetStream.TryReconnect), false to close it with
        /// PingTimeoutException. null: close the endpoint.</summary>
        public Func<bool> TimeoutCallback;

        /// <summary>Bounds a frame's Length (ConnID plus message) in bytes, sent and
        /// received; it should match the gateway's -MaxPacket. Zero: Wire.DefaultMaxPacket
        /// (512 KiB).</summary>
        public int MaxPacket;

        /// <summary>The read buffer in bytes; many small frames arrive in one read. Zero:
        /// DefaultBufferSize (8 KiB).</summary>
        public int BufferSize;

        /// <summary>Bytes of frames queued for the writer and not yet handed to the stream.
        /// A Send that finds them at this bound throws SendQueueFullException, SendAsync
        /// waits for room. A single frame always fits in an empty queue. Zero:
        /// DefaultSendQueueBytes (4 MiB).</summary>
        public int SendQueueBytes;

        /// <summary>How many received messages each virtual connection queues. The reader
        /// never waits for a slow receiver: a message that does not fit closes that virtual
        /// connection on both sides (its Error is then ReceiveOverflowException), and its
        /// siblings carry on. Zero: DefaultRecvQueueSize (1024).</summary>
        public int RecvQueueSize;

        /// <summary>Encodes what SendMessage takes and decodes what ReceiveMessage returns.
        /// null: only the byte[] calls work.</summary>
        public IMessageCodec Codec;

        /// <summary>Returns a copy with every zero field set to its default; throws
        /// ArgumentException for a value no default can fix.</summary>
        internal EndPointConfig WithDefaults()
        {
            var c = (EndPointConfig)MemberwiseClone();
            if (c.PingInterval == TimeSpan.Zero)
            {
                c.PingInterval = DefaultPingInterval;
            }
            if (c.PingTimeout == TimeSpan.Zero)
            {
                c.PingTimeout = DefaultPingTimeout;
            }
            if (c.MaxPacket == 0)
            {
                c.MaxPacket = Wire.DefaultMaxPacket;
            }
            if (c.BufferSize == 0)
            {
                c.BufferSize = DefaultBufferSize;
            }
            if (c.SendQueueBytes == 0)
            {
                c.SendQueueBytes = DefaultSendQueueBytes;
            }
            if (c.RecvQueueSize == 0)
            {
                c.RecvQueueSize = DefaultRecvQueueSize;
            }
            if (c.MaxPacket < Wire.MaxCmdSize - Wire.SizeOfLength)
            {
                throw new ArgumentException("fastway: MaxPacket " + c.MaxPacket + " < " + (Wire.MaxCmdSize - Wire.SizeOfLength));
            }
            if (c.BufferSize < 0 || c.SendQueueBytes < 0 || c.RecvQueueSize < 0)
            {
                throw new ArgumentException("fastway: negative BufferSize, SendQueueBytes or RecvQueueSize");
            }
            return c;
        }
    }
}
