// CliJson.cs: the one way a command prints its --json object: UTF-8 text as written (no
// escaping of quotes or < >), indented unless one line is wanted.
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace SharpInfer.Cli;

internal static class CliJson
{
    /// <summary>Writes one JSON object (its members written by <paramref name="members"/>) and a newline.</summary>
    public static void WriteObject(TextWriter output, Action<Utf8JsonWriter> members, bool indented = true)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            members(w);
            w.WriteEndObject();
        }
        output.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
