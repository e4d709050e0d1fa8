namespace Fastway.Snet
{
    /// <summary>The RC4 stream cipher, as snet uses it (PROTOCOL.md §3): kept for
    /// compatibility only, it is not secure. One thread at a time.</summary>
    public sealed class Rc4
    {
        readonly byte[] s = new byte[256];
        byte i, j;

        /// <summary>Keys the cipher (key of 1 to 256 bytes).</summary>
        public Rc4(byte[] key)
        {
            for (int k = 0; k < 256; k++)
            {
                s[k] = (byte)k;
            }
            byte jj = 0;
            for (int k = 0; k < 256; k++)
            {
                jj = (byte)(jj + s[k] + key[k % key.Length]);
                byte t = s[k];
                s[k] = s[jj];
                s[jj] = t;
            }
        }

        /// <summary>XORs dst[dstOff..dstOff+count) with src[srcOff..] and the next count
        /// bytes of keystream; dst and src may be the same.</summary>
        public void Xor(byte[] src, int srcOff, byte[] dst, int dstOff, int count)
        {
            byte ii = i, jj = j;
            var st = s;
            for (int k = 0; k < count; k++)
            {
                ii++;
                byte si = st[ii];
                jj = (byte)(jj + si);
                byte sj = st[jj];
                st[ii] = sj;
                st[jj] = si;
                dst[dstOff + k] = (byte)(src[srcOff + k] ^ st[(byte)(si + sj)]);
            }
            i = ii;
            j = jj;
        }

        /// <summary>XORs b[off..off+count) in place.</summary>
        public void Xor(byte[] b, int off, int count)
        {
            Xor(b, off, b, off, count);
        }
    }
}
