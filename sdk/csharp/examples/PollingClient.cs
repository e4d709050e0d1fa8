// A polling client written the way a Unity MonoBehaviour calls the SDK: Start
// opens the connection without blocking, Update runs once a frame and never
// waits, OnDestroy closes. In Unity, derive from MonoBehaviour and drop the
// Done/Log members; the tests (tests/ExampleTests.cs) compile this file
// without UnityEngine and drive Update from a loop, as the engine would.
using System;
using System.Net.Sockets;
using System.Text;
using System.Threading.Tasks;
using Fastway;

public class PollingClient // : MonoBehaviour
{
    public string Host = "127.0.0.1";
    public int Port = 4000;
    public uint ServerID = 1;      // an echo server
    public int Messages = 10;      // how many to send, one a frame

    Task<TcpClient> connecting;
    EndPoint endPoint;
    Conn conn;
    int sent, received;

    public bool Done { get; private set; }
    public Action<string> Log = Console.WriteLine; // Debug.Log in Unity

    public void Start()
    {
        connecting = Connect(Host, Port); // the TCP connect runs off the main thread
    }

    static async Task<TcpClient> Connect(string host, int port)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(host, port);
        return tcp;
    }

    public void Update()
    {
        if (Done) return;
        if (endPoint == null)
        {
            if (!connecting.IsCompleted) return;                  // not yet: try next frame
            endPoint = new EndPoint(connecting.Result.GetStream()); // throws if the connect failed
            conn = endPoint.Dial(ServerID);                         // never blocks: Dialing
        }
        if (sent < Messages && conn.Send(Encoding.UTF8.GetBytes("frame " + sent)))
            sent++;                                                 // kept until the dial is accepted
        for (var msg = conn.Receive(); msg != Conn.NoMsg; msg = conn.Receive())
        {
            if (msg == null)                                        // closed (or refused)
            {
                Log("closed: " + conn.Error);
                Done = true;
                return;
            }
            Log("got " + Encoding.UTF8.GetString(msg));
            if (++received == Messages) Done = true;
        }
    }

    public void OnDestroy()
    {
        if (endPoint != null) endPoint.Close();
    }
}
