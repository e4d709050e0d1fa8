using System;

namespace Fastway
{
    /// <summary>The type byte of a command frame (ConnID 0), PROTOCOL.md §1.</summary>
    public enum Cmd : byte
    {
        /// <summary>Open a virtual connection to RemoteID.</summary>
        Dial = 0,
        /// <summary>The dial succeeded: ConnID, RemoteID.</summary>
        Accept = 1,
        /// <summary>A peer opened ConnID to you: ConnID, RemoteID (the dialer's ID).</summary>
        Connect = 2,
        /// <summary>The dial to RemoteID failed.</summary>
        Refuse = 3,
        /// <summary>Virtual connection ConnID is closed.</summary>
        Close = 4,
        /// <summary>Keep-alive; the gateway answers each Ping with a Ping.</summary>
        Ping = 5,
    }

    /// <summary>A decoded command frame. Fields a command does not carry are 0: Dial and
    /// Refuse carry RemoteID, Close carries ConnID, Accept and Connect both, Ping none.</summary>
    public struct Command : IEquatable<Command>
    {
        /// <summary>The command's type.</summary>
        public Cmd Type;
        /// <summary>The virtual connection it is about (Accept, Connect, Close).</summary>
        public uint ConnID;
        /// <summary>The peer's ID (Dial, Accept, Connect, Refuse).</summary>
        public uint RemoteID;

        /// <summary>Creates a command.</summary>
        public Command(Cmd type, uint connID, uint remoteID)
        {
            Type = type;
            ConnID = connID;
            RemoteID = remoteID;
        }

        /// <inheritdoc/>
        public bool Equals(Command o) { return Type == o.Type && ConnID == o.ConnID && RemoteID == o.RemoteID; }

        /// <inheritdoc/>
        public override bool Equals(object o) { return o is Command && Equals((Command)o); }

        /// <inheritdoc/>
        public override int GetHashCode() { return ((int)Type * 31 + (int)ConnID) * 31 + (int)RemoteID; }

        /// <inheritdoc/>
        public override string ToString() { return Type + "(conn " + ConnID + ", remote " + RemoteID + ")"; }
    }

    /// <summary>The gateway framing of PROTOCOL.md §1: pure functions over byte arrays,
    /// no sockets. Every integer is little-endian.</summary>
    public static class Wire
    {
        /// <summary>Length u32.</summary>
        public const int SizeOfLength = 4;
        /// <summary>ConnID u32.</summary>
        public const int SizeOfConnID = 4;
        /// <summary>A command's Type u8.</summary>
        public const int SizeOfCmd = 1;
        /// <summary>A RemoteID or ConnID argument.</summary>
        public const int SizeOfID = 4;
        /// <summary>The prefix of every frame: Length + ConnID.</summary>
        public const int HeaderSize = SizeOfLength + SizeOfConnID;
        /// <summary>The prefix of every command frame: header + Type.</summary>
        public const int CmdHeaderSize = HeaderSize + SizeOfCmd;
        /// <summary>Dial frame size (Length field included): 13 bytes.</summary>
        public const int DialSize = CmdHeaderSize + SizeOfID;
        /// <summary>Accept frame size: 17 bytes.</summary>
        public const int AcceptSize = CmdHeaderSize + 2 * SizeOfID;
        /// <summary>Connect frame size: 17 bytes.</summary>
        public const int ConnectSize = AcceptSize;
        /// <summary>Refuse frame size: 13 bytes.</summary>
        public const int RefuseSize = CmdHeaderSize + SizeOfID;
        /// <summary>Close frame size: 13 bytes.</summary>
        public const int CloseSize = CmdHeaderSize + SizeOfID;
        /// <summary>Ping frame size: 9 bytes.</summary>
        public const int PingSize = CmdHeaderSize;
        /// <summary>The largest command frame.</summary>
        public const int MaxCmdSize = AcceptSize;
        /// <summary>The smallest legal Length.</summary>
        public const int MinLength = SizeOfConnID;
        /// <summary>The bound on Length unless configured otherwise (512 KiB).</summary>
        public const int DefaultMaxPacket = 512 << 10;

        /// <summary>The exact frame size (Length field included) of command c, or 0 for an
        /// unknown type.</summary>
        public static int CmdSize(Cmd c)
        {
            switch (c)
            {
                case Cmd.Dial: return DialSize;
                case Cmd.Accept: return AcceptSize;
                case Cmd.Connect: return ConnectSize;
                case Cmd.Refuse: return RefuseSize;
                case Cmd.Close: return CloseSize;
                case Cmd.Ping: return PingSize;
            }
            return 0;
        }

        /// <summary>Reads a little-endian u32.</summary>
        public static uint GetU32(byte[] b, int off)
        {
            return (uint)(b[off] | b[off + 1] << 8 | b[off + 2] << 16 | b[off + 3] << 24);
        }

