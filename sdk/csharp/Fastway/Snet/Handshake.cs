using System;
using System.Security.Cryptography;

namespace Fastway.Snet
{
    /// <summary>The snet handshake messages of PROTOCOL.md §3, as pure functions: every
    /// integer a little-endian u64, the session key the DH64 secret's 8 bytes, every
    /// digest MD5(... || key).</summary>
    public static class Handshake
    {
        /// <summary>Starts a new session.</summary>
        public const byte TypeNew = 0x00;
        /// <summary>Resumes a session.</summary>
        public const byte TypeReconnect = 0xff;
        /// <summary>Type · client public key.</summary>
        public const int NewRequestSize = 1 + 8;
        /// <summary>Server public key · encrypted ID · challenge.</summary>
        public const int NewReplySize = 3 * 8;
        /// <summary>An MD5 digest.</summary>
        public const int DigestSize = 16;
        /// <summary>Type · ID · write count · read count · digest.</summary>
        public const int ReconnectRequestSize = 1 + 3 * 8 + DigestSize;
        /// <summary>Write count · read count · challenge (all zero: refused).</summary>
        public const int ReconnectReplySize = 3 * 8;

        /// <summary>The session key: secret as 8 little-endian bytes.</summary>
        public static byte[] SessionKey(ulong secret)
        {
            var k = new byte[8];
            Wire.PutU64(k, 0, secret);
            return k;
        }

        /// <summary>The client's hello: 0x00 · its public key.</summary>
        public static byte[] NewRequest(ulong pub)
        {
            var b = new byte[NewRequestSize];
            b[0] = TypeNew;
            Wire.PutU64(b, 1, pub);
            return b;
        }

        /// <summary>The server's reply to a hello; it advances the server's write
        /// cipher by 8 bytes.</summary>
        public static byte[] NewReply(ulong pub, ulong id, ulong challenge, Rc4 serverWrite)
        {
            var b = new byte[NewReplySize];
            Wire.PutU64(b, 0, pub);
            Wire.PutU64(b, 8, id);
            serverWrite.Xor(b, 8, 8);
            Wire.PutU64(b, 16, challenge);
            return b;
        }

        /// <summary>Splits the server's reply; the ID is decrypted with the client's read
        /// cipher, which advances 8 bytes.</summary>
        public static void ParseNewReply(byte[] b, Rc4 clientRead, out ulong pub, out ulong id, out ulong challenge)
        {
            pub = Wire.GetU64(b, 0);
            var enc = new byte[8];
            Buffer.BlockCopy(b, 8, enc, 0, 8);
            clientRead.Xor(enc, 0, 8);
            id = Wire.GetU64(enc, 0);
            challenge = Wire.GetU64(b, 16);
        }

        /// <summary>MD5(challenge || key), the answer to a challenge.</summary>
        public static byte[] ChallengeDigest(ulong challenge, byte[] key)
        {
            var b = new byte[16];
            Wire.PutU64(b, 0, challenge);
            Buffer.BlockCopy(key, 0, b, 8, 8);
            return Md5(b);
        }

        /// <summary>The client's reconnect request: 0xFF · ID · write count · read count ·
        /// MD5(those 24 bytes || key).</summary>
        public static byte[] ReconnectRequest(ulong id, ulong writeCount, ulong readCount, byte[] key)
        {
            var b = new byte[ReconnectRequestSize];
            b[0] = TypeReconnect;
            Wire.PutU64(b, 1, id);
            Wire.PutU64(b, 9, writeCount);
            Wire.PutU64(b, 17, readCount);
            var body = new byte[24 + 8];
            Buffer.BlockCopy(b, 1, body, 0, 24);
            Buffer.BlockCopy(key, 0, body, 24, 8);
            Buffer.BlockCopy(Md5(body), 0, b, 25, DigestSize);
            return b;
        }

        /// <summary>The server's reply to a reconnect (all zero: refused).</summary>
        public static byte[] ReconnectReply(ulong writeCount, ulong readCount, ulong challenge)
        {
            var b = new byte[ReconnectReplySize];
            Wire.PutU64(b, 0, writeCount);
            Wire.PutU64(b, 8, readCount);
            Wire.PutU64(b, 16, challenge);
            return b;
        }

        /// <summary>Splits a reconnect reply; false if it is a refusal (all zero).</summary>
        public static bool ParseReconnectReply(byte[] b, out ulong writeCount, out ulong readCount, out ulong challenge)
        {
            writeCount = Wire.GetU64(b, 0);
            readCount = Wire.GetU64(b, 8);
            challenge = Wire.GetU64(b, 16);
            return writeCount != 0 || readCount != 0 || challenge != 0;
        }

        static byte[] Md5(byte[] b)
        {
            using (var md5 = MD5.Create())
            {
                return md5.ComputeHash(b);
            }
        }
    }
}
