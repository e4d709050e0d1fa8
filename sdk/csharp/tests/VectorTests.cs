using System;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Tasks;
using Fastway.Snet;
using NUnit.Framework;

namespace Fastway.Tests
{
    /// <summary>The golden vectors of PROTOCOL.md §1 and §3, read from
    /// proto/testdata/vectors.json, the file the Go tests check too.</summary>
    [TestFixture]
    public class VectorTests
    {
        static readonly JObj V = Env.Vectors();

        static Cmd Kind(string k)
        {
            return (Cmd)Enum.Parse(typeof(Cmd), k);
        }

        [Test]
        public void FramingEncodeDecode()
        {
            var all = V.Arr("framing");
            Assert.That(all.Count, Is.GreaterThanOrEqualTo(10));
            foreach (var v in all)
            {
                var want = v.Hex("hex");
                var name = v.Str("name");
                if (v.Str("kind") == "data")
                {
                    var msg = v.Hex("message");
                    Assert.AreEqual(Bytes.ToHex(want), Bytes.ToHex(Wire.EncodeData(v.U32("connID"), msg)), name);
                    uint id;
                    byte[] got;
                    Command cmd;
                    var fr = new FrameReader(new MemoryStream(want), 64, 0);
                    Assert.IsTrue(fr.Next(out id, out got, out cmd), name);
                    Assert.AreEqual(v.U32("connID"), id, name);
                    Assert.AreEqual(Bytes.ToHex(msg), Bytes.ToHex(got), name);
                    Assert.IsFalse(fr.Next(out id, out got, out cmd), name + ": more than one frame");
                    continue;
                }
                var c = new Command(Kind(v.Str("kind")), v.U32("connID"), v.U32("remoteID"));
                Assert.AreEqual(Bytes.ToHex(want), Bytes.ToHex(Wire.EncodeCommand(c)), name);
                Assert.AreEqual(c, Wire.DecodeCommand(want, 0, want.Length), name);
                var r = new FrameReader(new MemoryStream(want), 64, 0);
                uint rid;
                byte[] rmsg;
                Command rc;
                Assert.IsTrue(r.Next(out rid, out rmsg, out rc), name);
                Assert.AreEqual(0u, rid, name);
                Assert.IsNull(rmsg, name);
                Assert.AreEqual(c, rc, name);
            }
        }

        /// <summary>All framing vectors back to back, read in random pieces.</summary>
        [Test]
        public void FramingConcatenatedAndChunked()
        {
            var ms = new MemoryStream();
            var all = V.Arr("framing");
            foreach (var v in all)
            {
                var b = v.Hex("hex");
                ms.Write(b, 0, b.Length);
            }
            for (int seed = 0; seed < 50; seed++)
            {
                var fr = new FrameReader(new ChunkedStream(new MemoryStream(ms.ToArray()), seed, 1 + seed % 7), 64, 0);
                foreach (var v in all)
                {
                    uint id;
                    byte[] msg;
                    Command cmd;
                    Assert.IsTrue(fr.Next(out id, out msg, out cmd));
                    var again = msg != null ? Wire.EncodeData(id, msg) : Wire.EncodeCommand(cmd);
                    Assert.AreEqual(Bytes.ToHex(v.Hex("hex")), Bytes.ToHex(again), v.Str("name"));
                }
            }
        }

        [Test]
        public void FramingErrors()
        {
            var kinds = new System.Collections.Generic.Dictionary<string, ProtocolError>
            {
                { "short", ProtocolError.ShortFrame },
                { "tooLarge", ProtocolError.FrameTooLarge },
                { "badCommand", ProtocolError.BadCommand },
                { "unknownCmd", ProtocolError.UnknownCommand },
            };
            foreach (var v in V.Arr("framingErrors"))
            {
                var frame = v.Hex("hex");
                var want = kinds[v.Str("error")];
                foreach (int chunk in new[] { 0, 1, 3 })
                {
                    Stream s = new MemoryStream(frame);
                    if (chunk > 0)
                    {
                        s = new ChunkedStream(s, chunk, chunk);
                    }
                    var fr = new FrameReader(s, 64, v.Int("maxPacket"));
                    uint id;
                    byte[] msg;
                    Command cmd;
                    var e = Assert.Throws<ProtocolException>(() => fr.Next(out id, out msg, out cmd), v.Str("name"));
                    Assert.AreEqual(want, e.Error, v.Str("name") + ": " + e.Message);
                    StringAssert.StartsWith("fastway: ", e.Message);
                }
            }
        }

