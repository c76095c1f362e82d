// GgufValue.cs: a typed GGUF metadata value (scalar, string or array), shared by the reader and
// the writer so both speak the exact on-disk type (u32 vs i32 matters to other readers).
namespace SharpInfer.Models.Gguf;

/// <summary>GGUF metadata value type ids (gguf.h <c>enum gguf_type</c>).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>
/// One metadata value. Scalars are boxed as their CLR type (byte, sbyte, ushort, short, uint, int,
/// float, bool, string, ulong, long, double); arrays hold a typed CLR array (e.g. float[], string[])
/// or, for arrays of arrays, a <see cref="GgufValue"/>[].
/// </summary>
public sealed class GgufValue
{
    public GgufValueType Type { get; }

    /// <summary>Element type when <see cref="Type"/> is Array.</summary>
    public GgufValueType ElementType { get; }

    public object Value { get; }

    private GgufValue(GgufValueType type, object value, GgufValueType elementType = default)
    {
        Type = type;
        Value = value;
        ElementType = elementType;
    }

    public static GgufValue UInt8(byte v) => new(GgufValueType.UInt8, v);
    public static GgufValue Int8(sbyte v) => new(GgufValueType.Int8, v);
    public static GgufValue UInt16(ushort v) => new(GgufValueType.UInt16, v);
    public static GgufValue Int16(short v) => new(GgufValueType.Int16, v);
    public static GgufValue UInt32(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue Int32(int v) => new(GgufValueType.Int32, v);
    public static GgufValue Float32(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue String(string v) => new(GgufValueType.String, v);
    public static GgufValue UInt64(ulong v) => new(GgufValueType.UInt64, v);
    public static GgufValue Int64(long v) => new(GgufValueType.Int64, v);
    public static GgufValue Float64(double v) => new(GgufValueType.Float64, v);

    public static GgufValue Array(string[] v) => new(GgufValueType.Array, v, GgufValueType.String);
    public static GgufValue Array(float[] v) => new(GgufValueType.Array, v, GgufValueType.Float32);
    public static GgufValue Array(int[] v) => new(GgufValueType.Array, v, GgufValueType.Int32);
    public static GgufValue Array(uint[] v) => new(GgufValueType.Array, v, GgufValueType.UInt32);
    public static GgufValue Array(long[] v) => new(GgufValueType.Array, v, GgufValueType.Int64);
    public static GgufValue Array(ulong[] v) => new(GgufValueType.Array, v, GgufValueType.UInt64);
    public static GgufValue Array(double[] v) => new(GgufValueType.Array, v, GgufValueType.Float64);
    public static GgufValue Array(bool[] v) => new(GgufValueType.Array, v, GgufValueType.Bool);
    public static GgufValue Array(byte[] v) => new(GgufValueType.Array, v, GgufValueType.UInt8);
    public static GgufValue Array(sbyte[] v) => new(GgufValueType.Array, v, GgufValueType.Int8);
    public static GgufValue Array(ushort[] v) => new(GgufValueType.Array, v, GgufValueType.UInt16);
    public static GgufValue Array(short[] v) => new(GgufValueType.Array, v, GgufValueType.Int16);

    /// <summary>An array whose elements are themselves values of <paramref name="elementType"/> (e.g. arrays).</summary>
    public static GgufValue Array(GgufValueType elementType, GgufValue[] v) => new(GgufValueType.Array, v, elementType);

    /// <summary>Number of elements of an array value.</summary>
    public long ArrayLength => Type == GgufValueType.Array ? ((System.Array)Value).LongLength : throw new InvalidOperationException("not an array");

    /// <summary>The value as a signed integer if it is any integer type that fits.</summary>
    public bool TryGetInt64(out long value)
    {
        switch (Value)
        {
            case byte b: value = b; return true;
            case sbyte sb: value = sb; return true;
            case ushort us: value = us; return true;
            case short s: value = s; return true;
            case uint ui: value = ui; return true;
            case int i: value = i; return true;
            case long l: value = l; return true;
            case ulong ul when ul <= long.MaxValue: value = (long)ul; return true;
            default: value = 0; return false;
        }
    }

    /// <summary>The value as a double if it is a float or an integer.</summary>
    public bool TryGetDouble(out double value)
    {
        switch (Value)
        {
            case float f: value = f; return true;
            case double d: value = d; return true;
            default:
                bool ok = TryGetInt64(out long l);
                value = l;
                return ok;
        }
    }

    /// <summary>Human-readable type, e.g. "u32" or "array[string]".</summary>
    public string TypeName => Type == GgufValueType.Array ? $"array[{TypeNameOf(ElementType)}]" : TypeNameOf(Type);

    internal static string TypeNameOf(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => "u8", GgufValueType.Int8 => "i8", GgufValueType.UInt16 => "u16",
        GgufValueType.Int16 => "i16", GgufValueType.UInt32 => "u32", GgufValueType.Int32 => "i32",
        GgufValueType.Float32 => "f32", GgufValueType.Bool => "bool", GgufValueType.String => "string",
        GgufValueType.Array => "array", GgufValueType.UInt64 => "u64", GgufValueType.Int64 => "i64",
        GgufValueType.Float64 => "f64", _ => $"type {(uint)t}",
    };

    /// <summary>Size in bytes of a fixed-size scalar type, 0 for string/array/unknown.</summary>
    internal static int ScalarSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };

    public override string ToString() => Value switch
    {
        string s => s.Length > 80 ? $"\"{s[..77]}...\"" : $"\"{s}\"",
        System.Array a => $"{TypeName} ({a.LongLength} elements)",
        _ => Value.ToString() ?? "",
    };
}
