// JinjaParser.cs: the syntax tree of the Jinja subset chat templates use, and the recursive-descent
// parser that builds it with Jinja's operator precedence (filters and tests bind tightest, then
// * / // %, ~, + -, comparisons, not, and, or, inline if).
using System.Globalization;

namespace SharpInfer.Chat.Jinja;

internal abstract record Node;
internal sealed record TextNode(string Text) : Node;
internal sealed record OutputNode(Expr Value) : Node;
internal sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else) : Node;
internal sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else) : Node;
internal sealed record SetNode(string Name, string? Attribute, Expr Value) : Node;
internal sealed record SetBlockNode(string Name, List<Node> Body) : Node;
internal sealed record MacroNode(string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body) : Node;
internal sealed record LoopControlNode(bool IsBreak) : Node;

internal abstract record Expr(int Offset);
internal sealed record LiteralExpr(object? Value, int Offset) : Expr(Offset);
internal sealed record NameExpr(string Name, int Offset) : Expr(Offset);
internal sealed record ListExpr(List<Expr> Items, int Offset) : Expr(Offset);
internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Offset) : Expr(Offset);
internal sealed record AttributeExpr(Expr Target, string Name, int Offset) : Expr(Offset);
internal sealed record IndexExpr(Expr Target, Expr Index, int Offset) : Expr(Offset);
internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Offset) : Expr(Offset);
internal sealed record CallExpr(Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Offset) : Expr(Offset);
internal sealed record FilterExpr(Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Offset) : Expr(Offset);
internal sealed record TestExpr(Expr Target, string Name, List<Expr> Args, bool Negated, int Offset) : Expr(Offset);
internal sealed record UnaryExpr(string Op, Expr Operand, int Offset) : Expr(Offset);
internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Offset) : Expr(Offset);
internal sealed record ConditionalExpr(Expr Condition, Expr Then, Expr? Else, int Offset) : Expr(Offset);

internal sealed class JinjaParser
{
    private readonly List<Segment> _segments;
    private int _segment;

    private JinjaParser(List<Segment> segments) => _segments = segments;

