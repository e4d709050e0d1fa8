using System;
using System.Diagnostics;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace Fastway.Tests
{
    /// <summary>The SDK against the real gateway binary and the Go backend
    /// (testserver): server 1 echoes, server 2 takes commands.</summary>
    [TestFixture]
    public class GatewayTests
    {
        const int MaxConn = 4;
        Gateway gw;

        [TestFixtureSetUp]
        public void Start()
        {
            gw = new Gateway("-ClientMaxConn=" + MaxConn, "-ClientIdleTimeout=1s");
        }

        [TearDown]
        public void ShowLogOnFailure()
        {
            if (TestContext.CurrentContext.Result.Status != TestStatus.Passed)
            {
                Console.WriteLine("gateway log:\n" + gw.Proc.Log() + "\nbackend:\n" + gw.Backend.Log());
            }
        }

        [TestFixtureTearDown]
        public void Stop()
        {
            if (gw != null)
            {
                gw.Dispose();
            }
        }

        EndPoint Client(EndPointConfig cfg = null)
        {
            return new EndPoint(gw.DialTcp(), cfg ?? new EndPointConfig { PingInterval = TimeSpan.FromMilliseconds(300) });
        }

        static byte[] B(string s) { return Encoding.UTF8.GetBytes(s); }

        [Test, Timeout(30000)]
        public void DialEchoClose()
        {
            using (var ep = Client())
            {
                int mark = gw.Backend.Mark;
                var c = ep.Dial(1);
                // Dial returns at once; the Accept may already be in.
                Assert.That(c.State, Is.EqualTo(ConnState.Dialing).Or.EqualTo(ConnState.Open));
                Assert.AreSame(Conn.NoMsg, c.Receive());
                Assert.IsTrue(c.Send(B("sent while dialing")));
                Assert.AreEqual("sent while dialing", Wait.Text(c));
                Assert.AreEqual(ConnState.Open, c.State);
                Assert.AreNotEqual(0u, c.ID);
                Assert.AreEqual(1u, c.RemoteID);
                gw.Backend.WaitLine(mark, "accept 1 " + c.ID + " ");
                Assert.IsTrue(c.Send(new byte[0]));
                var empty = Wait.Message(c);
                Assert.IsNotNull(empty);
                Assert.AreEqual(0, empty.Length);
                Assert.AreNotSame(Conn.NoMsg, empty);
                c.Close();
                Assert.IsNull(c.Receive());
                Assert.IsFalse(c.Send(B("after close")));
                gw.Backend.WaitLine(mark, "eof 1 " + c.ID);
                Assert.IsNull(c.Error);
            }
        }

        [Test, Timeout(30000)]
        public void DialAsyncAndReceiveAsync()
        {
            using (var ep = Client())
            {
                var c = ep.DialAsync(1).Result;
                Assert.AreEqual(ConnState.Open, c.State);
                using (var cts = new CancellationTokenSource())
                {
                    var r = c.ReceiveAsync(cts.Token);
                    Assert.IsFalse(r.IsCompleted);
                    Assert.IsTrue(c.SendAsync(B("async")).Result);
                    Assert.IsTrue(r.Wait(10000));
                    Assert.AreEqual("async", Encoding.UTF8.GetString(r.Result));
                    // A cancelled receive loses no message.
                    var r2 = c.ReceiveAsync(cts.Token);
                    cts.Cancel();
                    Assert.Throws<AggregateException>(() => r2.Wait(10000));
                    Assert.IsTrue(r2.IsCanceled);
                }
                c.Send(B("after cancel"));
                Assert.AreEqual("after cancel", Encoding.UTF8.GetString(c.ReceiveAsync().Result));
                c.Close();
                Assert.IsNull(c.ReceiveAsync().Result);
            }
        }

        [Test, Timeout(30000)]
        public void Refused()
        {
            using (var ep = Client())
            {
                var c = ep.Dial(99);
                Wait.Until(() => c.IsClosed, "the refusal");
                Assert.IsInstanceOf<RefusedException>(c.Error);
                Assert.AreEqual(99u, ((RefusedException)c.Error).RemoteID);
                Assert.IsNull(c.Receive());
                Assert.IsFalse(c.Send(B("x")));
                var e = Assert.Throws<AggregateException>(() => ep.DialAsync(98).Wait(10000));
                Assert.IsInstanceOf<RefusedException>(e.InnerException);
                // The endpoint is fine after refusals; pipelined dials keep their order.
                var a = ep.Dial(1);
                var b = ep.Dial(97);
                var d = ep.Dial(2);
                Wait.Until(() => a.State == ConnState.Open && b.IsClosed && d.State == ConnState.Open, "three replies");
                Assert.IsInstanceOf<RefusedException>(b.Error);
                Assert.IsFalse(ep.IsClosed);
            }
        }

        [Test, Timeout(30000)]
        public void ClientMaxConnRefusal()
        {
            using (var ep = Client())
            {
                var conns = new Conn[MaxConn];
                for (int i = 0; i < MaxConn; i++)
                {
                    conns[i] = ep.DialAsync(1).Result;
                }
                var over = ep.Dial(1);
                Wait.Until(() => over.IsClosed, "the refusal past ClientMaxConn");
                Assert.IsInstanceOf<RefusedException>(over.Error);
                int mark = gw.Backend.Mark;
                conns[0].Close();
                gw.Backend.WaitLine(mark, "eof 1 " + conns[0].ID);
                // The gateway freed the slot when it took our Close: a new dial gets it.
                Conn again = null;
                Wait.Until(() =>
                {
                    again = ep.Dial(1);
                    Wait.Until(() => again.State != ConnState.Dialing, "a reply");
                    return again.State == ConnState.Open;
                }, "a dial after the close");
                again.Send(B("fits"));
                Assert.AreEqual("fits", Wait.Text(again));
            }
        }

        [Test, Timeout(30000)]
        public void ServerClosesAndDialsBack()
        {
            using (var ep = Client())
            {
                var ctl = ep.DialAsync(2).Result;
                Assert.IsNull(ep.Accept());
                int mark = gw.Backend.Mark;
                ctl.Send(B("dialme"));
                var reply = Wait.Text(ctl);
                StringAssert.StartsWith("dialed ", reply);
                Conn back = null;
                Wait.Until(() => (back = ep.Accept()) != null, "the server's dial");
                Assert.AreEqual(reply.Substring(7), back.ID.ToString());
                Assert.AreEqual(2u, back.RemoteID);
                Assert.AreEqual("hello " + back.ID, Wait.Text(back));
                back.Send(B("echo on the server's conn"));
                Assert.AreEqual("echo on the server's conn", Wait.Text(back));
                // AcceptAsync sees the next one.
                var next = ep.AcceptAsync();
                ctl.Send(B("dialme"));
                StringAssert.StartsWith("dialed ", Wait.Text(ctl));
                Assert.IsTrue(next.Wait(10000));
                Assert.AreEqual("hello " + next.Result.ID, Wait.Text(next.Result));
                // The server closes the control conn: queued messages first, then null.
                ctl.Send(B("close"));
                Wait.Until(() => ctl.IsClosed, "the server's close");
                Assert.IsNull(ctl.Receive());
                Assert.IsNull(ctl.Error);
                back.Close();
                gw.Backend.WaitLine(mark, "eof 0 " + back.ID);
            }
        }

        /// <summary>Keep-alive: with the gateway's -ClientIdleTimeout at 1 s, an endpoint
        /// that Pings every 300 ms and sends nothing else stays open past several idle
        /// timeouts; one without Pings is closed by the gateway.</summary>
        [Test, Timeout(30000)]
        public void PingKeepsAlive()
        {
            using (var quiet = Client(new EndPointConfig { PingInterval = TimeSpan.FromMilliseconds(-1) }))
            using (var ep = Client())
            {
                var c = ep.DialAsync(1).Result;
                var sw = Stopwatch.StartNew();
                Wait.Until(() => ep.PingsReceived >= 8, "8 Ping answers");
                Assert.Greater(sw.Elapsed, TimeSpan.FromSeconds(2));
                Assert.IsFalse(ep.IsClosed, "closed: " + ep.Error);
                c.Send(B("alive"));
                Assert.AreEqual("alive", Wait.Text(c));
                Wait.Until(() => quiet.IsClosed, "the idle timeout of the endpoint without Pings", TimeSpan.FromSeconds(10));
                Assert.IsInstanceOf<ClosedException>(quiet.Error);
            }
        }

        /// <summary>1,000 messages each way of 0 to 64 KiB on one virtual connection,
        /// checked byte for byte on both sides, with the Task-based calls.</summary>
        [Test, Timeout(120000)]
        public void ThousandMessagesEachWay()
        {
            const int count = 1000, max = 64 << 10;
            const ulong seed = 17;
            using (var ep = Client())
            {
                var c = ep.DialAsync(2).Result;
                var sw = Stopwatch.StartNew();
                c.Send(B("stream " + seed + " " + count + " " + max));
                long sentBytes = 0, gotBytes = 0;
                var sender = Task.Run(async () =>
                {
                    for (int i = 0; i < count; i++)
                    {
                        var m = StreamGen.Message(seed + 1, i, max);
                        Assert.IsTrue(await c.SendAsync(m));
                        sentBytes += m.Length;
                    }
                });
                for (int i = 0; i < count; i++)
                {
                    var got = c.ReceiveAsync().Result;
                    Assert.IsNotNull(got, "closed at message " + i + ": " + c.Error);
                    var want = StreamGen.Message(seed, i, max);
                    Assert.AreEqual(want.Length, got.Length, "message " + i);
                    Assert.IsTrue(Equal(want, got), "message " + i + " differs");
                    gotBytes += got.Length;
                }
                Assert.IsTrue(sender.Wait(60000));
                Assert.AreEqual("ok " + sentBytes, Encoding.UTF8.GetString(c.ReceiveAsync().Result));
                Console.WriteLine("1000 messages each way: {0} bytes sent, {1} received in {2} ms", sentBytes, gotBytes, sw.ElapsedMilliseconds);
            }
        }

        [Test, Timeout(60000)]
        public void PollingExampleAsUnityWould()
        {
            var client = new PollingClient { Port = gw.ClientPort, Messages = 20, Log = s => { } };
            client.Start();
            var sw = Stopwatch.StartNew();
            int frames = 0;
            while (!client.Done)
            {
                client.Update(); // one frame; the test plays the engine's loop
                frames++;
                Assert.Less(sw.Elapsed, Wait.Timeout, "the example did not finish");
                Thread.Sleep(1);
            }
            client.OnDestroy();
            Console.WriteLine("polling example: 20 echoes in {0} frames", frames);
        }

        internal static bool Equal(byte[] a, byte[] b)
        {
            if (a.Length != b.Length)
            {
                return false;
            }
            for (int i = 0; i < a.Length; i++)
            {
                if (a[i] != b[i])
                {
                    return false;
                }
            }
            return true;
        }
    }
}
