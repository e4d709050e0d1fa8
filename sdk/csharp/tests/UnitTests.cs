using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Numerics;
using System.Threading;
using Fastway.Snet;
using NUnit.Framework;

namespace Fastway.Tests
{
    /// <summary>The codec against slow references, fed in random pieces.</summary>
    [TestFixture]
    public class CodecTests
    {
        [Test]
        public void Dh64MatchesBigInteger()
        {
            var rng = new Random(7);
            var p = new BigInteger(Snet.Dh64.P);
            var b = new byte[8];
            for (int i = 0; i < 300; i++)
            {
                rng.NextBytes(b);
                ulong x = BitConverter.ToUInt64(b, 0);
                rng.NextBytes(b);
                ulong e = BitConverter.ToUInt64(b, 0);
                var want = (ulong)BigInteger.ModPow(new BigInteger(x), new BigInteger(e), p);
                Assert.AreEqual(want, Snet.Dh64.Secret(e, x), x + "^" + e);
                var y = x % Snet.Dh64.P;
                var z = e % Snet.Dh64.P;
                Assert.AreEqual((ulong)(new BigInteger(y) * new BigInteger(z) % p), Snet.Dh64.MulMod(y, z));
            }
            Assert.AreNotEqual(0UL, Snet.Dh64.PrivateKey());
            Assert.IsFalse(Snet.Dh64.ValidPublic(0));
            Assert.IsFalse(Snet.Dh64.ValidPublic(Snet.Dh64.P));
        }

        /// <summary>Random frames, encoded by the reference (Wire), read back through
        /// FrameReader from random pieces with small and large buffers.</summary>
        [Test]
        public void FrameReaderMatchesReference()
        {
            for (int seed = 0; seed < 40; seed++)
            {
                var rng = new Random(seed);
                var frames = new List<byte[]>();
                var ms = new MemoryStream();
                for (int i = 0; i < 200; i++)
                {
                    byte[] f;
                    if (rng.Next(4) == 0)
                    {
                        var t = (Cmd)rng.Next(6);
                        f = Wire.EncodeCommand(new Command(t, t == Cmd.Ping || t == Cmd.Dial || t == Cmd.Refuse ? 0 : (uint)rng.Next(), t == Cmd.Ping || t == Cmd.Close ? 0 : (uint)rng.Next()));
                    }
                    else
                    {
                        var m = new byte[rng.Next(4) == 0 ? rng.Next(20000) : rng.Next(40)];
                        rng.NextBytes(m);
                        f = Wire.EncodeData((uint)rng.Next(1, int.MaxValue), m);
                    }
                    frames.Add(f);
                    ms.Write(f, 0, f.Length);
                }
                var fr = new FrameReader(new ChunkedStream(new MemoryStream(ms.ToArray()), seed, 1 + rng.Next(3000)), 64 + seed * 100, 0);
                foreach (var want in frames)
                {
                    uint id;
                    byte[] msg;
                    Command cmd;
                    Assert.IsTrue(fr.Next(out id, out msg, out cmd));
                    var got = msg != null ? Wire.EncodeData(id, msg) : Wire.EncodeCommand(cmd);
                    Assert.IsTrue(GatewayTests.Equal(want, got), "seed " + seed);
                }
                uint x;
                byte[] y;
                Command z;
                Assert.IsFalse(fr.Next(out x, out y, out z));
            }
        }

        [Test]
        public void FrameReaderEndsInsideFrame()
        {
            var f = Wire.EncodeData(5, new byte[100]);
            for (int cut = 1; cut < f.Length; cut++)
            {
                var fr = new FrameReader(new MemoryStream(f, 0, cut), 64, 0);
                uint id;
                byte[] msg;
                Command cmd;
                Assert.Throws<EndOfStreamException>(() => fr.Next(out id, out msg, out cmd), "cut at " + cut);
            }
        }

