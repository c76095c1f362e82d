// ChatTemplate.cs: renders a conversation with a model's own Jinja chat template (tokenizer_config
// chat_template or GGUF tokenizer.chat_template). Jinja is interpreted by a small built-in engine
// (Chat/Jinja) covering what chat templates use, rather than by matching known template families,
// so every variant (system-prompt handling, strip(), role checks, raise_exception) renders as
// written; an unsupported construct fails with a ChatTemplateException naming it.
using SharpInfer.Chat.Jinja;

namespace SharpInfer.Chat;

/// <summary>A chat template error: bad syntax, an unsupported construct, or raise_exception().</summary>
public sealed class ChatTemplateException(string message) : Exception(message);

/// <summary>One message as the template sees it (message['role'], message['content']).</summary>
public readonly record struct ChatTemplateMessage(string Role, string Content);

public sealed class ChatTemplate
{
    private readonly List<Node> _template;

    private ChatTemplate(string source, List<Node> template)
    {
        Source = source;
        _template = template;
    }

    public string Source { get; }

    /// <summary>Parses <paramref name="source"/>; throws ChatTemplateException if it is not valid.</summary>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(source, JinjaParser.Parse(source));
    }

    /// <summary>
    /// Renders <paramref name="messages"/> as Hugging Face's apply_chat_template does (trim_blocks,
    /// lstrip_blocks), with bos_token, eos_token and add_generation_prompt defined, plus
    /// <paramref name="variables"/> (strings, numbers, booleans, lists and string-keyed dictionaries).
    /// </summary>
    public string Render(IEnumerable<ChatTemplateMessage> messages, bool addGenerationPrompt, string bosToken = "", string eosToken = "",
        IReadOnlyDictionary<string, object?>? variables = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (variables is not null)
            foreach (var (k, v) in variables) globals[k] = ToTemplateValue(v);
        globals["messages"] = messages.Select(m => (object?)new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["role"] = m.Role,
            ["content"] = m.Content,
        }).ToList();
        globals["add_generation_prompt"] = addGenerationPrompt;
        globals["bos_token"] = bosToken;
        globals["eos_token"] = eosToken;
        return JinjaRenderer.Render(_template, globals);
    }

    private static object? ToTemplateValue(object? v) => v switch
    {
        null or string or bool or long or double => v,
        int i => (long)i,
        float f => (double)f,
        IReadOnlyDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => ToTemplateValue(kv.Value), StringComparer.Ordinal),
        System.Collections.IEnumerable e => e.Cast<object?>().Select(ToTemplateValue).ToList(),
        _ => throw new ArgumentException($"template variables must be strings, numbers, booleans, lists or dictionaries (got {v.GetType().Name})"),
    };
}

/// <summary>Templates for models that ship none (pass one to SharpInferChatClientOptions.ChatTemplate).</summary>
public static class ChatTemplates
{
    /// <summary>ChatML (Qwen, OpenHermes, many fine-tunes): &lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n.</summary>
    public const string ChatML =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>Llama 2 chat: [INST] ... [/INST] with an optional &lt;&lt;SYS&gt;&gt; block in the first turn.</summary>
    public const string Llama2 =
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
        "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
        "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
        "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
        "{% else %}{% set content = message['content'] %}{% endif %}" +
        "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
        "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

    /// <summary>Zephyr / TinyLlama chat: &lt;|role|&gt;\ncontent&lt;/s&gt; per message.</summary>
    public const string Zephyr =
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n" +
        "{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n" +
        "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n" +
        "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
}
