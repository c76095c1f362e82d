// SafeContextHandle.cs: owns one native si_context; released exactly once.
using System.Runtime.InteropServices;

namespace SharpInfer.Interop;

internal sealed class SafeContextHandle : SafeHandle
{
    public SafeContextHandle() : base(nint.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == nint.Zero;

    protected override bool ReleaseHandle() => NativeMethods.si_context_destroy(handle) == SiStatus.Ok;
}
