using System.Runtime.CompilerServices;

// The NUnit tests (sdk/csharp/tests) set SnetConfig.PrivateKeySource to replay the shared
// vectors' scripted session.
[assembly: InternalsVisibleTo("Fastway.Tests")]