        /// <summary>Random bytes as a gateway's stream: FrameReader never throws anything
        /// but ProtocolException or EndOfStreamException, nor allocates past MaxPacket.</summary>
        [Test]
        public void FrameReaderOnGarbage()
        {
            var rng = new Random(3);
            for (int i = 0; i < 2000; i++)
            {
                var b = new byte[rng.Next(1, 64)];
                rng.NextBytes(b);
                if (b.Length >= 4 && rng.Next(2) == 0)
                {
                    Wire.PutU32(b, 0, (uint)rng.Next(0, 20)); // plausible lengths too
                }
                var fr = new FrameReader(new ChunkedStream(new MemoryStream(b), i, 5), 64, 1024);
                try
                {
                    uint id;
                    byte[] msg;
                    Command cmd;
                    while (fr.Next(out id, out msg, out cmd))
                    {
                        Assert.LessOrEqual(msg == null ? 0 : msg.Length, 1020);
                    }
                }
                catch (ProtocolException)
                {
                }
                catch (EndOfStreamException)
                {
                }
            }
        }

        [Test]
        public void RingKeepsTheLastBytes()
        {
            var ring = new Ring(4096);
            var rng = new Random(1);
            var all = new List<byte>();
            for (int i = 0; i < 300; i++)
            {
                var b = new byte[rng.Next(0, 700)];
                rng.NextBytes(b);
                ring.Write(b, 0, b.Length, null);
                all.AddRange(b);
                Assert.AreEqual((ulong)all.Count, ring.Total);
                ulong kept = ring.Kept;
                Assert.AreEqual(Math.Min(all.Count, 4096), (int)kept);
                ulong from = ring.Total - (ulong)rng.Next(0, (int)kept + 1);
                ArraySegment<byte> s1, s2;
                Assert.IsTrue(ring.Since(from, out s1, out s2));
                var got = new List<byte>();
                for (int k = 0; k < s1.Count; k++) got.Add(s1.Array[s1.Offset + k]);
                for (int k = 0; k < s2.Count; k++) got.Add(s2.Array[s2.Offset + k]);
                CollectionAssert.AreEqual(all.GetRange((int)from, all.Count - (int)from), got);
                Assert.IsFalse(ring.Since(ring.Total - kept - 1, out s1, out s2) && kept < ring.Total);
            }
            Assert.LessOrEqual(ring.Allocated, 4096);
        }
    }

    /// <summary>The EndPoint against a scripted gateway on loopback: what the real one
    /// never sends.</summary>
    [TestFixture]
    public class FakeGatewayTests
    {
        TcpListener ln;
        Socket gw;
        EndPoint ep;

        void Open(EndPointConfig cfg = null)
        {
            ln = new TcpListener(IPAddress.Loopback, 0);
            ln.Start();
            var c = new TcpClient();
            c.Connect(IPAddress.Loopback, ((IPEndPoint)ln.LocalEndpoint).Port);
            gw = ln.AcceptSocket();
            ep = new EndPoint(c.GetStream(), cfg ?? new EndPointConfig { PingInterval = TimeSpan.FromMilliseconds(-1) });
        }

        [TearDown]
        public void Close()
        {
            if (ep != null)
            {
                ep.Close();
            }
            if (gw != null)
            {
                gw.Close();
            }
            if (ln != null)
            {
                ln.Stop();
            }
            ep = null;
            gw = null;
            ln = null;
        }

        void Send(string hex)
        {
            var b = Bytes.FromHex(hex);
            gw.Send(b);
        }

        byte[] Expect(int n)
        {
            var b = new byte[n];
            int got = 0;
            gw.ReceiveTimeout = 10000;
            while (got < n)
            {
                int m = gw.Receive(b, got, n - got, SocketFlags.None);
                Assert.Greater(m, 0);
                got += m;
            }
            return b;
        }

        void ExpectClosedWith(ProtocolError kind)
        {
            Wait.Until(() => ep.IsClosed, "the endpoint to close");
            Assert.IsInstanceOf<ProtocolException>(ep.Error, "" + ep.Error);
            Assert.AreEqual(kind, ((ProtocolException)ep.Error).Error, ep.Error.Message);
        }

