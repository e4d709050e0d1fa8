using System.Security.Cryptography;

namespace Fastway.Snet
{
    /// <summary>The 64-bit Diffie-Hellman of PROTOCOL.md §3: P = 2^64 - 59, G = 5. Kept for
    /// compatibility only: a 64-bit group offers no real security.</summary>
    public static class Dh64
    {
        /// <summary>The prime modulus.</summary>
        public const ulong P = 0xffffffffffffffc5UL;
        /// <summary>The generator.</summary>
        public const ulong G = 5;

        // 2^64 mod P: reduces the high half of a 128-bit product.
        const ulong TwoTo64ModP = ~P + 1; // 59

        /// <summary>A random non-zero private key.</summary>
        public static ulong PrivateKey()
        {
            var b = new byte[8];
            using (var rng = RandomNumberGenerator.Create())
            {
                while (true)
                {
                    rng.GetBytes(b);
                    ulong k = Wire.GetU64(b, 0);
                    if (k != 0)
                    {
                        return k;
                    }
                }
            }
        }

        /// <summary>G^priv mod P.</summary>
        public static ulong PublicKey(ulong priv)
        {
            return PowMod(G, priv);
        }

        /// <summary>peerPub^priv mod P, the shared secret.</summary>
        public static ulong Secret(ulong priv, ulong peerPub)
        {
            return PowMod(peerPub % P, priv);
        }

        /// <summary>Whether a peer's public key may be used: 0 modulo P is refused.</summary>
        public static bool ValidPublic(ulong pub)
        {
            return pub % P != 0;
        }

        /// <summary>base^exp mod P for base &lt; P (square and multiply).</summary>
        internal static ulong PowMod(ulong b, ulong exp)
        {
            ulong r = 1;
            while (exp != 0)
            {
                if ((exp & 1) == 1)
                {
                    r = MulMod(r, b);
                }
                b = MulMod(b, b);
                exp >>= 1;
            }
            return r;
        }

        /// <summary>a*b mod P for a, b &lt; P, through a 128-bit product.</summary>
        internal static ulong MulMod(ulong a, ulong b)
        {
            ulong hi, lo;
            Mul128(a, b, out hi, out lo);
            // hi·2^64 + lo ≡ hi·59 + lo (mod P); each round shrinks hi by 2^64/59.
            while (hi != 0)
            {
                ulong h2, l2;
                Mul128(hi, TwoTo64ModP, out h2, out l2);
                lo += l2;
                if (lo < l2)
                {
                    h2++;
                }
                hi = h2;
            }
            return lo >= P ? lo - P : lo;
        }

        static void Mul128(ulong a, ulong b, out ulong hi, out ulong lo)
        {
            ulong a0 = (uint)a, a1 = a >> 32, b0 = (uint)b, b1 = b >> 32;
            ulong p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
            ulong mid = (p00 >> 32) + (uint)p01 + (uint)p10;
            lo = (mid << 32) | (uint)p00;
            hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
        }
    }
}