    public static List<Node> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Split(source));
        var body = parser.ParseBody(out string? end);
        if (end is not null) throw new ChatTemplateException($"unexpected '{{% {end} %}}'");
        return body;
    }

    /// <summary>Nodes up to a statement this level does not handle (returned in <paramref name="end"/>
    /// with the statement's tokens in _pendingTokens), or the end of the template (null).</summary>
    private List<Node> ParseBody(out string? end, params string[] terminators)
    {
        var nodes = new List<Node>();
        while (_segment < _segments.Count)
        {
            var seg = _segments[_segment++];
            switch (seg.Kind)
            {
                case SegmentKind.Text:
                    nodes.Add(new TextNode(seg.Content));
                    break;
                case SegmentKind.Output:
                {
                    var p = new ExpressionParser(JinjaLexer.Tokenize(seg.Content, seg.Offset));
                    nodes.Add(new OutputNode(p.ParseExpression()));
                    p.ExpectEnd();
                    break;
                }
                default:
                {
                    var p = new ExpressionParser(JinjaLexer.Tokenize(seg.Content, seg.Offset));
                    var keyword = p.Next();
                    if (keyword.Kind != TokenKind.Name) throw new ChatTemplateException($"expected a statement at offset {keyword.Offset}");
                    if (terminators.Contains(keyword.Text))
                    {
                        end = keyword.Text;
                        _pending = p;
                        return nodes;
                    }
                    nodes.Add(ParseStatement(keyword, p));
                    break;
                }
            }
        }
        if (terminators.Length > 0) throw new ChatTemplateException($"missing '{{% {terminators[^1]} %}}'");
        end = null;
        return nodes;
    }

    private ExpressionParser? _pending;

    private Node ParseStatement(Token keyword, ExpressionParser p)
    {
        switch (keyword.Text)
        {
            case "if":
            {
                var branches = new List<(Expr, List<Node>)>();
                var condition = p.ParseExpression();
                p.ExpectEnd();
                List<Node>? elseBody = null;
                while (true)
                {
                    var body = ParseBody(out string? end, "elif", "else", "endif");
                    branches.Add((condition, body));
                    var q = _pending!;
                    if (end == "elif")
                    {
                        condition = q.ParseExpression();
                        q.ExpectEnd();
                        continue;
                    }
                    q.ExpectEnd();
                    if (end == "else")
                    {
                        elseBody = ParseBody(out _, "endif");
                        _pending!.ExpectEnd();
                    }
                    return new IfNode(branches, elseBody);
                }
            }
            case "for":
            {
                var targets = new List<string> { p.ExpectName() };
                while (p.TryOperator(",")) targets.Add(p.ExpectName());
                if (!p.Next().IsName("in")) throw new ChatTemplateException($"expected 'in' in for loop at offset {keyword.Offset}");
                var iterable = p.ParseExpression(allowConditional: false);
                Expr? filter = null;
                if (p.TryName("if")) filter = p.ParseExpression(allowConditional: false);
                p.TryName("recursive");
                p.ExpectEnd();
                var body = ParseBody(out string? end, "else", "endfor");
                _pending!.ExpectEnd();
                List<Node>? elseBody = null;
                if (end == "else")
                {
                    elseBody = ParseBody(out _, "endfor");
                    _pending!.ExpectEnd();
                }
                return new ForNode(targets, iterable, filter, body, elseBody);
            }
            case "set":
            {
                string name = p.ExpectName();
                string? attribute = p.TryOperator(".") ? p.ExpectName() : null;
                if (p.AtEnd && attribute is null)
                {
                    var body = ParseBody(out _, "endset");
                    _pending!.ExpectEnd();
                    return new SetBlockNode(name, body);
                }
                p.ExpectOperator("=");
                var value = p.ParseExpression();
                p.ExpectEnd();
                return new SetNode(name, attribute, value);
            }
            case "macro":
            {
                string name = p.ExpectName();
                p.ExpectOperator("(");
                var parameters = new List<(string, Expr?)>();
                while (!p.TryOperator(")"))
                {
                    string param = p.ExpectName();
                    Expr? fallback = p.TryOperator("=") ? p.ParseExpression() : null;
                    parameters.Add((param, fallback));
                    if (!p.TryOperator(",")) { p.ExpectOperator(")"); break; }
                }
                p.ExpectEnd();
                var body = ParseBody(out _, "endmacro");
                _pending!.ExpectEnd();
                return new MacroNode(name, parameters, body);
            }
            case "generation":
            {
                // Hugging Face's marker for assistant-token masks: render the body as is.
                p.ExpectEnd();
                var body = ParseBody(out _, "endgeneration");
                _pending!.ExpectEnd();
                return new IfNode([(new LiteralExpr(true, keyword.Offset), body)], null);
            }
            case "break":
            case "continue":
                p.ExpectEnd();
                return new LoopControlNode(keyword.Text == "break");
            default:
                throw new ChatTemplateException($"unsupported statement '{keyword.Text}' at offset {keyword.Offset}");
        }
    }
}

internal sealed class ExpressionParser(List<Token> tokens)
{
    private int _pos;

    private Token Peek => tokens[_pos];
    public bool AtEnd => Peek.Kind == TokenKind.End;
    public Token Next()
    {
        var t = tokens[_pos];
        if (t.Kind != TokenKind.End) _pos++;
        return t;
    }

    public void ExpectEnd()
    {
        if (!AtEnd) throw new ChatTemplateException($"unexpected {Peek} at offset {Peek.Offset}");
    }

    public string ExpectName()
    {
        var t = Next();
        return t.Kind == TokenKind.Name ? t.Text : throw new ChatTemplateException($"expected a name, got {t} at offset {t.Offset}");
    }

    public void ExpectOperator(string op)
    {
        var t = Next();
        if (!t.Is(op)) throw new ChatTemplateException($"expected '{op}', got {t} at offset {t.Offset}");
    }

    public bool TryOperator(string op)
    {
        if (!Peek.Is(op)) return false;
        _pos++;
        return true;
    }