        [Test]
        public void Dh64()
        {
            var s = V.Obj("snet");
            Assert.AreEqual(Snet.Dh64.P, s.U64("p"));
            Assert.AreEqual(Snet.Dh64.G, (ulong)s.Int("g"));
            foreach (var k in s.Arr("publicKeys"))
            {
                Assert.AreEqual(k.U64("pub"), Snet.Dh64.PublicKey(k.U64("priv")), k.Str("priv"));
            }
            foreach (var k in s.Arr("secrets"))
            {
                Assert.AreEqual(k.U64("secret"), Snet.Dh64.Secret(k.U64("priv"), k.U64("peerPub")), k.Str("priv"));
            }
        }

        [Test]
        public void SessionKeyAndRc4()
        {
            var s = V.Obj("snet");
            var sk = s.Obj("sessionKey");
            Assert.AreEqual(Bytes.ToHex(sk.Hex("hex")), Bytes.ToHex(Handshake.SessionKey(sk.U64("secret"))));
            var ks = s.Obj("rc4Keystream");
            var want = ks.Hex("hex");
            var got = new byte[want.Length];
            new Rc4(ks.Hex("key")).Xor(got, 0, got.Length);
            Assert.AreEqual(Bytes.ToHex(want), Bytes.ToHex(got));
            // The same keystream in pieces.
            var c = new Rc4(ks.Hex("key"));
            var piece = new byte[want.Length];
            c.Xor(piece, 0, 3);
            c.Xor(piece, 3, want.Length - 3);
            Assert.AreEqual(Bytes.ToHex(want), Bytes.ToHex(piece));
        }

        [Test]
        public void HandshakeMessages()
        {
            var s = V.Obj("snet");
            var nq = s.Obj("newRequest");
            Assert.AreEqual(Bytes.ToHex(nq.Hex("hex")), Bytes.ToHex(Handshake.NewRequest(nq.U64("pub"))));
            var nr = s.Obj("newReply");
            var reply = Handshake.NewReply(nr.U64("pub"), nr.U64("connID"), nr.U64("challenge"), new Rc4(nr.Hex("key")));
            Assert.AreEqual(Bytes.ToHex(nr.Hex("hex")), Bytes.ToHex(reply));
            ulong pub, id, ch;
            Handshake.ParseNewReply(nr.Hex("hex"), new Rc4(nr.Hex("key")), out pub, out id, out ch);
            Assert.AreEqual(nr.U64("pub"), pub);
            Assert.AreEqual(nr.U64("connID"), id);
            Assert.AreEqual(nr.U64("challenge"), ch);
            foreach (var d in s.Arr("challengeDigests"))
            {
                Assert.AreEqual(Bytes.ToHex(d.Hex("hex")), Bytes.ToHex(Handshake.ChallengeDigest(d.U64("challenge"), d.Hex("key"))));
            }
            var rq = s.Obj("reconnRequest");
            Assert.AreEqual(Bytes.ToHex(rq.Hex("hex")),
                Bytes.ToHex(Handshake.ReconnectRequest(rq.U64("connID"), (ulong)rq.Int("writeCount"), (ulong)rq.Int("readCount"), rq.Hex("key"))));
            var rp = s.Obj("reconnReply");
            Assert.AreEqual(Bytes.ToHex(rp.Hex("hex")),
                Bytes.ToHex(Handshake.ReconnectReply((ulong)rp.Int("writeCount"), (ulong)rp.Int("readCount"), rp.U64("challenge"))));
            ulong w, r, c;
            Assert.IsTrue(Handshake.ParseReconnectReply(rp.Hex("hex"), out w, out r, out c));
            Assert.AreEqual((ulong)rp.Int("writeCount"), w);
            Assert.AreEqual((ulong)rp.Int("readCount"), r);
            Assert.AreEqual(rp.U64("challenge"), c);
            Assert.IsFalse(Handshake.ParseReconnectReply(s.Obj("reconnRefused").Hex("hex"), out w, out r, out c));
        }

