using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace Fastway.Tests
{
    /// <summary>A loopback TCP proxy that, once armed, cuts every connection it forwards
    /// after a random lifetime of 100 to 300 ms (a mean of 200), counted from when it
    /// opened or the proxy armed, whichever is later: the C# twin of the Go
    /// internal/faultproxy.NewTimed. Its sockets get 4 KiB buffers before they connect
    /// (the kernel doubles that) and it copies through 2 KiB, so it holds about 14 KiB of
    /// a direction itself, a stand-in for one TCP-terminating hop.</summary>
    sealed class CutProxy : IDisposable
    {
        const int SockBuf = 4 << 10;
        const int CopyBuf = 2 << 10;

        readonly Socket listener;
        readonly int target;
        readonly Random rng;
        readonly object mu = new object();
        readonly List<Pair> pairs = new List<Pair>();
        readonly Thread acceptor, cutter;
        bool armed, closed;
        long armedAt;
        int cuts;
        long up, down;
        readonly System.Diagnostics.Stopwatch clock = System.Diagnostics.Stopwatch.StartNew();

        sealed class Pair
        {
            public Socket A, B;
            public long Opened, CutAt = long.MaxValue;
            int done;

            public bool Cut()
            {
                if (Interlocked.Exchange(ref done, 1) != 0)
                {
                    return false;
                }
                Close(A);
                Close(B);
                return true;
            }
        }

        public CutProxy(int targetPort, int seed)
        {
            target = targetPort;
            rng = new Random(seed);
            listener = NewSocket();
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(16);
            acceptor = new Thread(AcceptLoop) { IsBackground = true, Name = "proxy accept" };
            cutter = new Thread(CutLoop) { IsBackground = true, Name = "proxy cutter" };
            acceptor.Start();
            cutter.Start();
        }

        public int Port { get { return ((IPEndPoint)listener.LocalEndPoint).Port; } }

        public int Cuts { get { lock (mu) { return cuts; } } }

        /// <summary>Bytes forwarded client to target, and back.</summary>
        public long Up { get { return Interlocked.Read(ref up); } }

        public long Down { get { return Interlocked.Read(ref down); } }

        static Socket NewSocket()
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.SendBufferSize = SockBuf;
            s.ReceiveBufferSize = SockBuf;
            return s;
        }

        static void Close(Socket s)
        {
            try
            {
                s.Shutdown(SocketShutdown.Both);
            }
            catch (Exception)
            {
                // not connected any more
            }
            s.Close();
        }

        public void Arm()
        {
            lock (mu)
            {
                armed = true;
                armedAt = clock.ElapsedMilliseconds;
                foreach (var p in pairs)
                {
                    ScheduleLocked(p);
                }
                Monitor.PulseAll(mu);
            }
        }

        void ScheduleLocked(Pair p)
        {
            p.CutAt = Math.Max(p.Opened, armedAt) + 100 + rng.Next(201);
        }

        void AcceptLoop()
        {
            while (true)
            {
                Socket a;
                try
                {
                    a = listener.Accept();
                }
                catch (Exception)
                {
                    return; // closed
                }
                var b = NewSocket();
                try
                {
                    b.Connect(IPAddress.Loopback, target);
                }
                catch (Exception)
                {
                    Close(a);
                    b.Close();
                    continue;
                }
                a.NoDelay = b.NoDelay = true;
                var p = new Pair { A = a, B = b, Opened = clock.ElapsedMilliseconds };
                lock (mu)
                {
                    if (closed)
                    {
                        p.Cut();
                        return;
                    }
                    pairs.Add(p);
                    if (armed)
                    {
                        ScheduleLocked(p);
                        Monitor.PulseAll(mu);
                    }
                }
                Copy(p, a, b, true);
                Copy(p, b, a, false);
            }
        }

        void Copy(Pair p, Socket from, Socket to, bool isUp)
        {
            new Thread(() =>
            {
                var buf = new byte[CopyBuf];
                try
                {
                    while (true)
                    {
                        int n = from.Receive(buf);
                        if (n <= 0)
                        {
                            break;
                        }
                        int off = 0;
                        while (off < n)
                        {
                            off += to.Send(buf, off, n - off, SocketFlags.None);
                        }
                        if (isUp)
                        {
                            Interlocked.Add(ref up, n);
                        }
                        else
                        {
                            Interlocked.Add(ref down, n);
                        }
                    }
                }
                catch (Exception)
                {
                    // cut, or the other end went away
                }
                p.Cut();
                lock (mu)
                {
                    pairs.Remove(p);
                }
            }) { IsBackground = true, Name = "proxy copy" }.Start();
        }

        void CutLoop()
        {
            lock (mu)
            {
                while (!closed)
                {
                    long now = clock.ElapsedMilliseconds, next = long.MaxValue;
                    foreach (var p in pairs.ToArray())
                    {
                        if (p.CutAt <= now)
                        {
                            if (p.Cut())
                            {
                                cuts++;
                            }
                            pairs.Remove(p);
                        }
                        else
                        {
                            next = Math.Min(next, p.CutAt);
                        }
                    }
                    Monitor.Wait(mu, next == long.MaxValue ? 1000 : (int)Math.Max(1, next - now));
                }
            }
        }

        public void Dispose()
        {
            lock (mu)
            {
                closed = true;
                foreach (var p in pairs)
                {
                    p.Cut();
                }
                pairs.Clear();
                Monitor.PulseAll(mu);
            }
            listener.Close();
            acceptor.Join(5000);
            cutter.Join(5000);
        }
    }
}