    public bool TryName(string name)
    {
        if (!Peek.IsName(name)) return false;
        _pos++;
        return true;
    }

    public Expr ParseExpression(bool allowConditional = true)
    {
        var value = ParseOr();
        if (!allowConditional || !Peek.IsName("if")) return value;
        int offset = Next().Offset;
        var condition = ParseOr();
        Expr? otherwise = TryName("else") ? ParseExpression() : null;
        return new ConditionalExpr(condition, value, otherwise, offset);
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Peek.IsName("or")) left = new BinaryExpr("or", left, Then(ParseAnd), left.Offset);
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Peek.IsName("and")) left = new BinaryExpr("and", left, Then(ParseNot), left.Offset);
        return left;
    }

    private Expr Then(Func<Expr> parse)
    {
        _pos++;
        return parse();
    }

    private Expr ParseNot()
    {
        if (Peek.IsName("not"))
        {
            int offset = Peek.Offset;
            return new UnaryExpr("not", Then(ParseNot), offset);
        }
        return ParseCompare();
    }

    /// <summary>Comparisons chain as in Python: a &lt; b &lt;= c means a &lt; b and b &lt;= c.</summary>
    private Expr ParseCompare()
    {
        var operand = ParseAdditive();
        Expr? chain = null;
        while (true)
        {
            var t = Peek;
            Expr comparison;
            if (t.Kind == TokenKind.Operator && t.Text is "==" or "!=" or "<" or ">" or "<=" or ">=" || t.IsName("in"))
            {
                var right = Then(ParseAdditive);
                comparison = new BinaryExpr(t.Text, operand, right, t.Offset);
                operand = right;
            }
            else if (t.IsName("not") && tokens[_pos + 1].IsName("in"))
            {
                _pos++;
                var right = Then(ParseAdditive);
                comparison = new UnaryExpr("not", new BinaryExpr("in", operand, right, t.Offset), t.Offset);
                operand = right;
            }
            else return chain ?? operand;
            chain = chain is null ? comparison : new BinaryExpr("and", chain, comparison, t.Offset);
        }
    }

    private Expr ParseAdditive()
    {
        var left = ParseConcat();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "+" or "-")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParseConcat(), op.Offset);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMultiplicative();
        while (Peek.Is("~"))
        {
            var op = Next();
            left = new BinaryExpr("~", left, ParseMultiplicative(), op.Offset);
        }
        return left;
    }

    private Expr ParseMultiplicative()
    {
        var left = ParseUnary();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "*" or "/" or "//" or "%" or "**")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParseUnary(), op.Offset);
        }
        return left;
    }

    private Expr ParseUnary()
    {
        if (Peek.Kind == TokenKind.Operator && Peek.Text is "-" or "+")
        {
            var op = Next();
            return new UnaryExpr(op.Text, ParseUnary(), op.Offset);
        }
        return ParseFilters(ParsePostfix(ParsePrimary()));
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.String:
            {
                string text = t.Text;
                while (Peek.Kind == TokenKind.String) text += Next().Text;  // adjacent literals concatenate
                return new LiteralExpr(text, t.Offset);
            }
            case TokenKind.Integer:
                return new LiteralExpr(long.Parse(t.Text, CultureInfo.InvariantCulture), t.Offset);
            case TokenKind.Float:
                return new LiteralExpr(double.Parse(t.Text, CultureInfo.InvariantCulture), t.Offset);
            case TokenKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new LiteralExpr(true, t.Offset),
                    "false" or "False" => new LiteralExpr(false, t.Offset),
                    "none" or "None" => new LiteralExpr(null, t.Offset),
                    _ => new NameExpr(t.Text, t.Offset),
                };
            case TokenKind.Operator when t.Text == "(":
            {
                if (TryOperator(")")) return new ListExpr([], t.Offset);
                var first = ParseExpression();
                if (TryOperator(")")) return first;
                var items = new List<Expr> { first };
                while (TryOperator(",") && !Peek.Is(")")) items.Add(ParseExpression());
                ExpectOperator(")");
                return new ListExpr(items, t.Offset);
            }
            case TokenKind.Operator when t.Text == "[":
            {
                var items = new List<Expr>();
                while (!TryOperator("]"))
                {
                    items.Add(ParseExpression());
                    if (!TryOperator(",")) { ExpectOperator("]"); break; }
                }
                return new ListExpr(items, t.Offset);
            }
            case TokenKind.Operator when t.Text == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!TryOperator("}"))
                {
                    var key = ParseExpression();
                    ExpectOperator(":");
                    items.Add((key, ParseExpression()));
                    if (!TryOperator(",")) { ExpectOperator("}"); break; }
                }
                return new DictExpr(items, t.Offset);
            }
            default:
                throw new ChatTemplateException($"unexpected {t} at offset {t.Offset}");
        }
    }

    private Expr ParsePostfix(Expr target)
    {
        while (true)
        {
            var t = Peek;
            if (t.Is("."))
            {
                _pos++;
                var name = Next();
                target = name.Kind is TokenKind.Name or TokenKind.Integer
                    ? (name.Kind == TokenKind.Name ? new AttributeExpr(target, name.Text, t.Offset)
                        : new IndexExpr(target, new LiteralExpr(long.Parse(name.Text, CultureInfo.InvariantCulture), name.Offset), t.Offset))
                    : throw new ChatTemplateException($"expected an attribute name at offset {name.Offset}");
            }
            else if (t.Is("["))
            {
                _pos++;
                Expr? start = Peek.Is(":") ? null : ParseExpression();
                if (TryOperator("]")) { target = new IndexExpr(target, start!, t.Offset); continue; }
                ExpectOperator(":");
                Expr? stop = Peek.Is(":") || Peek.Is("]") ? null : ParseExpression();
                Expr? step = TryOperator(":") && !Peek.Is("]") ? ParseExpression() : null;
                ExpectOperator("]");
                target = new SliceExpr(target, start, stop, step, t.Offset);
            }
            else if (t.Is("("))
            {
                _pos++;
                var (args, kwargs) = ParseArguments();
                target = new CallExpr(target, args, kwargs, t.Offset);
            }
            else return target;
        }
    }

    /// <summary>Arguments after an opening parenthesis, through the closing one.</summary>
    private (List<Expr>, List<(string, Expr)>) ParseArguments()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!TryOperator(")"))
        {
            if (Peek.Kind == TokenKind.Name && tokens[_pos + 1].Is("="))
            {
                string name = Next().Text;
                _pos++;
                kwargs.Add((name, ParseExpression()));
            }
            else args.Add(ParseExpression());
            if (!TryOperator(",")) { ExpectOperator(")"); break; }
        }
        return (args, kwargs);
    }

    private Expr ParseFilters(Expr target)
    {
        while (true)
        {
            var t = Peek;
            if (t.Is("|"))
            {
                _pos++;
                string name = ExpectName();
                List<Expr> args = [];
                List<(string, Expr)> kwargs = [];
                if (TryOperator("(")) (args, kwargs) = ParseArguments();
                target = new FilterExpr(target, name, args, kwargs, t.Offset);
            }
            else if (t.IsName("is"))
            {
                _pos++;
                bool negated = TryName("not");
                var name = Next();
                string test = name.Kind switch
                {
                    TokenKind.Name => name.Text,
                    TokenKind.Operator when name.Text is "==" or "!=" or "<" or ">" or "<=" or ">=" => name.Text,
                    _ => throw new ChatTemplateException($"expected a test name at offset {name.Offset}"),
                };
                List<Expr> args = [];
                if (TryOperator("(")) args = ParseArguments().Item1;
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float ||
                         (Peek.Kind == TokenKind.Name && !Peek.IsName("and") && !Peek.IsName("or") && !Peek.IsName("else") && !Peek.IsName("if")))
                    args = [ParsePostfix(ParsePrimary())];
                target = new TestExpr(target, test, args, negated, t.Offset);
            }
            else return target;
        }
    }
}