        /// <summary>Writes a little-endian u32.</summary>
        public static void PutU32(byte[] b, int off, uint v)
        {
            b[off] = (byte)v;
            b[off + 1] = (byte)(v >> 8);
            b[off + 2] = (byte)(v >> 16);
            b[off + 3] = (byte)(v >> 24);
        }

        /// <summary>Reads a little-endian u64.</summary>
        public static ulong GetU64(byte[] b, int off)
        {
            return GetU32(b, off) | (ulong)GetU32(b, off + 4) << 32;
        }

        /// <summary>Writes a little-endian u64.</summary>
        public static void PutU64(byte[] b, int off, ulong v)
        {
            PutU32(b, off, (uint)v);
            PutU32(b, off + 4, (uint)(v >> 32));
        }

        /// <summary>Writes the header of a frame of frameSize bytes (Length field included)
        /// at b[off].</summary>
        public static void PutHeader(byte[] b, int off, int frameSize, uint connID)
        {
            PutU32(b, off, (uint)(frameSize - SizeOfLength));
            PutU32(b, off + SizeOfLength, connID);
        }

        /// <summary>Writes command c's frame at b[off] and returns its size. It throws
        /// ArgumentException for an unknown type.</summary>
        public static int PutCommand(byte[] b, int off, Command c)
        {
            int n = CmdSize(c.Type);
            if (n == 0)
            {
                throw new ArgumentException("fastway: encode of unknown command " + (byte)c.Type);
            }
            PutHeader(b, off, n, 0);
            b[off + HeaderSize] = (byte)c.Type;
            int args = off + CmdHeaderSize;
            switch (c.Type)
            {
                case Cmd.Dial:
                case Cmd.Refuse:
                    PutU32(b, args, c.RemoteID);
                    break;
                case Cmd.Close:
                    PutU32(b, args, c.ConnID);
                    break;
                case Cmd.Accept:
                case Cmd.Connect:
                    PutU32(b, args, c.ConnID);
                    PutU32(b, args + SizeOfID, c.RemoteID);
                    break;
            }
            return n;
        }

        /// <summary>Returns command c's frame in a new array.</summary>
        public static byte[] EncodeCommand(Command c)
        {
            var b = new byte[CmdSize(c.Type) == 0 ? MaxCmdSize : CmdSize(c.Type)];
            PutCommand(b, 0, c);
            return b;
        }

        /// <summary>Returns a data frame for connID carrying msg.</summary>
        public static byte[] EncodeData(uint connID, byte[] msg)
        {
            var b = new byte[HeaderSize + msg.Length];
            PutHeader(b, 0, b.Length, connID);
            Buffer.BlockCopy(msg, 0, b, HeaderSize, msg.Length);
            return b;
        }

        /// <summary>Checks a Length field against the protocol minimum and maxPacket
        /// (0 or less: DefaultMaxPacket); throws ProtocolException.</summary>
        public static void CheckLength(uint length, int maxPacket)
        {
            if (maxPacket <= 0)
            {
                maxPacket = DefaultMaxPacket;
            }
            if (length < MinLength)
            {
                throw new ProtocolException(ProtocolError.ShortFrame, "frame Length " + length + " < " + MinLength);
            }
            if (length > (uint)maxPacket)
            {
                throw new ProtocolException(ProtocolError.FrameTooLarge, "frame Length " + length + " > MaxPacket " + maxPacket);
            }
        }

        /// <summary>Decodes the whole command frame b[off..off+count) (Length field included,
        /// ConnID 0). Any mismatch between Length, count and the type's size throws
        /// ProtocolException.</summary>
        public static Command DecodeCommand(byte[] b, int off, int count)
        {
            if (count < HeaderSize || GetU32(b, off) != (uint)(count - SizeOfLength))
            {
                throw new ProtocolException(ProtocolError.BadLength, "frame of " + count + " bytes");
            }
            uint id = GetU32(b, off + SizeOfLength);
            if (id != 0)
            {
                throw new ProtocolException(ProtocolError.BadCommand, "ConnID " + id + " is not a command");
            }
            if (count < CmdHeaderSize)
            {
                throw new ProtocolException(ProtocolError.BadCommand, "command without a type byte");
            }
            var c = new Command { Type = (Cmd)b[off + HeaderSize] };
            int want = CmdSize(c.Type);
            if (want == 0)
            {
                throw new ProtocolException(ProtocolError.UnknownCommand, "command type " + (byte)c.Type);
            }
            if (count != want)
            {
                throw new ProtocolException(ProtocolError.BadCommand, c.Type + " frame of " + count + " bytes, want " + want);
            }
            int args = off + CmdHeaderSize;
            switch (c.Type)
            {
                case Cmd.Dial:
                case Cmd.Refuse:
                    c.RemoteID = GetU32(b, args);
                    break;
                case Cmd.Close:
                    c.ConnID = GetU32(b, args);
                    break;
                case Cmd.Accept:
                case Cmd.Connect:
                    c.ConnID = GetU32(b, args);
                    c.RemoteID = GetU32(b, args + SizeOfID);
                    break;
            }
            return c;
        }
    }
}
