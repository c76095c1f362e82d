// Ids.cs: typed ids for the engine, so a sequence id can never be passed where a block id is expected.
namespace SharpInfer.Engine;

/// <summary>One request's sequence inside the engine.</summary>
public readonly record struct SeqId(int Value)
{
    public override string ToString() => $"seq{Value}";
}

/// <summary>One block of the shared KV pool (an index into PagedKvCache's blocks).</summary>
public readonly record struct BlockId(int Value)
{
    public override string ToString() => $"block{Value}";
}
