// ChatTemplateTests.cs: the built-in Jinja renderer against Jinja2 itself. chat_template_cases.json
// holds real chat templates (ChatML, Llama 2/3, Zephyr, Mistral, Gemma, Qwen) and a template that
// exercises every supported construct, rendered by Jinja2 configured as Hugging Face configures it
// (make_template_cases.py); every case must render byte for byte or raise the same error.
using System.Text.Json;
using SharpInfer.Chat;

namespace SharpInfer.Tests.Chat;

public class ChatTemplateTests
{
    private static readonly Lazy<JsonDocument> Cases = new(() => JsonDocument.Parse(File.ReadAllText(
        Path.Combine(TestModels.RepoRoot ?? throw new InvalidOperationException("Runtime.sln not found above the test binaries"),
            "tests", "managed", "SharpInfer.Tests", "Chat", "chat_template_cases.json"))));

    public static TheoryData<int, string> CaseIndices()
    {
        var data = new TheoryData<int, string>();
        int i = 0;
        foreach (var c in Cases.Value.RootElement.GetProperty("cases").EnumerateArray())
            data.Add(i++, $"{c.GetProperty("template").GetString()}/{c.GetProperty("conversation").GetString()}/{c.GetProperty("add_generation_prompt").GetBoolean()}");
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void Renders_AsJinja2Does(int index, string name)
    {
        var root = Cases.Value.RootElement;
        var c = root.GetProperty("cases")[index];
        string source = root.GetProperty("templates").GetProperty(c.GetProperty("template").GetString()!).GetString()!;
        var messages = root.GetProperty("conversations").GetProperty(c.GetProperty("conversation").GetString()!).EnumerateArray()
            .Select(m => new ChatTemplateMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
        var template = ChatTemplate.Parse(source);
        bool generationPrompt = c.GetProperty("add_generation_prompt").GetBoolean();

        if (c.TryGetProperty("error", out var error))
        {
            var e = Assert.Throws<ChatTemplateException>(() => template.Render(messages, generationPrompt, "<s>", "</s>"));
            Assert.Equal(error.GetString(), e.Message);
        }
        else
        {
            Assert.True(name.Length > 0);
            Assert.Equal(c.GetProperty("expected").GetString(), template.Render(messages, generationPrompt, "<s>", "</s>"));
        }
    }

    [Theory]
    [InlineData("{% if x %}", "missing '{% endif %}'")]
    [InlineData("{{ 1 + }}", "unexpected end of tag")]
    [InlineData("{% include 'x' %}", "unsupported statement 'include'")]
    [InlineData("{{ 'a' }", "unclosed")]
    public void SyntaxErrors_AreClearChatTemplateExceptions(string source, string message)
    {
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void UnsupportedFilters_FailWhenRendered_NamingTheFilter()
    {
        var template = ChatTemplate.Parse("{{ messages | wordcount }}");
        var e = Assert.Throws<ChatTemplateException>(() => template.Render([], addGenerationPrompt: false));
        Assert.Contains("wordcount", e.Message);
    }

    [Fact]
    public void Variables_AreVisibleToTheTemplate()
    {
        var template = ChatTemplate.Parse("{{ name }}:{{ n + 1 }}:{{ tags|join('+') }}:{{ opts.mode }}");
        var variables = new Dictionary<string, object?>
        {
            ["name"] = "x", ["n"] = 41, ["tags"] = new[] { "a", "b" },
            ["opts"] = new Dictionary<string, object?> { ["mode"] = "fast" },
        };
        Assert.Equal("x:42:a+b:fast", template.Render([], addGenerationPrompt: false, variables: variables));
    }
}
