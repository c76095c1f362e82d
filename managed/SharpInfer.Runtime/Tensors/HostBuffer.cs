// HostBuffer.cs: a block of native host memory for activations and KV caches (64-byte aligned,
// huge pages when large: HostMemory); invisible to the GC, so it is disposed deterministically.
using SharpInfer.Interop;

namespace SharpInfer.Tensors;

public sealed unsafe class HostBuffer<T> : IDisposable where T : unmanaged
{
    private T* _data;

    public long Length { get; }

    public HostBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        nuint bytes = (nuint)Math.Max(1, length) * (nuint)sizeof(T);
        _data = (T*)HostMemory.Allocate(bytes);
    }

    public T* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_data == null, this);
            return _data;
        }
    }

    public Span<T> AsSpan() => new(Pointer, checked((int)Length));

    public Span<T> AsSpan(long start, int length)
    {
        if (start < 0 || length < 0 || start + length > Length) throw new ArgumentOutOfRangeException(nameof(start));
        return new Span<T>(Pointer + start, length);
    }

    public void Dispose()
    {
        if (_data == null) return;
        HostMemory.Free(_data);
        _data = null;
    }
}
