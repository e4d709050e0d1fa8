using System;

namespace Fastway.Snet
{
    /// <summary>The most recent bytes written to a stream, as sent on the wire, addressed
    /// by their offset in the stream: byte o is at buf[o % buf.Length]. It keeps at most
    /// Capacity bytes and allocates as bytes are written, from 1 KiB doubling up to
    /// Capacity. Not thread-safe.</summary>
    internal sealed class Ring
    {
        const int MinAlloc = 1 << 10;

        byte[] buf = new byte[0];
        int max;
        int held;   // the last held bytes before total are kept
        ulong total; // bytes ever appended

        internal Ring(int capacity)
        {
            max = capacity;
        }

        internal int Capacity { get { return max; } }

        internal int Allocated { get { return buf.Length; } }

        internal ulong Kept { get { return (ulong)held; } }

        internal ulong Total { get { return total; } }

        /// <summary>Raises the capacity to n if it is below; never lowers it.</summary>
        internal void Raise(int n)
        {
            max = Math.Max(max, n);
        }

        /// <summary>Appends p[off..off+count), XORed with c's keystream unless c is null.</summary>
        internal void Write(byte[] p, int off, int count, Rc4 c)
        {
            int want = Math.Min(max, held + count);
            if (buf.Length < want)
            {
                Grow(want);
            }
            held = Math.Min(held + count, buf.Length);
            while (count > 0)
            {
                int at = (int)(total % (ulong)buf.Length);
                int n = Math.Min(buf.Length - at, count);
                if (c != null)
                {
                    c.Xor(p, off, buf, at, n);
                }
                else
                {
                    Buffer.BlockCopy(p, off, buf, at, n);
                }
                total += (ulong)n;
                off += n;
                count -= n;
            }
        }

        void Grow(int n)
        {
            int size = MinAlloc;
            while (size < n)
            {
                size *= 2;
            }
            size = Math.Min(size, max);
            var nb = new byte[size];
            ulong from = total - (ulong)held;
            for (ulong o = from; o < total; o++)
            {
                nb[(int)(o % (ulong)size)] = buf[(int)(o % (ulong)buf.Length)];
            }
            buf = nb;
        }

        /// <summary>The bytes from stream offset from to the end, in at most two pieces of
        /// the ring; false if they are no longer held.</summary>
        internal bool Since(ulong from, out ArraySegment<byte> first, out ArraySegment<byte> second)
        {
            first = second = new ArraySegment<byte>(buf, 0, 0);
            if (from > total || total - from > (ulong)held)
            {
                return false;
            }
            int n = (int)(total - from);
            if (n == 0)
            {
                return true;
            }
            int start = (int)(from % (ulong)buf.Length);
            if (start + n <= buf.Length)
            {
                first = new ArraySegment<byte>(buf, start, n);
                return true;
            }
            first = new ArraySegment<byte>(buf, start, buf.Length - start);
            second = new ArraySegment<byte>(buf, 0, start + n - buf.Length);
            return true;
        }
    }
}
