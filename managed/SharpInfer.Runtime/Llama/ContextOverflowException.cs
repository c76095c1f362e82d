// ContextOverflowException.cs: a request needs more positions than the context holds.
namespace SharpInfer.Llama;

public sealed class ContextOverflowException(string message) : Exception(message);
