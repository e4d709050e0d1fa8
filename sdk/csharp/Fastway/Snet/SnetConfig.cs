using System;

namespace Fastway.Snet
{
    /// <summary>Configures an SnetStream. Every field left at zero takes the default named
    /// in its comment, as the Go snet.Config does; the defaults match the gateway's
    /// (-ClientSnetBuffer 32 KiB, -ClientSnetInitTimeout 10 s, -ClientSnetWaitTimeout 60 s).</summary>
    public sealed class SnetConfig
    {
        /// <summary>Each handshake's bound (10 s).</summary>
        public static readonly TimeSpan DefaultHandshakeTimeout = TimeSpan.FromSeconds(10);
        /// <summary>How long a broken session keeps trying to reconnect (60 s).</summary>
        public static readonly TimeSpan DefaultReconnWaitTimeout = TimeSpan.FromSeconds(60);
        /// <summary>Bytes kept for replay (32 KiB).</summary>
        public const int DefaultRewriterBufferSize = 32 << 10;
        /// <summary>The least SocketBuffer (2 KiB).</summary>
        public const int MinSocketBuffer = 2 << 10;

        /// <summary>XOR every data byte with RC4 keyed by the session key. It must match
        /// the gateway's -ClientSnetEncrypt; nothing negotiates it. Obfuscation, not
        /// security: use TLS for that.</summary>
        public bool EnableCrypt;

        /// <summary>Bounds each handshake, new or reconnect. Zero: DefaultHandshakeTimeout.</summary>
        public TimeSpan HandshakeTimeout;

        /// <summary>How many of the most recently written bytes are kept to replay after a
        /// reconnect (allocated as they are written). It must exceed what can be in flight
        /// between the ends: the Write piece not yet sent (a sixteenth of it), this side's
        /// socket send buffer, the path, and the gateway's receive buffer; SocketBuffer
        /// keeps this side's share small. Zero: DefaultRewriterBufferSize (32 KiB).</summary>
        public int RewriterBufferSize;

        /// <summary>How long a broken session keeps trying to reconnect before it closes.
        /// Zero: DefaultReconnWaitTimeout.</summary>
        public TimeSpan ReconnWaitTimeout;

        /// <summary>Replaces the random private key (tests and vectors only).</summary>
        internal Func<ulong> PrivateKeySource;

        /// <summary>What TcpDialer sets the socket's send and receive buffers to before it
        /// connects: a sixteenth of RewriterBufferSize, MinSocketBuffer at the least, as
        /// the Go client and the gateway do (PROTOCOL.md §3; snet's package doc, Limits).</summary>
        public int SocketBuffer
        {
            get { return Math.Max(WithDefaults().RewriterBufferSize / 16, MinSocketBuffer); }
        }

        internal SnetConfig WithDefaults()
        {
            var c = (SnetConfig)MemberwiseClone();
            if (c.HandshakeTimeout == TimeSpan.Zero)
            {
                c.HandshakeTimeout = DefaultHandshakeTimeout;
            }
            if (c.ReconnWaitTimeout == TimeSpan.Zero)
            {
                c.ReconnWaitTimeout = DefaultReconnWaitTimeout;
            }
            if (c.RewriterBufferSize == 0)
            {
                c.RewriterBufferSize = DefaultRewriterBufferSize;
            }
            if (c.HandshakeTimeout < TimeSpan.Zero || c.ReconnWaitTimeout < TimeSpan.Zero || c.RewriterBufferSize < 0)
            {
                throw new ArgumentException("fastway: snet: negative HandshakeTimeout, ReconnWaitTimeout or RewriterBufferSize");
            }
            return c;
        }
    }

    /// <summary>What went wrong in an SnetStream.</summary>
    public enum SnetError
    {
        /// <summary>A handshake failed: bad bytes, the connection dropped, or it timed out.</summary>
        Handshake,
        /// <summary>The gateway refused the reconnect (unknown session, expired, bad digest).</summary>
        Refused,
        /// <summary>The counts in the gateway's reconnect reply are impossible.</summary>
        BadCounts,
        /// <summary>The bytes to replay are no longer in the rewrite buffer.</summary>
        GapTooLarge,
        /// <summary>No reconnect succeeded within ReconnWaitTimeout.</summary>
        ReconnectTimeout,
        /// <summary>The stream was closed by its owner.</summary>
        Closed,
    }

    /// <summary>An snet failure; the session is closed unless it is a Handshake error
    /// during a reconnect attempt (then it is retried).</summary>
    public sealed class SnetException : FastwayException
    {
        /// <summary>What went wrong.</summary>
        public SnetError Error { get; private set; }

        /// <summary>Creates the error.</summary>
        public SnetException(SnetError error, string message, Exception inner = null)
            : base("fastway: snet: " + message, inner)
        {
            Error = error;
        }
    }
}
