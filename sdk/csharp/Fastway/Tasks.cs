using System;
using System.Threading;
using System.Threading.Tasks;

namespace Fastway
{
    /// <summary>Task helpers for .NET Standard 2.0 (no Task.WaitAsync there).</summary>
    internal static class Tasks
    {
        /// <summary>A source whose continuations never run on the thread that completes
        /// it: the SDK's reader and writer threads never run callers' code.</summary>
        internal static TaskCompletionSource<T> NewSource<T>()
        {
            return new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        internal static Task<T> Canceled<T>(CancellationToken ct)
        {
            var tcs = new TaskCompletionSource<T>();
            tcs.TrySetCanceled(ct);
            return tcs.Task;
        }

        internal static Task<T> Failed<T>(Exception e)
        {
            var tcs = new TaskCompletionSource<T>();
            tcs.SetException(e);
            return tcs.Task;
        }

        /// <summary>Waits for task, or throws OperationCanceledException when ct is
        /// cancelled first (task goes on).</summary>
        internal static async Task WaitAsync(Task task, CancellationToken ct)
        {
            if (!ct.CanBeCanceled || task.IsCompleted)
            {
                await task.ConfigureAwait(false);
                return;
            }
            var cancelled = NewSource<bool>();
            using (ct.Register(() => cancelled.TrySetResult(true)))
            {
                if (await Task.WhenAny(task, cancelled.Task).ConfigureAwait(false) != task)
                {
                    throw new OperationCanceledException(ct);
                }
            }
            await task.ConfigureAwait(false);
        }

        /// <summary>WaitAsync for a Task with a result.</summary>
        internal static async Task<T> WaitAsync<T>(Task<T> task, CancellationToken ct)
        {
            await WaitAsync((Task)task, ct).ConfigureAwait(false);
            return task.Result;
        }
    }
}