        [Test, Timeout(20000)]
        public void MalformedFramesCloseTheEndPoint()
        {
            foreach (var v in Env.Vectors().Arr("framingErrors"))
            {
                if (v.Int("maxPacket") != 0)
                {
                    continue; // the endpoint runs with the default MaxPacket
                }
                Open();
                var c = ep.Dial(1);
                Send(Bytes.ToHex(v.Hex("hex")));
                Wait.Until(() => ep.IsClosed, v.Str("name"));
                Assert.IsInstanceOf<ProtocolException>(ep.Error, v.Str("name"));
                Assert.IsTrue(c.IsClosed);
                Close();
            }
        }

        [Test, Timeout(20000)]
        public void OutOfPlaceCommands()
        {
            Open();
            Send("0d000000 00000000 01 07000000 01000000"); // Accept without a Dial
            ExpectClosedWith(ProtocolError.Unexpected);
            Close();

            Open();
            ep.Dial(1);
            Expect(Wire.DialSize);
            Send("0d000000 00000000 01 07000000 02000000"); // Accept for another remote
            ExpectClosedWith(ProtocolError.Unexpected);
            Close();

            Open();
            Send("09000000 00000000 00 01000000"); // a Dial to the client
            ExpectClosedWith(ProtocolError.Unexpected);
            Close();

            Open();
            Send("0d000000 00000000 02 00000000 01000000"); // Connect of ConnID 0
            ExpectClosedWith(ProtocolError.Unexpected);
            Close();

            Open(new EndPointConfig { PingInterval = TimeSpan.FromMilliseconds(-1), MaxPacket = 100 });
            Send("69000000 07000000"); // Length 105 > 100
            ExpectClosedWith(ProtocolError.FrameTooLarge);
        }

        [Test, Timeout(20000)]
        public void DialsAcceptsAndCloses()
        {
            Open();
            var a = ep.Dial(1);
            var b = ep.Dial(2);
            Assert.IsTrue(a.Send(new byte[] { 1, 2, 3 }));
            Assert.AreEqual("0900000000000000" + "0001000000" + "0900000000000000" + "0002000000", Bytes.ToHex(Expect(2 * Wire.DialSize)));
            Send("0d000000 00000000 01 07000000 01000000 09000000 00000000 03 02000000"); // Accept a as 7, Refuse b
            Assert.AreEqual("07000000070000000102 03".Replace(" ", ""), Bytes.ToHex(Expect(Wire.HeaderSize + 3)));
            Wait.Until(() => b.IsClosed, "the refusal");
            Assert.AreEqual(7u, a.ID);
            Assert.IsInstanceOf<RefusedException>(b.Error);
            // Data for an unknown ConnID is dropped; for 7 it arrives, in pieces too.
            Send("05000000 63000000 ff");
            gw.Send(Bytes.FromHex("060000000700"));
            gw.Send(Bytes.FromHex("0000abcd"));
            CollectionAssert.AreEqual(new byte[] { 0xab, 0xcd }, Wait.Message(a));
            // A server opens ConnID 8; the gateway closes it.
            Send("0d000000 00000000 02 08000000 02000000");
            Conn s = null;
            Wait.Until(() => (s = ep.Accept()) != null, "the Connect");
            Assert.AreEqual(8u, s.ID);
            Assert.AreEqual(2u, s.RemoteID);
            Send("05000000 08000000 01 09000000 00000000 04 08000000");
            Wait.Until(() => s.IsClosed, "the gateway's Close");
            CollectionAssert.AreEqual(new byte[] { 1 }, s.Receive(), "a message before the Close is kept");
            Assert.IsNull(s.Receive());
            // Our Close goes out after the data queued before it.
            a.Send(new byte[] { 9 });
            a.Close();
            Assert.AreEqual("050000000700000009" + "0900000000000000" + "0407000000", Bytes.ToHex(Expect(Wire.HeaderSize + 1 + Wire.CloseSize)));
            Assert.IsFalse(ep.IsClosed, "" + ep.Error);
            // The gateway hangs up: the endpoint closes, its Conns with it.
            gw.Close();
            gw = null;
            Wait.Until(() => ep.IsClosed, "the hang-up");
            Assert.IsInstanceOf<ClosedException>(ep.Error);
            Assert.IsNull(ep.Dial(1).Receive());
        }