        /// <summary>The scripted session: a fake gateway on loopback drives SnetStream
        /// and checks every byte it sends, as TestSharedClientSession does for Go.</summary>
        [Test, Timeout(30000)]
        public void ClientSession()
        {
            var s = V.Obj("snet").Obj("clientSession");
            var ln = new TcpListener(IPAddress.Loopback, 0);
            ln.Start();
            try
            {
                int port = ((IPEndPoint)ln.LocalEndpoint).Port;
                var cfg = new SnetConfig { EnableCrypt = s.Bool("crypt") };
                ulong priv = s.U64("priv");
                cfg.PrivateKeySource = () => priv;
                var dialed = Task.Run(() => SnetStream.Connect("127.0.0.1", port, cfg));
                var raw = ln.AcceptTcpClient();
                var rs = raw.GetStream();
                rs.ReadTimeout = 10000;
                SnetStream cli = null;
                Task<string> pending = null;
                Func<SnetStream> client = () =>
                {
                    if (cli == null)
                    {
                        Assert.IsTrue(dialed.Wait(10000), "no session");
                        cli = dialed.Result;
                        Assert.AreEqual(s.U64("connID"), cli.ID);
                    }
                    return cli;
                };
                Func<int, string> read = n =>
                {
                    var b = new byte[n];
                    int got = 0;
                    while (got < n)
                    {
                        got += client().Read(b, got, n - got);
                    }
                    return Encoding.ASCII.GetString(b);
                };
                try
                {
                    int step = 0;
                    foreach (var st in s.Arr("steps"))
                    {
                        var what = "step " + step++ + " " + st.Str("op") + (st.Has("what") ? " " + st.Str("what") : "");
                        switch (st.Str("op"))
                        {
                            case "expect":
                                var want = st.Hex("hex");
                                var got = new byte[want.Length];
                                int n = 0;
                                while (n < got.Length)
                                {
                                    int m = rs.Read(got, n, got.Length - n);
                                    Assert.Greater(m, 0, what + ": connection closed");
                                    n += m;
                                }
                                Assert.AreEqual(Bytes.ToHex(want), Bytes.ToHex(got), what);
                                break;
                            case "send":
                                var b = st.Hex("hex");
                                rs.Write(b, 0, b.Length);
                                break;
                            case "write":
                                var t = Encoding.ASCII.GetBytes(st.Str("text"));
                                client().Write(t, 0, t.Length);
                                break;
                            case "read":
                                Assert.AreEqual(st.Str("text"), read(st.Str("text").Length), what);
                                break;
                            case "startRead":
                                client();
                                int len = st.Str("text").Length;
                                pending = Task.Run(() => read(len));
                                wantPending = st.Str("text");
                                break;
                            case "finishRead":
                                Assert.IsTrue(pending.Wait(10000), what + ": read did not finish");
                                Assert.AreEqual(wantPending, pending.Result, what);
                                break;
                            case "cut":
                                raw.Close();
                                raw = ln.AcceptTcpClient();
                                rs = raw.GetStream();
                                rs.ReadTimeout = 10000;
                                break;
                            default:
                                Assert.Fail("unknown op " + st.Str("op"));
                                break;
                        }
                    }
                    Assert.AreEqual(1, client().Resumes);
                }
                finally
                {
                    raw.Close();
                    if (cli != null)
                    {
                        cli.Dispose();
                    }
                }
            }
            finally
            {
                ln.Stop();
            }
        }

        string wantPending;
    }
}
