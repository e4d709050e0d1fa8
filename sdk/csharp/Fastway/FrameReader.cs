using System;
using System.IO;

namespace Fastway
{
    /// <summary>Reads frames from a stream through one buffer. A data frame's message is
    /// the only allocation per frame: small frames are copied out of the buffer, a large
    /// one is read straight into its message. Commands are decoded in place. One thread
    /// at a time.</summary>
    public sealed class FrameReader
    {
        /// <summary>The smallest buffer: room for the largest command.</summary>
        public const int MinBufferSize = 64;

        readonly Stream stream;
        readonly byte[] buf;
        readonly int maxPacket;
        int start, end; // buf[start..end) holds bytes read and not yet parsed

        /// <summary>Creates a reader of stream with a buffer of bufferSize bytes
        /// (MinBufferSize at the least) that rejects a Length above maxPacket
        /// (0: Wire.DefaultMaxPacket).</summary>
        public FrameReader(Stream stream, int bufferSize, int maxPacket)
        {
            if (stream == null)
            {
                throw new ArgumentNullException("stream");
            }
            this.stream = stream;
            buf = new byte[Math.Max(bufferSize, MinBufferSize)];
            this.maxPacket = maxPacket > 0 ? maxPacket : Wire.DefaultMaxPacket;
        }

        /// <summary>Reads the next frame. A data frame sets connID (not 0) and message
        /// (a new array the caller owns, possibly empty); a command sets connID to 0 and
        /// command. It returns false when the stream ends between two frames, throws
        /// EndOfStreamException when it ends inside one, and ProtocolException for a bad
        /// Length or a malformed command.</summary>
        public bool Next(out uint connID, out byte[] message, out Command command)
        {
            message = null;
            command = default(Command);
            connID = 0;
            if (!Fill(Wire.HeaderSize, true))
            {
                return false;
            }
            uint length = Wire.GetU32(buf, start);
            Wire.CheckLength(length, maxPacket);
            connID = Wire.GetU32(buf, start + Wire.SizeOfLength);
            int size = (int)length + Wire.SizeOfLength;
            if (connID == 0)
            {
                if (size > Wire.MaxCmdSize)
                {
                    // Too long for any command: rejected before it is read.
                    if (size > Wire.CmdHeaderSize)
                    {
                        Fill(Wire.CmdHeaderSize, false);
                        if (Wire.CmdSize((Cmd)buf[start + Wire.HeaderSize]) == 0)
                        {
                            throw new ProtocolException(ProtocolError.UnknownCommand, "command type " + buf[start + Wire.HeaderSize]);
                        }
                    }
                    throw new ProtocolException(ProtocolError.BadCommand, "command frame of " + size + " bytes");
                }
                Fill(size, false);
                command = Wire.DecodeCommand(buf, start, size);
                Consume(size);
                return true;
            }
            int n = size - Wire.HeaderSize;
            message = new byte[n];
            int have = Math.Min(end - start - Wire.HeaderSize, n);
            Buffer.BlockCopy(buf, start + Wire.HeaderSize, message, 0, have);
            Consume(Wire.HeaderSize + have);
            while (have < n)
            {
                if (n - have >= buf.Length)
                {
                    // A large remainder goes straight into the message.
                    int m = stream.Read(message, have, n - have);
                    if (m <= 0)
                    {
                        throw new EndOfStreamException("fastway: stream ended inside a frame");
                    }
                    have += m;
                    continue;
                }
                Fill(1, false);
                int k = Math.Min(end - start, n - have);
                Buffer.BlockCopy(buf, start, message, have, k);
                Consume(k);
                have += k;
            }
            return true;
        }

        void Consume(int n)
        {
            start += n;
            if (start == end)
            {
                start = end = 0;
            }
        }

        // Fill reads until at least need bytes are buffered. At the end of the stream it
        // returns false if nothing is buffered and atBoundary, or throws.
        bool Fill(int need, bool atBoundary)
        {
            if (end - start >= need)
            {
                return true;
            }
            if (buf.Length - start < need)
            {
                Buffer.BlockCopy(buf, start, buf, 0, end - start);
                end -= start;
                start = 0;
            }
            while (end - start < need)
            {
                int m = stream.Read(buf, end, buf.Length - end);
                if (m <= 0)
                {
                    if (atBoundary && end == start)
                    {
                        return false;
                    }
                    throw new EndOfStreamException("fastway: stream ended inside a frame");
                }
                end += m;
            }
            return true;
        }
    }
}