        [Test, Timeout(20000)]
        public void ReceiveOverflowClosesOnlyThatConn()
        {
            Open(new EndPointConfig { PingInterval = TimeSpan.FromMilliseconds(-1), RecvQueueSize = 3 });
            var a = ep.Dial(1);
            var b = ep.Dial(1);
            Expect(2 * Wire.DialSize);
            Send("0d000000 00000000 01 07000000 01000000 0d000000 00000000 01 08000000 01000000");
            Wait.Until(() => b.State == ConnState.Open, "two accepts");
            for (int i = 0; i < 4; i++)
            {
                Send("05000000 07000000 0" + i);
            }
            Send("05000000 08000000 ee");
            Assert.AreEqual("0900000000000000" + "0407000000", Bytes.ToHex(Expect(Wire.CloseSize)));
            Assert.IsTrue(a.IsClosed);
            Assert.IsInstanceOf<ReceiveOverflowException>(a.Error);
            for (int i = 0; i < 3; i++)
            {
                CollectionAssert.AreEqual(new byte[] { (byte)i }, a.Receive());
            }
            Assert.IsNull(a.Receive());
            CollectionAssert.AreEqual(new byte[] { 0xee }, Wait.Message(b));
            Assert.IsFalse(ep.IsClosed);
        }

        /// <summary>Pings go out when idle; with no answer the timeout callback runs, and
        /// returning false closes with PingTimeoutException.</summary>
        [Test, Timeout(20000)]
        public void PingTimeout()
        {
            int calls = 0;
            Open(new EndPointConfig
            {
                PingInterval = TimeSpan.FromMilliseconds(50),
                PingTimeout = TimeSpan.FromMilliseconds(200),
                TimeoutCallback = () => Interlocked.Increment(ref calls) < 2,
            });
            Assert.AreEqual("0500000000000000" + "05", Bytes.ToHex(Expect(Wire.PingSize)));
            Wait.Until(() => ep.IsClosed, "the second timeout");
            Assert.AreEqual(2, calls);
            Assert.IsInstanceOf<PingTimeoutException>(ep.Error);
        }

        [Test, Timeout(20000)]
        public void AnsweredPingsNeverTimeOut()
        {
            int calls = 0;
            Open(new EndPointConfig
            {
                PingInterval = TimeSpan.FromMilliseconds(30),
                PingTimeout = TimeSpan.FromMilliseconds(100),
                TimeoutCallback = () => { Interlocked.Increment(ref calls); return false; },
            });
            for (int i = 0; i < 15; i++)
            {
                Expect(Wire.PingSize);
                Send("05000000 00000000 05");
            }
            Wait.Until(() => ep.PingsReceived == 15, "15 answers");
            Assert.AreEqual(0, calls);
            Assert.IsFalse(ep.IsClosed);
        }

        [Test, Timeout(20000)]
        public void SendQueueBound()
        {
            Open(new EndPointConfig { PingInterval = TimeSpan.FromMilliseconds(-1), SendQueueBytes = 1000 });
            var a = ep.Dial(1);
            Expect(Wire.DialSize);
            Send("0d000000 00000000 01 07000000 01000000");
            Wait.Until(() => a.State == ConnState.Open, "the accept");
            Assert.Throws<MessageTooLargeException>(() => a.Send(new byte[Wire.DefaultMaxPacket]));
            // Nobody reads on the gateway side: the socket buffers fill, then the queue.
            var big = new byte[900];
            Assert.Throws<SendQueueFullException>(() =>
            {
                for (int i = 0; i < 100000; i++)
                {
                    a.Send(big);
                }
            });
            var pending = a.SendAsync(big);
            for (int i = 0; i < 1000 && pending.IsCompleted; i++)
            {
                Assert.IsTrue(pending.Result);
                pending = a.SendAsync(big); // the writer made room meanwhile
            }
            Assert.IsFalse(pending.IsCompleted);
            var drain = new byte[1 << 16];
            Wait.Until(() =>
            {
                if (gw.Poll(10000, SelectMode.SelectRead))
                {
                    gw.Receive(drain); // never blocks: something is there
                }
                return pending.IsCompleted;
            }, "room");
            Assert.IsTrue(pending.Result);
        }
    }
}
