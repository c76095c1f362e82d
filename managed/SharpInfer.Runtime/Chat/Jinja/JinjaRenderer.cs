// JinjaRenderer.cs: evaluates a parsed chat template. Values are plain .NET objects (string, long,
// double, bool, null, List<object?>, Dictionary<string, object?>) so no reflection is needed
// (NativeAOT-safe); Jinja's scoping (a for loop's sets stay inside it), loop variables, the
// filters, tests and string/dict methods that chat templates use, and Python-style printing.
using System.Globalization;
using System.Text;

namespace SharpInfer.Chat.Jinja;

/// <summary>Jinja's undefined value: falsy, prints as nothing, and fails when used in arithmetic.</summary>
internal sealed class Undefined(string name)
{
    public string Name { get; } = name;
}

/// <summary>A callable value: a global function, a macro, a bound method.</summary>
internal delegate object? JinjaFunction(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>The mutable object namespace() returns (set ns.x = ... escapes loop scopes).</summary>
internal sealed class JinjaNamespace : Dictionary<string, object?>
{
    public JinjaNamespace() : base(StringComparer.Ordinal) { }
}

internal sealed class JinjaRenderer
{
    private enum Flow { Normal, Break, Continue }

    private readonly List<Dictionary<string, object?>> _scopes = [];
    private readonly StringBuilder _output = new();

    private JinjaRenderer(Dictionary<string, object?> globals)
    {
        var builtins = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["raise_exception"] = (JinjaFunction)((args, _) =>
                throw new ChatTemplateException(args.Count > 0 ? ToText(args[0]) : "the chat template raised an exception")),
            ["namespace"] = (JinjaFunction)((_, kwargs) =>
            {
                var ns = new JinjaNamespace();
                foreach (var (k, v) in kwargs) ns[k] = v;
                return ns;
            }),
            ["range"] = (JinjaFunction)((args, _) => Range(args)),
            ["strftime_now"] = (JinjaFunction)((args, _) => StrftimeNow(args.Count > 0 ? ToText(args[0]) : "%Y-%m-%d")),
        };
        _scopes.Add(builtins);
        _scopes.Add(new Dictionary<string, object?>(globals, StringComparer.Ordinal));
    }

    public static string Render(List<Node> template, Dictionary<string, object?> globals)
    {
        var r = new JinjaRenderer(globals);
        r.RenderNodes(template);
        return r._output.ToString();
    }

    // ---- statements -------------------------------------------------------------------------

    private Flow RenderNodes(List<Node> nodes)
    {
        foreach (var node in nodes)
        {
            var flow = RenderNode(node);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow RenderNode(Node node)
    {
        switch (node)
        {
            case TextNode t:
                _output.Append(t.Text);
                return Flow.Normal;
            case OutputNode o:
                _output.Append(ToText(Eval(o.Value)));
                return Flow.Normal;
            case IfNode i:
                foreach (var (condition, body) in i.Branches)
                    if (IsTrue(Eval(condition))) return RenderNodes(body);
                return i.Else is null ? Flow.Normal : RenderNodes(i.Else);
            case ForNode f:
                return RenderFor(f);
            case SetNode s:
            {
                object? value = Eval(s.Value);
                if (s.Attribute is null) _scopes[^1][s.Name] = value;
                else if (Lookup(s.Name) is JinjaNamespace ns) ns[s.Attribute] = value;
                else throw new ChatTemplateException($"cannot set '{s.Name}.{s.Attribute}': '{s.Name}' is not a namespace");
                return Flow.Normal;
            }
            case SetBlockNode b:
            {
                int mark = _output.Length;
                RenderNodes(b.Body);
                _scopes[^1][b.Name] = _output.ToString(mark, _output.Length - mark);
                _output.Length = mark;
                return Flow.Normal;
            }
            case MacroNode m:
                _scopes[^1][m.Name] = (JinjaFunction)((args, kwargs) => CallMacro(m, args, kwargs));
                return Flow.Normal;
            case LoopControlNode c:
                return c.IsBreak ? Flow.Break : Flow.Continue;
            default:
                throw new ChatTemplateException($"cannot render {node.GetType().Name}");
        }
    }

    private Flow RenderFor(ForNode f)
    {
        var items = Iterate(Eval(f.Iterable), f.Iterable);
        if (f.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                _scopes.Add(new Dictionary<string, object?>(StringComparer.Ordinal));
                Bind(f.Targets, item);
                if (IsTrue(Eval(f.Filter))) kept.Add(item);
                _scopes.RemoveAt(_scopes.Count - 1);
            }
            items = kept;
        }
        if (items.Count == 0) return f.Else is null ? Flow.Normal : RenderNodes(f.Else);

        for (int i = 0; i < items.Count; i++)
        {
            var scope = new Dictionary<string, object?>(StringComparer.Ordinal) { ["loop"] = LoopInfo(items, i) };
            _scopes.Add(scope);
            Bind(f.Targets, items[i]);
            var flow = RenderNodes(f.Body);
            _scopes.RemoveAt(_scopes.Count - 1);
            if (flow == Flow.Break) break;
        }
        return Flow.Normal;
    }

    private void Bind(List<string> targets, object? item)
    {
        var scope = _scopes[^1];
        if (targets.Count == 1)
        {
            scope[targets[0]] = item;
            return;
        }
        if (item is not List<object?> parts || parts.Count != targets.Count)
            throw new ChatTemplateException($"cannot unpack {Describe(item)} into {targets.Count} loop variables");
        for (int i = 0; i < targets.Count; i++) scope[targets[i]] = parts[i];
    }

    private static Dictionary<string, object?> LoopInfo(List<object?> items, int i)
    {
        int n = items.Count;
        return new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["index"] = (long)(i + 1), ["index0"] = (long)i,
            ["revindex"] = (long)(n - i), ["revindex0"] = (long)(n - i - 1),
            ["first"] = i == 0, ["last"] = i == n - 1, ["length"] = (long)n,
            ["previtem"] = i > 0 ? items[i - 1] : new Undefined("loop.previtem"),
            ["nextitem"] = i < n - 1 ? items[i + 1] : new Undefined("loop.nextitem"),
            ["cycle"] = (JinjaFunction)((args, _) => args.Count == 0 ? null : args[i % args.Count]),
        };
    }

    private object? CallMacro(MacroNode m, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        for (int i = 0; i < m.Parameters.Count; i++)
        {
            var (name, fallback) = m.Parameters[i];
            scope[name] = i < args.Count ? args[i]
                : kwargs.TryGetValue(name, out var v) ? v
                : fallback is not null ? Eval(fallback) : new Undefined(name);
        }
        int mark = _output.Length;
        _scopes.Add(scope);
        RenderNodes(m.Body);
        _scopes.RemoveAt(_scopes.Count - 1);
        string text = _output.ToString(mark, _output.Length - mark);
        _output.Length = mark;
        return text;
    }

    // ---- expressions ------------------------------------------------------------------------

    private object? Lookup(string name)
    {
        for (int i = _scopes.Count - 1; i >= 0; i--)
            if (_scopes[i].TryGetValue(name, out var value)) return value;
        return new Undefined(name);
    }

    private object? Eval(Expr e)
    {
        switch (e)
        {
            case LiteralExpr l: return l.Value;
            case NameExpr n: return Lookup(n.Name);
            case ListExpr l: return l.Items.Select(Eval).ToList();
            case DictExpr d:
            {
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in d.Items) dict[ToText(Eval(k))] = Eval(v);
                return dict;
            }
            case AttributeExpr a: return GetAttribute(Eval(a.Target), a.Name);
            case IndexExpr i: return GetItem(Eval(i.Target), Eval(i.Index));
            case SliceExpr s: return Slice(Eval(s.Target), s);
            case CallExpr c: return Call(c);
            case FilterExpr f: return ApplyFilter(f);
            case TestExpr t: return RunTest(t) != t.Negated;
            case UnaryExpr u:
            {
                object? v = Eval(u.Operand);
                return u.Op switch
                {
                    "not" => !IsTrue(v),
                    "-" => v switch { long x => (object)(-x), double d => -d, _ => throw TypeError("-", v, null) },
                    _ => v,
                };
            }
            case BinaryExpr b: return EvalBinary(b);
            case ConditionalExpr c:
                return IsTrue(Eval(c.Condition)) ? Eval(c.Then) : c.Else is null ? new Undefined("else") : Eval(c.Else);
            default:
                throw new ChatTemplateException($"cannot evaluate {e.GetType().Name}");
        }
    }

    private object? EvalBinary(BinaryExpr b)
    {
        if (b.Op == "and")
        {
            var left = Eval(b.Left);
            return IsTrue(left) ? Eval(b.Right) : left;
        }
        if (b.Op == "or")
        {
            var left = Eval(b.Left);
            return IsTrue(left) ? left : Eval(b.Right);
        }
        object? l = Eval(b.Left), r = Eval(b.Right);
        switch (b.Op)
        {
            case "==": return ValueEquals(l, r);
            case "!=": return !ValueEquals(l, r);
            case "<": return Compare(l, r, b) < 0;
            case ">": return Compare(l, r, b) > 0;
            case "<=": return Compare(l, r, b) <= 0;
            case ">=": return Compare(l, r, b) >= 0;
            case "in": return Contains(r, l);
            case "~": return ToText(l) + ToText(r);
            case "+":
                if (l is string ls && r is string rs) return ls + rs;
                if (l is List<object?> ll && r is List<object?> rl) return ll.Concat(rl).ToList();
                return Arithmetic(b.Op, l, r);
            default:
                return Arithmetic(b.Op, l, r);
        }
    }

    private static object Arithmetic(string op, object? l, object? r)
    {
        if (op == "*" && l is string s && r is long times) return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, times)));
        if (l is long a && r is long b && op != "/")
        {
            return op switch
            {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "//" => b == 0 ? throw new ChatTemplateException("division by zero") : (long)Math.Floor((double)a / b),
                "%" => b == 0 ? throw new ChatTemplateException("division by zero") : ((a % b) + b) % b,
                "**" => (long)Math.Pow(a, b),
                _ => throw TypeError(op, l, r),
            };
        }
        if (l is long or double && r is long or double)
        {
            double x = Convert.ToDouble(l, CultureInfo.InvariantCulture), y = Convert.ToDouble(r, CultureInfo.InvariantCulture);
            return op switch
            {
                "+" => x + y, "-" => x - y, "*" => x * y, "/" => x / y,
                "//" => Math.Floor(x / y), "%" => x - y * Math.Floor(x / y), "**" => Math.Pow(x, y),
                _ => throw TypeError(op, l, r),
            };
        }
        throw TypeError(op, l, r);
    }

    private static ChatTemplateException TypeError(string op, object? l, object? r) =>
        new($"unsupported operand types for {op}: {Describe(l)} and {Describe(r)}");

    private object? Call(CallExpr c)
    {
        var args = c.Args.Select(Eval).ToList();
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, v) in c.Kwargs) kwargs[k] = Eval(v);
        if (c.Callee is AttributeExpr a)
        {
            object? target = Eval(a.Target);
            if (target is Dictionary<string, object?> d && d.TryGetValue(a.Name, out var member) && member is JinjaFunction bound)
                return bound(args, kwargs);
            return CallMethod(target, a.Name, args, c);
        }
        return Eval(c.Callee) is JinjaFunction f ? f(args, kwargs)
            : throw new ChatTemplateException($"{Describe(Eval(c.Callee))} is not callable (offset {c.Offset})");
    }

    private static object? CallMethod(object? target, string name, List<object?> args, Expr at)
    {
        string? Arg(int i) => i < args.Count && args[i] is not null and not Undefined ? ToText(args[i]) : null;
        switch (target)
        {
            case string s:
                return name switch
                {
                    "strip" => Arg(0) is { } chars ? s.Trim(chars.ToCharArray()) : s.Trim(),
                    "lstrip" => Arg(0) is { } chars ? s.TrimStart(chars.ToCharArray()) : s.TrimStart(),
                    "rstrip" => Arg(0) is { } chars ? s.TrimEnd(chars.ToCharArray()) : s.TrimEnd(),
                    "upper" => s.ToUpperInvariant(),
                    "lower" => s.ToLowerInvariant(),
                    "title" => Title(s),
                    "capitalize" => Capitalize(s),
                    "startswith" => args.Count > 0 && (args[0] is List<object?> l ? l.Any(p => s.StartsWith(ToText(p), StringComparison.Ordinal)) : s.StartsWith(ToText(args[0]), StringComparison.Ordinal)),
                    "endswith" => args.Count > 0 && (args[0] is List<object?> l ? l.Any(p => s.EndsWith(ToText(p), StringComparison.Ordinal)) : s.EndsWith(ToText(args[0]), StringComparison.Ordinal)),
                    "replace" => args.Count >= 2 ? s.Replace(ToText(args[0]), ToText(args[1]), StringComparison.Ordinal) : throw new ChatTemplateException("replace needs two arguments"),
                    "split" => (Arg(0) is { } sep ? s.Split(sep) : s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Select(p => (object?)p).ToList(),
                    "count" => args.Count > 0 ? (long)CountOccurrences(s, ToText(args[0])) : 0L,
                    "find" => args.Count > 0 ? (long)s.IndexOf(ToText(args[0]), StringComparison.Ordinal) : -1L,
                    "join" => args.Count > 0 ? string.Join(s, Iterate(args[0], at).Select(ToText)) : "",
                    _ => throw new ChatTemplateException($"strings have no method '{name}' (offset {at.Offset})"),
                };
            case Dictionary<string, object?> d:
                return name switch
                {
                    "items" => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList(),
                    "keys" => d.Keys.Select(k => (object?)k).ToList(),
                    "values" => d.Values.ToList(),
                    "get" => args.Count > 0 && d.TryGetValue(ToText(args[0]), out var v) ? v : args.Count > 1 ? args[1] : null,
                    _ => throw new ChatTemplateException($"mappings have no method '{name}' (offset {at.Offset})"),
                };
            case List<object?> list when name == "append":
                list.Add(args.Count > 0 ? args[0] : null);
                return null;
            default:
                throw new ChatTemplateException($"{Describe(target)} has no method '{name}' (offset {at.Offset})");
        }
    }

    private static object? GetAttribute(object? target, string name) => target switch
    {
        Dictionary<string, object?> d => d.TryGetValue(name, out var v) ? v : new Undefined(name),
        Undefined u => throw new ChatTemplateException($"'{u.Name}' is undefined (reading '.{name}')"),
        _ => new Undefined(name),
    };

    private static object? GetItem(object? target, object? index)
    {
        switch (target)
        {
            case Dictionary<string, object?> d:
                return d.TryGetValue(ToText(index), out var v) ? v : new Undefined(ToText(index));
            case List<object?> l when index is long i:
                long at = i < 0 ? l.Count + i : i;
                return at >= 0 && at < l.Count ? l[(int)at] : new Undefined($"[{i}]");
            case string s when index is long i:
                long c = i < 0 ? s.Length + i : i;
                return c >= 0 && c < s.Length ? s[(int)c].ToString() : new Undefined($"[{i}]");
            case Undefined u:
                throw new ChatTemplateException($"'{u.Name}' is undefined (reading [{ToText(index)}])");
            default:
                return new Undefined($"[{ToText(index)}]");
        }
    }

    private object? Slice(object? target, SliceExpr s)
    {
        long? Bound(Expr? e) => e is null ? null : Eval(e) is long v ? v : throw new ChatTemplateException("slice bounds must be integers");
        long? start = Bound(s.Start), stop = Bound(s.Stop), step = Bound(s.Step);
        List<object?> items = target switch
        {
            List<object?> l => l,
            string str => str.Select(ch => (object?)ch.ToString()).ToList(),
            _ => throw new ChatTemplateException($"cannot slice {Describe(target)}"),
        };
        int n = items.Count;
        long st = step ?? 1;
        if (st == 0) throw new ChatTemplateException("slice step cannot be zero");
        long Clamp(long? v, long fallback, long lo, long hi)
        {
            if (v is null) return fallback;
            long x = v.Value < 0 ? v.Value + n : v.Value;
            return Math.Clamp(x, lo, hi);
        }
        var result = new List<object?>();
        if (st > 0)
            for (long i = Clamp(start, 0, 0, n), end = Clamp(stop, n, 0, n); i < end; i += st) result.Add(items[(int)i]);
        else
            for (long i = Clamp(start, n - 1, -1, n - 1), end = Clamp(stop, -1, -1, n - 1); i > end; i += st) result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Select(ToText)) : result;
    }

    private object? ApplyFilter(FilterExpr f)
    {
        object? v = Eval(f.Target);
        var args = f.Args.Select(Eval).ToList();
        object? Arg(int i, string name, object? fallback = null)
        {
            if (i >= 0 && i < args.Count) return args[i];
            foreach (var (k, e) in f.Kwargs) if (k == name) return Eval(e);
            return fallback;
        }
        switch (f.Name)
        {
            case "trim": return ToText(v).Trim();
            case "upper": return ToText(v).ToUpperInvariant();
            case "lower": return ToText(v).ToLowerInvariant();
            case "capitalize": return Capitalize(ToText(v));
            case "title": return Title(ToText(v));
            case "string": return ToText(v);
            case "safe": case "e": case "escape": return v;
            case "length": case "count":
                return v switch
                {
                    string lenText => (long)lenText.Length,
                    List<object?> lenList => (long)lenList.Count,
                    Dictionary<string, object?> lenDict => (long)lenDict.Count,
                    _ => throw new ChatTemplateException($"{Describe(v)} has no length"),
                };
            case "default": case "d":
            {
                bool boolean = IsTrue(Arg(1, "boolean", false));
                return v is Undefined || (boolean && !IsTrue(v)) ? Arg(0, "default_value", "") : v;
            }
            case "first": return Iterate(v, f).FirstOrDefault(new Undefined("first"));
            case "last": { var all = Iterate(v, f); return all.Count > 0 ? all[^1] : new Undefined("last"); }
            case "list": return Iterate(v, f);
            case "reverse": return v is string reversed ? new string(reversed.Reverse().ToArray()) : Enumerable.Reverse(Iterate(v, f)).ToList();
            case "join": return string.Join(ToText(Arg(0, "d", "")), Iterate(v, f).Select(ToText));
            case "replace": return ToText(v).Replace(ToText(Arg(0, "old")), ToText(Arg(1, "new")), StringComparison.Ordinal);
            case "int": return v switch { long asLong => asLong, double asDouble => (long)asDouble, bool asBool => asBool ? 1L : 0L, _ => long.TryParse(ToText(v), NumberStyles.Integer, CultureInfo.InvariantCulture, out long p) ? p : 0L };
            case "float": return v switch { long fromLong => (double)fromLong, double fromDouble => fromDouble, _ => double.TryParse(ToText(v), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) ? p : 0.0 };
            case "abs": return v switch { long absLong => (object)Math.Abs(absLong), double absDouble => Math.Abs(absDouble), _ => throw TypeError("abs", v, null) };
            case "items": return CallMethod(v, "items", [], f);
            case "unique": { var seen = new List<object?>(); foreach (var x in Iterate(v, f)) if (!seen.Any(y => ValueEquals(x, y))) seen.Add(x); return seen; }
            case "tojson": return ToJson(v, Arg(0, "indent") is long indent ? (int)indent : null, 0);
            case "indent":
            {
                string pad = Arg(0, "width", 4L) is long w ? new string(' ', (int)w) : ToText(Arg(0, "width"));
                bool first = IsTrue(Arg(1, "first", false));
                string[] lines = ToText(v).Split('\n');
                for (int i = first ? 0 : 1; i < lines.Length; i++) if (lines[i].Length > 0) lines[i] = pad + lines[i];
                return string.Join('\n', lines);
            }
            case "map":
            {
                var items = Iterate(v, f);
                if (Arg(-1, "attribute") is { } attribute) return items.Select(x => GetAttribute(x, ToText(attribute))).ToList();
                if (args.Count > 0) return items.Select(x => ApplyNamedFilter(ToText(args[0]), x)).ToList();
                return items;
            }
            case "selectattr": case "rejectattr":
            {
                bool select = f.Name == "selectattr";
                string attribute = ToText(Arg(0, "attr"));
                string? test = args.Count > 1 ? ToText(args[1]) : null;
                var testArgs = args.Skip(2).ToList();
                return Iterate(v, f).Where(x =>
                {
                    object? value = GetAttribute(x, attribute);
                    bool ok = test is null ? IsTrue(value) : NamedTest(test, value, testArgs);
                    return ok == select;
                }).ToList();
            }
            case "select": case "reject":
            {
                bool select = f.Name == "select";
                string? test = args.Count > 0 ? ToText(args[0]) : null;
                var testArgs = args.Skip(1).ToList();
                return Iterate(v, f).Where(x => (test is null ? IsTrue(x) : NamedTest(test, x, testArgs)) == select).ToList();
            }
            default:
                throw new ChatTemplateException($"unsupported filter '{f.Name}' (offset {f.Offset})");
        }
    }

    private static object? ApplyNamedFilter(string name, object? v) => name switch
    {
        "string" => ToText(v),
        "trim" => ToText(v).Trim(),
        "upper" => ToText(v).ToUpperInvariant(),
        "lower" => ToText(v).ToLowerInvariant(),
        _ => throw new ChatTemplateException($"unsupported filter '{name}' in map"),
    };

    private bool RunTest(TestExpr t)
    {
        object? v = Eval(t.Target);
        return NamedTest(t.Name, v, t.Args.Select(Eval).ToList());
    }

    private static bool NamedTest(string name, object? v, List<object?> args) => name switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is Dictionary<string, object?>,
        "sequence" => v is List<object?> or string,
        "iterable" => v is List<object?> or string or Dictionary<string, object?>,
        "callable" => v is JinjaFunction,
        "even" => v is long e && e % 2 == 0,
        "odd" => v is long o && o % 2 != 0,
        "divisibleby" => v is long x && args.Count > 0 && args[0] is long y && y != 0 && x % y == 0,
        "lower" => v is string s && s == s.ToLowerInvariant(),
        "upper" => v is string s && s == s.ToUpperInvariant(),
        "equalto" or "eq" or "==" or "sameas" => args.Count > 0 && ValueEquals(v, args[0]),
        "ne" or "!=" => args.Count > 0 && !ValueEquals(v, args[0]),
        "in" => args.Count > 0 && Contains(args[0], v),
        _ => throw new ChatTemplateException($"unsupported test '{name}'"),
    };

    // ---- values -----------------------------------------------------------------------------

    public static bool IsTrue(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    private static List<object?> Iterate(object? v, Expr at) => v switch
    {
        List<object?> l => l,
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        Dictionary<string, object?> d => d.Keys.Select(k => (object?)k).ToList(),
        Undefined or null => [],
        _ => throw new ChatTemplateException($"{Describe(v)} is not iterable (offset {at.Offset})"),
    };

    private static bool ValueEquals(object? a, object? b)
    {
        if (a is Undefined && b is Undefined) return true;
        if (a is long or double && b is long or double)
            return Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture);
        if (a is List<object?> la && b is List<object?> lb) return la.Count == lb.Count && la.Zip(lb).All(p => ValueEquals(p.First, p.Second));
        return Equals(a, b);
    }

    private static int Compare(object? a, object? b, Expr at)
    {
        if (a is long or double && b is long or double)
            return Convert.ToDouble(a, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(b, CultureInfo.InvariantCulture));
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        throw new ChatTemplateException($"cannot compare {Describe(a)} and {Describe(b)} (offset {at.Offset})");
    }

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => s.Contains(ToText(item), StringComparison.Ordinal),
        List<object?> l => l.Any(x => ValueEquals(x, item)),
        Dictionary<string, object?> d => d.ContainsKey(ToText(item)),
        _ => false,
    };

    /// <summary>Python's str(): how a value prints in {{ }}.</summary>
    public static string ToText(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatDouble(d),
        _ => Repr(v),
    };

    private static string Repr(object? v) => v switch
    {
        string s => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        JinjaFunction => "<function>",
        _ => ToText(v),
    };

    private static string FormatDouble(double d) =>
        double.IsInteger(d) && Math.Abs(d) < 1e16 ? d.ToString("0.0", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture);

    private static string Describe(object? v) => v switch
    {
        null => "None",
        Undefined u => $"undefined '{u.Name}'",
        string => "a string",
        long or double => "a number",
        bool => "a boolean",
        List<object?> => "a list",
        Dictionary<string, object?> => "a mapping",
        _ => v.GetType().Name,
    };

    /// <summary>json.dumps as Hugging Face's tojson calls it (non-ASCII kept, ", " and ": " separators).</summary>
    private static string ToJson(object? v, int? indent, int depth)
    {
        string Pad(int level) => indent is null ? "" : "\n" + new string(' ', indent.Value * level);
        string itemSeparator = indent is null ? ", " : ",";
        switch (v)
        {
            case null or Undefined: return "null";
            case bool b: return b ? "true" : "false";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FormatDouble(d);
            case string s:
            {
                var sb = new StringBuilder("\"");
                foreach (char c in s)
                {
                    switch (c)
                    {
                        case '"': sb.Append("\\\""); break;
                        case '\\': sb.Append("\\\\"); break;
                        case '\n': sb.Append("\\n"); break;
                        case '\r': sb.Append("\\r"); break;
                        case '\t': sb.Append("\\t"); break;
                        default:
                            if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                            else sb.Append(c);
                            break;
                    }
                }
                return sb.Append('"').ToString();
            }
            case List<object?> list:
                if (list.Count == 0) return "[]";
                return "[" + string.Join(itemSeparator, list.Select(x => Pad(depth + 1) + ToJson(x, indent, depth + 1))) + Pad(depth) + "]";
            case Dictionary<string, object?> dict:
                if (dict.Count == 0) return "{}";
                return "{" + string.Join(itemSeparator, dict.Select(kv => Pad(depth + 1) + ToJson(kv.Key, indent, depth + 1) + ": " + ToJson(kv.Value, indent, depth + 1))) + Pad(depth) + "}";
            default:
                return ToJson(ToText(v), indent, depth);
        }
    }

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            sb.Append(start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = !char.IsLetterOrDigit(c);
        }
        return sb.ToString();
    }

    private static int CountOccurrences(string s, string part)
    {
        if (part.Length == 0) return s.Length + 1;
        int count = 0;
        for (int i = s.IndexOf(part, StringComparison.Ordinal); i >= 0; i = s.IndexOf(part, i + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    private static List<object?> Range(List<object?> args)
    {
        long start = 0, stop, step = 1;
        if (args.Count == 1) stop = args[0] as long? ?? 0;
        else
        {
            start = args.Count > 0 ? args[0] as long? ?? 0 : 0;
            stop = args.Count > 1 ? args[1] as long? ?? 0 : 0;
            step = args.Count > 2 ? args[2] as long? ?? 1 : 1;
        }
        if (step == 0) throw new ChatTemplateException("range() step cannot be zero");
        var result = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step) result.Add(i);
        return result;
    }

    /// <summary>The few strftime codes chat templates use for "today's date".</summary>
    private static string StrftimeNow(string format)
    {
        var now = DateTime.Now;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { sb.Append(format[i]); continue; }
            char code = format[++i];
            sb.Append(code switch
            {
                'd' => now.ToString("dd", CultureInfo.InvariantCulture),
                'm' => now.ToString("MM", CultureInfo.InvariantCulture),
                'Y' => now.ToString("yyyy", CultureInfo.InvariantCulture),
                'y' => now.ToString("yy", CultureInfo.InvariantCulture),
                'b' => now.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => now.ToString("MMMM", CultureInfo.InvariantCulture),
                'a' => now.ToString("ddd", CultureInfo.InvariantCulture),
                'A' => now.ToString("dddd", CultureInfo.InvariantCulture),
                'H' => now.ToString("HH", CultureInfo.InvariantCulture),
                'M' => now.ToString("mm", CultureInfo.InvariantCulture),
                'S' => now.ToString("ss", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => "%" + code,
            });
        }
        return sb.ToString();
    }
}
