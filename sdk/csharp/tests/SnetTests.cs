using System;
using System.Diagnostics;
using System.Text;
using System.Threading.Tasks;
using Fastway.Snet;
using NUnit.Framework;

namespace Fastway.Tests
{
    /// <summary>snet through the real gateway (-ClientSnetEnable, plain and
    /// -ClientSnetEncrypt) while a proxy cuts the TCP connection every ~200 ms: at least
    /// 4 MiB each way, every message byte-exact and in order, one virtual connection
    /// throughout, and an explicit TryReconnect.</summary>
    [TestFixture]
    public class SnetTests
    {
        const int Max = 16 << 10;   // messages of 0 to 16 KiB
        const long Volume = 4 << 20; // per direction, at the least
        const int MinCuts = 5;

        [Test, Timeout(150000)]
        public void PlainThroughCuts() { Run(false, 1); }

        [Test, Timeout(150000)]
        public void EncryptedThroughCuts() { Run(true, 2); }

        static void Run(bool crypt, int seed)
        {
            using (var gw = new Gateway("-ClientSnetEnable", crypt ? "-ClientSnetEncrypt" : ""))
            using (var proxy = new CutProxy(gw.ClientPort, seed))
            {
                var snet = SnetStream.Connect("127.0.0.1", proxy.Port, new SnetConfig { EnableCrypt = crypt });
                var ep = new EndPoint(snet, new EndPointConfig
                {
                    PingInterval = TimeSpan.FromSeconds(1),
                    PingTimeout = TimeSpan.FromSeconds(2),
                    TimeoutCallback = () => { snet.TryReconnect(); return true; },
                });
                try
                {
                    var c = ep.DialAsync(2).Result;
                    proxy.Arm();
                    var sw = Stopwatch.StartNew();
                    long each = 0;
                    int rounds = 0, messages = 0;
                    ulong s = (ulong)(1000 * seed);
                    while (each < Volume || proxy.Cuts < MinCuts)
                    {
                        int count = CountFor(s, each < Volume ? Volume - each : 256 << 10);
                        each += Stream(c, s, count);
                        messages += count;
                        s += 2;
                        rounds++;
                        Assert.Less(sw.Elapsed, TimeSpan.FromSeconds(120), "too slow: " + each + " bytes, " + proxy.Cuts + " cuts");
                    }
                    Assert.GreaterOrEqual(snet.Resumes, 1);
                    Console.WriteLine("snet {0}: {1} bytes received ({2} messages each way, {3} rounds) in {4} ms, {5} cuts, {6} resumes; the proxy forwarded {7} bytes up, {8} down",
                        crypt ? "encrypted" : "plain", each, messages, rounds, sw.ElapsedMilliseconds, proxy.Cuts, snet.Resumes, proxy.Up, proxy.Down);

                    // An explicit reconnect, as a ping timeout would ask.
                    int before = snet.Resumes;
                    snet.TryReconnect();
                    c.Send(Encoding.UTF8.GetBytes("stream 7 3 100"));
                    Stream(c, 7, 3, false);
                    Wait.Until(() => snet.Resumes > before, "the resume TryReconnect started");
                    Assert.IsFalse(ep.IsClosed, "closed: " + ep.Error);
                    Assert.AreEqual(ConnState.Open, c.State);
                }
                finally
                {
                    ep.Close();
                }
                // The gateway resumed every cut: no refused resume, no second session.
                StringAssert.DoesNotContain("refused", gw.Proc.Log());
            }
        }

        // CountFor is how many messages both streams s and s+1 need to carry bytes each.
        static int CountFor(ulong s, long bytes)
        {
            long a = 0, b = 0;
            int n = 0;
            while (a < bytes || b < bytes)
            {
                a += StreamGen.Message(s, n, Max).Length;
                b += StreamGen.Message(s + 1, n, Max).Length;
                n++;
            }
            return n;
        }

        // Stream runs one "stream" command: count messages each way, checked on both
        // sides; it returns the bytes received.
        static long Stream(Conn c, ulong s, int count, bool ask = true, int max = Max)
        {
            if (ask)
            {
                Assert.IsTrue(c.Send(Encoding.UTF8.GetBytes("stream " + s + " " + count + " " + max)));
            }
            else
            {
                max = 100;
            }
            long sent = 0, got = 0;
            var sender = Task.Run(async () =>
            {
                for (int i = 0; i < count; i++)
                {
                    var m = StreamGen.Message(s + 1, i, max);
                    Assert.IsTrue(await c.SendAsync(m), "closed: " + c.Error);
                    sent += m.Length;
                }
            });
            for (int i = 0; i < count; i++)
            {
                var m = c.ReceiveAsync().Result;
                Assert.IsNotNull(m, "closed at message " + i + ": " + c.Error + " / " + c.EndPoint.Error);
                Assert.IsTrue(GatewayTests.Equal(StreamGen.Message(s, i, max), m), "message " + i + " of stream " + s + " corrupted or out of order");
                got += m.Length;
            }
            Assert.IsTrue(sender.Wait(60000), "sending did not finish");
            Assert.AreEqual("ok " + sent, Encoding.UTF8.GetString(c.ReceiveAsync().Result));
            return got;
        }
    }
}
