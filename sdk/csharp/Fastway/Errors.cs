using System;
using System.IO;

namespace Fastway
{
    /// <summary>The base of every error the SDK reports. Messages start with "fastway:".</summary>
    public class FastwayException : IOException
    {
        /// <summary>Creates an error with a message.</summary>
        public FastwayException(string message) : base(message) { }

        /// <summary>Creates an error with a message and its cause.</summary>
        public FastwayException(string message, Exception inner) : base(message, inner) { }
    }

    /// <summary>What a <see cref="ProtocolException"/> found wrong (PROTOCOL.md §1).</summary>
    public enum ProtocolError
    {
        /// <summary>A frame's Length is below 4 (the ConnID).</summary>
        ShortFrame,
        /// <summary>A frame's Length exceeds MaxPacket.</summary>
        FrameTooLarge,
        /// <summary>A buffer handed to a decoder is not one whole frame.</summary>
        BadLength,
        /// <summary>A command whose size does not match its type.</summary>
        BadCommand,
        /// <summary>A command with an unknown type byte.</summary>
        UnknownCommand,
        /// <summary>A well-formed command out of place (an Accept without a Dial, a Connect for a live ConnID...).</summary>
        Unexpected,
    }

    /// <summary>The gateway broke the protocol; the endpoint closes.</summary>
    public sealed class ProtocolException : FastwayException
    {
        /// <summary>What was wrong.</summary>
        public ProtocolError Error { get; private set; }

        /// <summary>Creates a protocol error of the given kind.</summary>
        public ProtocolException(ProtocolError error, string message)
            : base("fastway: protocol violation by gateway: " + message)
        {
            Error = error;
        }
    }

    /// <summary>The gateway answered a Dial with Refuse: no such server, the limit of
    /// virtual connections (ClientMaxConn) was reached, or the server is closing.</summary>
    public sealed class RefusedException : FastwayException
    {
        /// <summary>The ID that was dialed.</summary>
        public uint RemoteID { get; private set; }

        /// <summary>Creates the error for a refused dial to remoteID.</summary>
        public RefusedException(uint remoteID) : base("fastway: dial refused: remote " + remoteID)
        {
            RemoteID = remoteID;
        }
    }

    /// <summary>The endpoint or the virtual connection is closed.</summary>
    public sealed class ClosedException : FastwayException
    {
        /// <summary>Creates the error with a message.</summary>
        public ClosedException(string message) : base(message) { }

        /// <summary>Creates the error with a message and its cause.</summary>
        public ClosedException(string message, Exception inner) : base(message, inner) { }
    }

    /// <summary>Nothing arrived within PingTimeout of a Ping, and TimeoutCallback did not
    /// keep the endpoint open.</summary>
    public sealed class PingTimeoutException : FastwayException
    {
        /// <summary>Creates the error.</summary>
        public PingTimeoutException() : base("fastway: keep-alive timed out") { }
    }

    /// <summary>A virtual connection's receive queue overflowed (EndPointConfig.RecvQueueSize),
    /// and it was closed on both sides rather than stall its siblings.</summary>
    public sealed class ReceiveOverflowException : FastwayException
    {
        /// <summary>Creates the error for ConnID id.</summary>
        public ReceiveOverflowException(uint id) : base("fastway: receive queue overflow on conn " + id) { }
    }

    /// <summary>A Send found the endpoint's send queue at EndPointConfig.SendQueueBytes.
    /// SendAsync waits for room instead.</summary>
    public sealed class SendQueueFullException : FastwayException
    {
        /// <summary>Creates the error.</summary>
        public SendQueueFullException(int queued, int limit)
            : base("fastway: send queue full: " + queued + " bytes queued, limit " + limit) { }
    }

    /// <summary>A message does not fit in MaxPacket.</summary>
    public sealed class MessageTooLargeException : FastwayException
    {
        /// <summary>Creates the error.</summary>
        public MessageTooLargeException(int size, int maxPacket)
            : base("fastway: message of " + size + " bytes exceeds MaxPacket " + maxPacket) { }
    }
}
