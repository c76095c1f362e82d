// MappedFile.cs: a read-only memory map of a whole file with a stable base pointer, shared by
// the GGUF and safetensors readers. Weights are handed out as pointers into it, never copied.
using System.IO.MemoryMappedFiles;

namespace SharpInfer.Models;

internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _base;
    private bool _pointerAcquired;

    public string Path { get; }
    public long Length { get; }
    public bool IsDisposed { get; private set; }

    private MappedFile(string path, long length, MemoryMappedFile? map, MemoryMappedViewAccessor? view)
    {
        Path = path;
        Length = length;
        _map = map;
        _view = view;
    }

    /// <summary>Maps <paramref name="path"/> read-only. An empty file maps to Length 0 and no pointer.</summary>
    public static MappedFile Open(string path)
    {
        if (!File.Exists(path)) throw new ModelFormatException(path, "file not found");
        long length;
        try
        {
            // The opened file's length: FileInfo.Length is the link's own size for a symlink.
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            length = stream.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot open file: {e.Message}", e);
        }
        if (length == 0) return new MappedFile(path, 0, null, null);

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, capacity: 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            var file = new MappedFile(path, length, map, view);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            file._pointerAcquired = true;
            file._base = pointer + view.PointerOffset;
            return file;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            view?.Dispose();
            map?.Dispose();
            throw new ModelFormatException(path, $"cannot memory-map file: {e.Message}", e);
        }
    }

    /// <summary>Base address of byte 0 of the file.</summary>
    public byte* Base
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _base;
        }
    }

    /// <summary>A span over [offset, offset+length); the caller has bounds-checked it.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (offset < 0 || length < 0 || offset > Length - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{length}) outside file of {Length} bytes");
        return length == 0 ? default : new ReadOnlySpan<byte>(_base + offset, length);
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        if (_pointerAcquired) _view!.SafeMemoryMappedViewHandle.ReleasePointer();
        _base = null;
        _view?.Dispose();
        _map?.Dispose();
    }
}
