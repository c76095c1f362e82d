// JinjaLexer.cs: splits a chat template into text, {{ output }}, {% statement %} and comments,
// applying Jinja's whitespace control ("-" markers) and the trim_blocks / lstrip_blocks options
// that Hugging Face renders chat templates with; then tokenizes the code inside the tags.
using System.Globalization;
using System.Text;

namespace SharpInfer.Chat.Jinja;

internal enum SegmentKind { Text, Output, Statement }

internal readonly record struct Segment(SegmentKind Kind, string Content, int Offset);

internal enum TokenKind { Name, String, Integer, Float, Operator, End }

internal readonly record struct Token(TokenKind Kind, string Text, int Offset)
{
    public bool Is(string op) => Kind == TokenKind.Operator && Text == op;
    public bool IsName(string name) => Kind == TokenKind.Name && Text == name;
    public override string ToString() => Kind == TokenKind.End ? "end of tag" : $"'{Text}'";
}

internal static class JinjaLexer
{
    /// <summary>Splits <paramref name="source"/> into segments (comments dropped).</summary>
    public static List<Segment> Split(string source, bool trimBlocks = true, bool lstripBlocks = true)
    {
        var segments = new List<Segment>();
        int pos = 0;
        bool stripNextLeading = false, trimNextNewline = false;
        while (pos < source.Length)
        {
            int open = FindOpen(source, pos);
            int textEnd = open < 0 ? source.Length : open;
            string text = source[pos..textEnd];
            bool startsLine = pos == 0 || source[pos - 1] == '\n';
            if (stripNextLeading) text = text.TrimStart();
            else if (trimNextNewline)
            {
                string trimmed = TrimOneNewline(text);
                startsLine |= trimmed.Length != text.Length;
                text = trimmed;
            }
            stripNextLeading = trimNextNewline = false;
            if (open < 0)
            {
                AddText(segments, text, pos);
                break;
            }

            char kind = source[open + 1];
            bool isBlock = kind is '%' or '#';
            int inner = open + 2;
            bool stripBefore = inner < source.Length && source[inner] == '-';
            bool keepBefore = inner < source.Length && source[inner] == '+';
            if (stripBefore || keepBefore) inner++;
            if (stripBefore) text = text.TrimEnd();
            else if (isBlock && lstripBlocks && !keepBefore) text = StripLineIndent(text, textStartsLine: startsLine);
            AddText(segments, text, pos);

            string close = kind switch { '{' => "}}", '%' => "%}", _ => "#}" };
            int closeAt = kind == '#' ? source.IndexOf(close, inner, StringComparison.Ordinal) : FindClose(source, inner, close);
            if (closeAt < 0) throw new ChatTemplateException($"unclosed '{{{kind}' at offset {open}");
            bool stripAfter = closeAt > inner && source[closeAt - 1] == '-';
            string code = source[inner..(stripAfter ? closeAt - 1 : closeAt)];
            if (kind == '{') segments.Add(new Segment(SegmentKind.Output, code, inner));
            else if (kind == '%') segments.Add(new Segment(SegmentKind.Statement, code, inner));
            pos = closeAt + 2;
            stripNextLeading = stripAfter;
            trimNextNewline = !stripAfter && isBlock && trimBlocks;
        }
        return segments;
    }

    private static void AddText(List<Segment> segments, string text, int offset)
    {
        if (text.Length > 0) segments.Add(new Segment(SegmentKind.Text, text, offset));
    }

    private static int FindOpen(string s, int from)
    {
        for (int i = from; i + 1 < s.Length; i++)
            if (s[i] == '{' && s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>The closing delimiter, skipping over string literals inside the tag.</summary>
    private static int FindClose(string s, int from, string close)
    {
        char quote = '\0';
        for (int i = from; i < s.Length - 1; i++)
        {
            char c = s[i];
            if (quote != '\0')
            {
                if (c == '\\') i++;
                else if (c == quote) quote = '\0';
            }
            else if (c is '\'' or '"') quote = c;
            else if (c == close[0] && s[i + 1] == close[1]) return i;
        }
        return -1;
    }

    private static string TrimOneNewline(string text) =>
        text.StartsWith("\r\n", StringComparison.Ordinal) ? text[2..] : text.StartsWith('\n') ? text[1..] : text;

    /// <summary>lstrip_blocks: spaces and tabs between the line start and a block tag go.</summary>
    private static string StripLineIndent(string text, bool textStartsLine)
    {
        int i = text.Length;
        while (i > 0 && text[i - 1] is ' ' or '\t') i--;
        return (i == 0 && textStartsLine) || (i > 0 && text[i - 1] == '\n') ? text[..i] : text;
    }

    /// <summary>Tokens of the code inside one tag, ending with an End token.</summary>
    public static List<Token> Tokenize(string code, int baseOffset)
    {
        var tokens = new List<Token>();
        int i = 0;
        while (i < code.Length)
        {
            char c = code[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            int start = i;
            if (char.IsLetter(c) || c == '_')
            {
                while (i < code.Length && (char.IsLetterOrDigit(code[i]) || code[i] == '_')) i++;
                tokens.Add(new Token(TokenKind.Name, code[start..i], baseOffset + start));
            }
            else if (char.IsDigit(c))
            {
                while (i < code.Length && (char.IsDigit(code[i]) || code[i] == '_')) i++;
                bool isFloat = i + 1 < code.Length && code[i] == '.' && char.IsDigit(code[i + 1]);
                if (isFloat)
                {
                    i++;
                    while (i < code.Length && char.IsDigit(code[i])) i++;
                }
                tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, code[start..i].Replace("_", ""), baseOffset + start));
            }
            else if (c is '\'' or '"')
            {
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= code.Length) throw new ChatTemplateException($"unterminated string at offset {baseOffset + start}");
                    char d = code[i++];
                    if (d == c) break;
                    if (d != '\\' || i >= code.Length) { sb.Append(d); continue; }
                    char e = code[i++];
                    switch (e)
                    {
                        case 'n': sb.Append('\n'); break;
                        case 't': sb.Append('\t'); break;
                        case 'r': sb.Append('\r'); break;
                        case '0': sb.Append('\0'); break;
                        case 'u' when i + 4 <= code.Length:
                            sb.Append((char)int.Parse(code.AsSpan(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            i += 4;
                            break;
                        case '\\' or '\'' or '"': sb.Append(e); break;
                        default: sb.Append('\\').Append(e); break;
                    }
                }
                tokens.Add(new Token(TokenKind.String, sb.ToString(), baseOffset + start));
            }
            else
            {
                string two = i + 1 < code.Length ? code.Substring(i, 2) : "";
                string op = two is "==" or "!=" or "<=" or ">=" or "//" or "**" ? two : c.ToString();
                if (op.Length == 1 && "+-*/%~<>()[]{}.,:|=!".IndexOf(c) < 0)
                    throw new ChatTemplateException($"unexpected character '{c}' at offset {baseOffset + start}");
                i += op.Length;
                tokens.Add(new Token(TokenKind.Operator, op, baseOffset + start));
            }
        }
        tokens.Add(new Token(TokenKind.End, "", baseOffset + code.Length));
        return tokens;
    }
}
