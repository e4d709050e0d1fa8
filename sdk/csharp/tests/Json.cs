using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Fastway.Tests
{
    /// <summary>A minimal JSON reader for the shared vectors file: objects become
    /// Dictionary&lt;string, object&gt;, arrays List&lt;object&gt;, numbers double, plus
    /// strings, bools and null. Throws FormatException on anything else.</summary>
    static class Json
    {
        public static object Parse(string s)
        {
            int i = 0;
            var v = Value(s, ref i);
            Space(s, ref i);
            if (i != s.Length)
            {
                throw new FormatException("json: trailing data at " + i);
            }
            return v;
        }

        static void Space(string s, ref int i)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i]))
            {
                i++;
            }
        }

        static object Value(string s, ref int i)
        {
            Space(s, ref i);
            if (i >= s.Length)
            {
                throw new FormatException("json: unexpected end");
            }
            char c = s[i];
            if (c == '{')
            {
                var o = new Dictionary<string, object>();
                i++;
                Space(s, ref i);
                if (s[i] == '}')
                {
                    i++;
                    return o;
                }
                while (true)
                {
                    Space(s, ref i);
                    var k = Str(s, ref i);
                    Space(s, ref i);
                    Expect(s, ref i, ':');
                    o[k] = Value(s, ref i);
                    Space(s, ref i);
                    if (s[i] == ',')
                    {
                        i++;
                        continue;
                    }
                    Expect(s, ref i, '}');
                    return o;
                }
            }
            if (c == '[')
            {
                var a = new List<object>();
                i++;
                Space(s, ref i);
                if (s[i] == ']')
                {
                    i++;
                    return a;
                }
                while (true)
                {
                    a.Add(Value(s, ref i));
                    Space(s, ref i);
                    if (s[i] == ',')
                    {
                        i++;
                        continue;
                    }
                    Expect(s, ref i, ']');
                    return a;
                }
            }
            if (c == '"')
            {
                return Str(s, ref i);
            }
            if (s.Substring(i).StartsWith("true", StringComparison.Ordinal))
            {
                i += 4;
                return true;
            }
            if (s.Substring(i).StartsWith("false", StringComparison.Ordinal))
            {
                i += 5;
                return false;
            }
            if (s.Substring(i).StartsWith("null", StringComparison.Ordinal))
            {
                i += 4;
                return null;
            }
            int start = i;
            while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0)
            {
                i++;
            }
            if (start == i)
            {
                throw new FormatException("json: unexpected '" + c + "' at " + i);
            }
            return double.Parse(s.Substring(start, i - start), CultureInfo.InvariantCulture);
        }

        static void Expect(string s, ref int i, char c)
        {
            if (i >= s.Length || s[i] != c)
            {
                throw new FormatException("json: want '" + c + "' at " + i);
            }
            i++;
        }

        static string Str(string s, ref int i)
        {
            Expect(s, ref i, '"');
            var sb = new StringBuilder();
            while (s[i] != '"')
            {
                char c = s[i++];
                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }
                char e = s[i++];
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u':
                        sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    default: sb.Append(e); break;
                }
            }
            i++;
            return sb.ToString();
        }
    }

    /// <summary>Typed access to a parsed JSON object.</summary>
    sealed class JObj
    {
        readonly Dictionary<string, object> d;

        public JObj(object o)
        {
            d = (Dictionary<string, object>)o;
        }

        public bool Has(string k) { return d.ContainsKey(k); }

        public string Str(string k) { return (string)d[k]; }

        public uint U32(string k) { return d.ContainsKey(k) ? (uint)(double)d[k] : 0; }

        public int Int(string k, int dflt = 0) { return d.ContainsKey(k) ? (int)(double)d[k] : dflt; }

        public bool Bool(string k) { return (bool)d[k]; }

        /// <summary>A u64 written as 16 hex digits.</summary>
        public ulong U64(string k) { return ulong.Parse(Str(k), NumberStyles.HexNumber, CultureInfo.InvariantCulture); }

        /// <summary>Bytes written as hex with spaces between fields.</summary>
        public byte[] Hex(string k) { return Bytes.FromHex(Str(k)); }

        public JObj Obj(string k) { return new JObj(d[k]); }

        public List<JObj> Arr(string k)
        {
            var r = new List<JObj>();
            foreach (var o in (List<object>)d[k])
            {
                r.Add(new JObj(o));
            }
            return r;
        }
    }

    static class Bytes
    {
        public static byte[] FromHex(string s)
        {
            s = s.Replace(" ", "");
            var b = new byte[s.Length / 2];
            for (int i = 0; i < b.Length; i++)
            {
                b[i] = byte.Parse(s.Substring(2 * i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
            return b;
        }

        public static string ToHex(byte[] b, int off = 0, int count = -1)
        {
            if (count < 0)
            {
                count = b.Length - off;
            }
            var sb = new StringBuilder(2 * count);
            for (int i = 0; i < count; i++)
            {
                sb.Append(b[off + i].ToString("x2", CultureInfo.InvariantCulture));
            }
            return sb.ToString();
        }
    }
}
