using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using NUnit.Framework;

namespace Fastway.Tests
{
    /// <summary>Where build.sh put things (environment variables).</summary>
    static class Env
    {
        public static string Get(string name)
        {
            var v = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrEmpty(v))
            {
                Assert.Fail("$" + name + " is not set: run the tests with sdk/csharp/build.sh");
            }
            return v;
        }

        /// <summary>proto/testdata/vectors.json, the golden vectors the Go tests read too.</summary>
        public static JObj Vectors()
        {
            var path = Path.Combine(Get("FASTWAY_ROOT"), "proto", "testdata", "vectors.json");
            return new JObj(Json.Parse(File.ReadAllText(path)));
        }
    }

    /// <summary>Bounded waits for events.</summary>
    static class Wait
    {
        public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

        /// <summary>Polls cond (every millisecond or so) until it holds or timeout passes.</summary>
        public static void Until(Func<bool> cond, string what, TimeSpan? timeout = null)
        {
            var sw = Stopwatch.StartNew();
            var limit = timeout ?? Timeout;
            var spin = new SpinWait();
            while (!cond())
            {
                if (sw.Elapsed > limit)
                {
                    Assert.Fail("timed out after " + limit + " waiting for " + what);
                }
                if (spin.NextSpinWillYield)
                {
                    Thread.Sleep(1);
                }
                spin.SpinOnce();
            }
        }

        /// <summary>Polls a Conn until a message arrives (Receive returns one, not NoMsg).</summary>
        public static byte[] Message(Conn c, TimeSpan? timeout = null)
        {
            byte[] m = null;
            Until(() => { m = c.Receive(); return m != Conn.NoMsg; }, "a message on " + c, timeout);
            return m;
        }

        public static string Text(Conn c)
        {
            var m = Message(c);
            Assert.IsNotNull(m, "closed instead of a message: " + c.Error);
            return Encoding.UTF8.GetString(m);
        }
    }

    /// <summary>The test streams of testserver's streamMsg: message i of stream seed.</summary>
    static class StreamGen
    {
        public static byte[] Message(ulong seed, int i, int max)
        {
            ulong g = seed * 1000003UL + (ulong)i;
            int n = i == 0 ? 0 : i == 1 ? max : (int)(Next(ref g) % (ulong)(max + 1));
            var b = new byte[n];
            for (int j = 0; j < n; j += 8)
            {
                ulong v = Next(ref g);
                for (int k = 0; k < 8 && j + k < n; k++)
                {
                    b[j + k] = (byte)(v >> (8 * k));
                }
            }
            return b;
        }

        static ulong Next(ref ulong s)
        {
            s += 0x9E3779B97F4A7C15UL;
            ulong z = s;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>A child process whose output lines are kept, killed on Dispose.</summary>
    class Child : IDisposable
    {
        readonly Process p;
        readonly List<string> lines = new List<string>();
        readonly string name;

        public Child(string name, string file, string args, string dir)
        {
            this.name = name;
            var si = new ProcessStartInfo(file, args)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                WorkingDirectory = dir,
            };
            si.EnvironmentVariables.Remove("FASTWAY_AUTH_PASSWORD");
            p = new Process { StartInfo = si };
            p.Start();
            // Threads of their own, not Process's async reads: those hold thread-pool
            // threads, which the SDK's Task continuations need.
            Pump(p.StandardOutput);
            Pump(p.StandardError);
        }

        void Pump(StreamReader r)
        {
            new Thread(() =>
            {
                string line;
                while ((line = r.ReadLine()) != null)
                {
                    Add(line);
                }
            }) { IsBackground = true, Name = name + " output" }.Start();
        }

        void Add(string line)
        {
            if (line == null)
            {
                return;
            }
            lock (lines)
            {
                lines.Add(line);
                Monitor.PulseAll(lines);
            }
        }

        public int Mark { get { lock (lines) { return lines.Count; } } }

        /// <summary>Waits for the first line at index since or later that contains every
        /// one of parts, and returns it.</summary>
        public string WaitLine(int since, params string[] parts)
        {
            var sw = Stopwatch.StartNew();
            lock (lines)
            {
                while (true)
                {
                    for (int i = since; i < lines.Count; i++)
                    {
                        bool all = true;
                        foreach (var part in parts)
                        {
                            all &= (" " + lines[i] + " ").Contains(part);
                        }
                        if (all)
                        {
                            return lines[i];
                        }
                    }
                    if (p.HasExited && sw.Elapsed > TimeSpan.FromSeconds(1))
                    {
                        Assert.Fail(name + " exited (" + p.ExitCode + ") without logging " + string.Join(" ", parts) + ":\n" + Log());
                    }
                    if (sw.Elapsed > Wait.Timeout)
                    {
                        Assert.Fail(name + " logged no " + string.Join(" ", parts) + " within " + Wait.Timeout + ":\n" + Log());
                    }
                    Monitor.Wait(lines, 100);
                }
            }
        }

        public string Log()
        {
            lock (lines)
            {
                return string.Join("\n", lines);
            }
        }

        public void Dispose()
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill();
                }
                p.WaitForExit(10000);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
            p.Dispose();
        }
    }

    /// <summary>The real fastway binary on loopback ports, with the Go backend
    /// (testserver: server 1 echoes, server 2 takes commands) connected to it.</summary>
    sealed class Gateway : IDisposable
    {
        public const string Password = "secret";
        public readonly Child Proc;
        public readonly Child Backend;
        public readonly int ClientPort, ServerPort;
        readonly string dir;

        public Gateway(params string[] flags)
        {
            dir = Path.Combine(Path.GetTempPath(), "fastway-cs-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            var args = "-ClientAddr=127.0.0.1:0 -ServerAddr=127.0.0.1:0 -ServerAuthPassword=" + Password +
                " -ClientSendQueueBytes=64M -ClientSendChanSize=100000 " + string.Join(" ", flags);
            Proc = new Child("fastway", Env.Get("FASTWAY_BIN"), args, dir);
            try
            {
                ClientPort = Port(Proc.WaitLine(0, "msg=listening", "side=client"));
                ServerPort = Port(Proc.WaitLine(0, "msg=listening", "side=server"));
                int mark = Proc.Mark;
                Backend = new Child("testserver", Env.Get("FASTWAY_TESTSERVER"),
                    "-addr=127.0.0.1:" + ServerPort + " -key=" + Password, dir);
                Backend.WaitLine(0, "ready");
                Proc.WaitLine(mark, "msg=\"server registered\"", "id=1 ");
                Proc.WaitLine(mark, "msg=\"server registered\"", "id=2 ");
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        static int Port(string line)
        {
            foreach (var kv in line.Split(' '))
            {
                if (kv.StartsWith("addr=", StringComparison.Ordinal))
                {
                    return int.Parse(kv.Substring(kv.LastIndexOf(':') + 1));
                }
            }
            Assert.Fail("no addr in " + line);
            return 0;
        }

        /// <summary>A plain TCP connection to the client port.</summary>
        public Stream DialTcp()
        {
            var c = new TcpClient();
            c.NoDelay = true;
            c.Connect(IPAddress.Loopback, ClientPort);
            return c.GetStream();
        }

        public void Dispose()
        {
            if (Backend != null)
            {
                Backend.Dispose();
            }
            Proc.Dispose();
            try
            {
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
                // left in the temporary directory
            }
        }
    }

    /// <summary>A stream that hands out reads and takes writes in random small pieces,
    /// to attack partial reads.</summary>
    sealed class ChunkedStream : Stream
    {
        readonly Stream inner;
        readonly Random rng;
        readonly int max;

        public ChunkedStream(Stream inner, int seed, int max)
        {
            this.inner = inner;
            rng = new Random(seed);
            this.max = max;
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            return inner.Read(buffer, offset, Math.Min(count, 1 + rng.Next(max)));
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            while (count > 0)
            {
                int n = Math.Min(count, 1 + rng.Next(max));
                inner.Write(buffer, offset, n);
                offset += n;
                count -= n;
            }
        }

        public override bool CanRead { get { return true; } }
        public override bool CanWrite { get { return true; } }
        public override bool CanSeek { get { return false; } }
        public override long Length { get { throw new NotSupportedException(); } }
        public override long Position { get { throw new NotSupportedException(); } set { throw new NotSupportedException(); } }
        public override void Flush() { inner.Flush(); }
        public override long Seek(long o, SeekOrigin s) { throw new NotSupportedException(); }
        public override void SetLength(long v) { throw new NotSupportedException(); }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
