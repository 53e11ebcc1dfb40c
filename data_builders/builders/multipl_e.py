"""Translate one typed function task into 20 languages, the MultiPL-E way: a prompt and a test harness per language.

MultiPL-E (Cassano et al., 2023; github.com/nuprl/MultiPL-E, `dataset_builder/humaneval_to_<lang>.py`) turns a typed
Python problem into other languages with one small translator per language: the signature in the language's idiom
with the description as a doc comment (`translate_prompt`), and the Python asserts as that language's deep-equality
checks on translated value literals (`gen_literal`, `gen_list`, `gen_dict`, `deep_equality`). This module does the same
from a `TypedTask` (function name, typed parameters, return type, description, examples `args -> expected`), written
in a small type language like MultiPL-E's:

    int  float  bool  str  list[T]  dict[str,T]  tuple[T1,T2,...]  optional[T]

`translate_prompt(task, lang)` is the MultiPL-E prompt (the signature left open for a completion; examples appear in
the doc comment as translated `>>>` doctests, MultiPL-E's "transform" doctests). `translate_tests(task, lang)` is the
harness that is appended after a *complete* candidate function (what the code verifier runs); `multipl_e_row(task,
lang)` is the row in MultiPL-E's published format (`prompt`, `tests`, `stop_tokens`, ...), whose tests close the
function as MultiPL-E's do, so `prompt + completion + tests` is the program.

Per-language choices follow MultiPL-E's translators (types: `long` in C++/Java/C#/Scala, `isize` in Rust, `int` in
Go, `Int` in Kotlin/Haskell; Java/C#/Scala functions are static members of `Problem`; names camelCase in Java,
Kotlin, Scala and Haskell, PascalCase in C#). Where we differ, it is so that a harness appended after a complete
function runs without extra libraries or flags, and says so when a check fails:
- checks that fail loudly without flags: Java and Kotlin throw `AssertionError` (their `assert` needs `-ea`), C# throws
  (`Debug.Assert` needs DEBUG), Racket calls `error` (rackunit's `check-equal?` exits 0), Perl and Lua carry a small
  deep-equality function (Test::Deep and luaunit are not installed here), Go runs a `main` in `package main`
  (MultiPL-E writes a `_test.go` file for `go test`) and compares with generated helpers (no imports after code);
- floats are `double`/`Double`/`f64` (MultiPL-E uses 32-bit `float` in C++/Java/C#/Scala), and a float result (or a
  list of floats) is compared within 1e-6, not exactly;
- JavaScript uses `assert.deepStrictEqual` (MultiPL-E: the loose `deepEqual`), and `None` is checked with `== null`.

A type a language cannot express (MultiPL-E skips such problems too) raises `Unsupported`, e.g. lists in C, optional
and tuple values in Go, tuples in Java and C#, dictionaries and floats in Bash; `supports(task, lang)` asks first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

LANGUAGES = (
    "python",
    "javascript",
    "typescript",
    "c",
    "cpp",
    "java",
    "csharp",
    "go",
    "rust",
    "php",
    "ruby",
    "perl",
    "lua",
    "r",
    "scala",
    "kotlin",
    "bash",
    "haskell",
    "ocaml",
    "racket",
)
DISPLAY_NAMES = {
    "python": "Python",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "c": "C",
    "cpp": "C++",
    "java": "Java",
    "csharp": "C#",
    "go": "Go",
    "rust": "Rust",
    "php": "PHP",
    "ruby": "Ruby",
    "perl": "Perl",
    "lua": "Lua",
    "r": "R",
    "scala": "Scala",
    "kotlin": "Kotlin",
    "bash": "Bash",
    "haskell": "Haskell",
    "ocaml": "OCaml",
    "racket": "Racket",
}
FENCES = {
    "python": "python",
    "javascript": "javascript",
    "typescript": "typescript",
    "c": "c",
    "cpp": "cpp",
    "java": "java",
    "csharp": "csharp",
    "go": "go",
    "rust": "rust",
    "php": "php",
    "ruby": "ruby",
    "perl": "perl",
    "lua": "lua",
    "r": "r",
    "scala": "scala",
    "kotlin": "kotlin",
    "bash": "bash",
    "haskell": "haskell",
    "ocaml": "ocaml",
    "racket": "racket",
}
# MultiPL-E's file extensions, its `language` column (e.g. "cpp", "rs", "sh")
MULTIPL_E_NAMES = {
    "python": "py",
    "javascript": "js",
    "typescript": "ts",
    "c": "c",
    "cpp": "cpp",
    "java": "java",
    "csharp": "cs",
    "go": "go_test.go",
    "rust": "rs",
    "php": "php",
    "ruby": "rb",
    "perl": "pl",
    "lua": "lua",
    "r": "r",
    "scala": "scala",
    "kotlin": "kt",
    "bash": "sh",
    "haskell": "hs",
    "ocaml": "ml",
    "racket": "rkt",
}
CLASS_NAME = "Problem"  # MultiPL-E's class/object around Java, C# and Scala functions
FLOAT_TOLERANCE = 1e-6


class Unsupported(ValueError):
    """The task uses a type the language's translation cannot express (MultiPL-E skips these problems too)."""


# ---------------------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Type:
    """A type of the small type language: kind int/float/bool/str/list/dict/tuple/optional, with its arguments."""

    kind: str
    args: tuple[Type, ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return self.kind
        return f"{self.kind}[{','.join(str(a) for a in self.args)}]"

    def contains(self, kind: str) -> bool:
        return self.kind == kind or any(a.contains(kind) for a in self.args)


SCALARS = ("int", "float", "bool", "str")
_TOKEN = re.compile(r"\s*([A-Za-z_]+|\[|\]|,)")


def parse_type(text: str) -> Type:
    """`list[dict[str,int]]` -> Type; ValueError naming what is wrong."""
    if isinstance(text, Type):
        return text
    if not isinstance(text, str):
        raise ValueError(f"a type must be a string like 'list[int]', got {text!r}")  # noqa: TRY004 (a config error)
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"bad type {text!r} at {text[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    parsed, rest = _parse(tokens, text)
    if rest:
        raise ValueError(f"bad type {text!r}: unexpected {''.join(rest)!r}")
    return parsed


def _parse(tokens: list[str], text: str) -> tuple[Type, list[str]]:
    if not tokens:
        raise ValueError(f"bad type {text!r}: it ends early")
    head, rest = tokens[0].lower(), tokens[1:]
    if head in SCALARS:
        return Type(head), rest
    arity = {"list": 1, "dict": 2, "tuple": None, "optional": 1}
    if head not in arity:
        raise ValueError(
            f"bad type {text!r}: unknown {head!r}; types are int, float, bool, str, list[T], "
            "dict[str,T], tuple[T,...], optional[T]"
        )
    if not rest or rest[0] != "[":
        raise ValueError(f"bad type {text!r}: {head} needs [..]")
    rest, args = rest[1:], []
    while True:
        arg, rest = _parse(rest, text)
        args.append(arg)
        if rest and rest[0] == ",":
            rest = rest[1:]
            continue
        if rest and rest[0] == "]":
            rest = rest[1:]
            break
        raise ValueError(f"bad type {text!r}: expected ',' or ']'")
    if arity[head] is not None and len(args) != arity[head]:
        raise ValueError(f"bad type {text!r}: {head} takes {arity[head]} type(s)")
    if head == "dict" and args[0] != Type("str"):
        raise ValueError(f"bad type {text!r}: dictionary keys are str")
    return Type(head, tuple(args)), rest


def check_value(value: object, t: Type, where: str = "value") -> None:
    """ValueError unless `value` (JSON-like Python) has type `t`."""
    ok = True
    if t.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t.kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif t.kind == "bool":
        ok = isinstance(value, bool)
    elif t.kind == "str":
        ok = isinstance(value, str)
    elif t.kind == "list":
        ok = isinstance(value, list | tuple)
        if ok:
            for i, item in enumerate(value):
                check_value(item, t.args[0], f"{where}[{i}]")
    elif t.kind == "tuple":
        ok = isinstance(value, list | tuple) and len(value) == len(t.args)
        if ok:
            for i, (item, sub) in enumerate(zip(value, t.args, strict=True)):
                check_value(item, sub, f"{where}[{i}]")
    elif t.kind == "dict":
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        if ok:
            for k, item in value.items():
                check_value(item, t.args[1], f"{where}[{k!r}]")
    elif t.kind == "optional" and value is not None:
        check_value(value, t.args[0], where)
    if not ok:
        raise ValueError(f"{where}: {value!r} is not a {t}")


@dataclass(frozen=True)
class Example:
    args: tuple  # argument values (JSON-like Python values)
    expected: object


@dataclass(frozen=True)
class TypedTask:
    """One function to write: name, typed parameters, return type, description and examples."""

    name: str
    params: tuple[tuple[str, Type], ...]
    returns: Type
    description: str
    examples: tuple[Example, ...]
    doc_examples: int = 2  # examples shown in the prompt's doc comment (MultiPL-E keeps the docstring's doctests)

    def renamed(self, name: str) -> TypedTask:
        return replace(self, name=name, description=re.sub(rf"\b{re.escape(self.name)}\b", name, self.description))


def make_task(
    name: str, params: str | list, returns: str, description: str, examples, doc_examples: int = 2
) -> TypedTask:
    """A TypedTask from plain values: params `"xs: list[int], k: int"` (or [[name, type], ...]), return type
    `"int"`, examples `[[[args...], expected], ...]`; ValueError naming what is wrong."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"task name must be an identifier, got {name!r}")
    if isinstance(params, str):
        pairs = []
        for part in _split_params(params):
            pname, sep, ptype = part.partition(":")
            if not sep:
                raise ValueError(f"parameter {part!r} needs a type: 'name: type'")
            pairs.append((pname.strip(), ptype.strip()))
    elif isinstance(params, list | tuple):
        pairs = [tuple(p) for p in params]
    else:
        raise ValueError(f"params must be 'name: type, ...' or a list of [name, type], got {params!r}")  # noqa: TRY004
    typed = []
    for pname, ptype in pairs:
        if not isinstance(pname, str) or not pname.isidentifier():
            raise ValueError(f"parameter name must be an identifier, got {pname!r}")
        typed.append((pname, parse_type(ptype)))
    ret = parse_type(returns)
    if not isinstance(description, str) or not description.strip():
        raise ValueError("task description must be a non-empty string")
    out = []
    if not isinstance(examples, list | tuple) or not examples:
        raise ValueError("a task needs at least one example [[args...], expected]")
    for i, example in enumerate(examples):
        if isinstance(example, Example):
            args, expected = example.args, example.expected
        elif isinstance(example, list | tuple) and len(example) == 2 and isinstance(example[0], list | tuple):
            args, expected = example
        else:
            raise ValueError(f"example {i} must be [[args...], expected], got {example!r:.80}")
        if len(args) != len(typed):
            raise ValueError(f"example {i} has {len(args)} arguments; {name} takes {len(typed)}")
        for j, (arg, (pname, ptype)) in enumerate(zip(args, typed, strict=True)):
            check_value(arg, ptype, f"example {i} argument {pname}")
        check_value(expected, ret, f"example {i} expected value")
        out.append(Example(tuple(args), expected))
    return TypedTask(name, tuple(typed), ret, description.strip(), tuple(out), doc_examples)


def _split_params(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def task_from_dict(row: dict) -> TypedTask:
    """A TypedTask from a JSON object {name, params, returns, description, examples}."""
    missing = [k for k in ("name", "params", "returns", "description", "examples") if k not in row]
    if missing:
        raise ValueError(f"typed task needs {missing}; has {sorted(row)}")
    return make_task(row["name"], row["params"], row["returns"], row["description"], row["examples"])


# ------------------------------------------------------------------------------------------------------ helpers


def _camel(name: str) -> str:
    parts = name.split("_")
    head = next((i for i, p in enumerate(parts) if p), 0)
    return "_" * head + parts[head] + "".join(p[:1].upper() + p[1:] for p in parts[head + 1 :])


def _pascal(name: str) -> str:
    camel = _camel(name)
    return camel[:1].upper() + camel[1:]


def entry_name(name: str, language: str) -> str:
    """The function's name in `language`'s idiom (MultiPL-E: camelCase in Java, Kotlin, Scala and Haskell,
    PascalCase in C#)."""
    if language in ("java", "kotlin", "scala", "haskell"):
        return _camel(name)
    if language == "csharp":
        return _pascal(name)
    return name


def _c_string(s: str) -> str:
    """A double-quoted literal valid in C, C++, Java, C#, Go, Rust, JS, Kotlin, Scala, Haskell (ASCII escapes)."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32:
            out.append(json.dumps(ch)[1:-1])
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _float(v: float) -> str:
    text = repr(float(v))
    return text if ("." in text or "e" in text or "inf" in text or "nan" in text) else text + ".0"


_DOCTESTS = {"doctests": "transform"}  # the doctest mode of the prompt being built (translate_prompt's argument)


def _doc_lines(task: TypedTask, language: str) -> list[str]:
    """Description, then up to `doc_examples` examples as doctests (`>>> call` / `expected`): translated into
    `language` (MultiPL-E's "transform"), kept in Python ("keep") or left out ("remove")."""
    lines = task.description.splitlines()
    mode = _DOCTESTS["doctests"]
    if mode == "remove":
        return lines
    t = TRANSLATORS["python" if mode == "keep" else language]
    for example in task.examples[: task.doc_examples]:
        try:
            call = t.call_expr(task, example.args, task.name if mode == "keep" else None)
            lines += [f">>> {call}", t.literal(example.expected, task.returns)]
        except Unsupported:
            continue
    return lines


def _comment(lines: list[str], prefix: str) -> str:
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines) + "\n"


# ------------------------------------------------------------------------------------------------- translators


class _Lazy(dict):
    """Template parts computed on first use (str.format_map looks each name up when it reaches it)."""

    def __init__(self, **thunks) -> None:
        super().__init__()
        self.thunks = thunks

    def __missing__(self, key: str) -> str:
        value = self[key] = self.thunks[key]()
        return value


class Translator:
    """One language: types, literals, calls, the prompt, and the test harness. Subclasses override the parts."""

    language = ""
    stop_tokens: tuple[str, ...] = ()
    comment = "// "

    # names and types
    def fn(self, task: TypedTask) -> str:
        return entry_name(task.name, self.language)

    any_type = ""  # the one type of a dynamically typed language
    scalar_types: ClassVar[dict[str, str]] = {}  # int/float/bool/str -> the language's type

    def type(self, t: Type) -> str:
        if self.any_type:
            return self.any_type
        if t.kind in self.scalar_types:
            return self.scalar_types[t.kind]
        return self.compound_type(t)

    # list/dict/tuple/optional -> a template naming {elem} (the item or value type), {atom} (the same as an
    # argument, see _ML), {items} (a tuple's types joined by tuple_type_sep) or {n} (a tuple's size)
    type_templates: ClassVar[dict[str, str]] = {}
    tuple_type_sep = ", "
    type_note = ""  # said after "has no translation for T"

    def compound_type(self, t: Type) -> str:
        if t.kind not in self.type_templates:
            raise Unsupported(f"{self.language} has no translation for {t}{self.type_note}")
        sub = t.args[1] if t.kind == "dict" else t.args[0]
        trailing = "," if self.tuple_trailing_comma and len(t.args) == 1 else ""
        return self.type_templates[t.kind].format_map(
            _Lazy(
                elem=lambda: self.elem_type(sub),
                atom=lambda: self.atom_type(sub),
                n=lambda: len(t.args),
                items=lambda: self.tuple_type_sep.join(self.type(a) for a in t.args) + trailing,
            )
        )

    # values: the generic literal below is set by the few pieces each language spells differently. Templates
    # name their parts {items}, {type} (the value's type), {elem} (its element type), {value} (an optional's value);
    # parts are computed when the template names them, in the template's order.
    literal_kinds: frozenset[str] = frozenset(("int", "float", "bool", "str", "list", "tuple", "dict", "optional"))
    null: str | None = None  # a missing value's literal at any type (dynamic languages)
    true_false = ("true", "false")
    int_template = "{}"
    paren_negative = False  # numbers below zero in parentheses
    str_template = "{}"
    str_escapes: tuple[tuple[str, str], ...] = ()  # replacements after _c_string
    escape_keys = False  # dictionary keys as string literals (with str_escapes) rather than plain _c_string
    list_template, empty_list_template, list_sep = "[{items}]", "", ", "
    tuple_template, tuple_sep, tuple_trailing_comma = "[{items}]", ", ", False
    dict_template, empty_dict_template, dict_sep = "{{{items}}}", "", ", "
    dict_entry = "{key}: {value}"
    none_template, some_template = "", "{value}"
    items_first = False  # a list's items computed before its element type

    def quote(self, s: str) -> str:
        return _c_string(s)

    def escaped(self, s: str) -> str:
        text = self.quote(s)
        for old, new in self.str_escapes:
            text = text.replace(old, new)
        return text

    def elem_type(self, t: Type) -> str:
        return self.type(t)

    def _fill(self, template: str, t: Type, elem: Type | None, first: bool = False, **parts) -> str:
        lazy = _Lazy(type=lambda: self.type(t), elem=lambda: self.elem_type(elem), **parts)
        if first:
            lazy["items"]  # noqa: B018 (computed first, as its errors come first)
        return template.format_map(lazy)

    def literal(self, value: object, t: Type) -> str:
        if value is None and self.null is not None:
            return self.null
        if t.kind not in self.literal_kinds:
            raise Unsupported(f"{self.language} has no translation for {t}")
        match t.kind:
            case "bool":
                return self.true_false[0 if value else 1]
            case "int" | "float":
                text = self.int_template.format(value) if t.kind == "int" else _float(value)
                return f"({text})" if self.paren_negative and value < 0 else text
            case "str":
                return self.str_template.format(self.escaped(value))
            case "list":
                template = (not value and self.empty_list_template) or self.list_template
                items = lambda: self.list_sep.join(self.literal(v, t.args[0]) for v in value)  # noqa: E731
                return self._fill(template, t, t.args[0], self.items_first, items=items)
            case "tuple":
                items = self.tuple_sep.join(self.literal(v, s) for v, s in zip(value, t.args, strict=True))
                return self.tuple_template.format(
                    items=items + ("," if self.tuple_trailing_comma and len(t.args) == 1 else "")
                )
            case "dict":
                key = self.escaped if self.escape_keys else self.quote
                items = self.dict_sep.join(
                    self.dict_entry.format(key=key(k), value=self.literal(v, t.args[1])) for k, v in value.items()
                )
                template = (not value and self.empty_dict_template) or self.dict_template
                return self._fill(template, t, t.args[1], items=lambda: items)
            case "optional":
                if value is None:
                    return self._fill(self.none_template, t, t.args[0])
                return self._fill(self.some_template, t, t.args[0], value=lambda: self.literal(value, t.args[0]))
        raise Unsupported(f"{self.language} has no translation for {t}")

    def args_text(self, task: TypedTask, args: tuple) -> list[str]:
        return [self.literal(a, pt) for a, (_, pt) in zip(args, task.params, strict=True)]

    def call_expr(self, task: TypedTask, args: tuple, fn: str | None = None) -> str:
        return f"{fn or self.fn(task)}({', '.join(self.args_text(task, args))})"

    # the prompt: prompt_head(task), the doc comment (each line after `comment`), then signature_template naming
    # {name} (the task's), {fn} (the language's), {ret} (the return type) and {params} (param_template of {param}
    # and {type} per parameter, joined by param_sep; no_params where there are none)
    prompt_header = signature_template = ""
    param_template, param_sep, no_params = "{param}", ", ", ""

    def prompt_head(self, task: TypedTask) -> str:
        return self.prompt_header

    def prompt(self, task: TypedTask) -> str:
        params = self.param_sep.join(self.param_template.format(param=n, type=self.type(t)) for n, t in task.params)
        return (
            self.prompt_head(task)
            + _comment(_doc_lines(task, self.language), self.comment)
            + self.signature_template.format(
                name=task.name, fn=self.fn(task), params=params or self.no_params, ret=self.type(task.returns)
            )
        )

    # one example's check: a template for float results, one for list[float] results ("": not special) and one for
    # the rest, naming {call}, {expected}, {tol}, {quoted_call}, {shown} (Python's repr of "call == expected");
    # check_line wraps the result as {cond}, with {msg}
    check_call: str | None = "candidate"  # the name the checks call (None: the function's own)
    float_check = float_list_check = ""
    float_anywhere = False  # float_check for any result with a float in it
    eq_check = "{call} == {expected}"
    check_line = "{cond}"

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args, self.check_call)
        expected = _expected_text(self, example, task)
        template = self.eq_check
        floats = task.returns.contains("float") if self.float_anywhere else task.returns.kind == "float"
        if floats and self.float_check:
            template = self.float_check
        elif _is_float_list(task.returns) and self.float_list_check:
            template = self.float_list_check
        parts = {
            "call": call,
            "expected": expected,
            "tol": FLOAT_TOLERANCE,
            "quoted_call": _c_string(call),
            "shown": repr(call + " == " + expected),
        }
        return self.check_line.format(cond=template.format(**parts), msg=_c_string("assertion failed: " + call))

    # the harness: prelude(task), tests_head, the checks, tests_tail ({name}: the task's name, {fn}: the function's
    # name in the language's idiom); refuse(task) first raises Unsupported for results it cannot compare
    tests_head: tuple[str, ...] = ()
    tests_tail: tuple[str, ...] = ()
    closer = ""  # what MultiPL-E's tests start with to close the prompt's function (stop tokens cut it off)

    def refuse(self, task: TypedTask) -> None:
        pass

    def prelude(self, task: TypedTask) -> list[str]:
        return []

    def tests(self, task: TypedTask) -> str:
        """The harness appended after a complete function."""
        self.refuse(task)

        def fill(lines: tuple[str, ...]) -> list[str]:
            return [line.replace("{name}", task.name).replace("{fn}", self.fn(task)) for line in lines]

        lines = [*self.prelude(task), *fill(self.tests_head), *[self.check(task, e) for e in task.examples]]
        return "\n".join(lines + fill(self.tests_tail)) + "\n"

    def close_prompt(self, task: TypedTask) -> str:
        return self.closer

    def validate(self, task: TypedTask) -> None:
        for _, pt in task.params:
            self.type(pt)
        self.type(task.returns)


def _expected_text(t: Translator, example: Example, task: TypedTask) -> str:
    return t.literal(example.expected, task.returns)


def _item_types(value: list, t: Type) -> list[Type]:
    """The type of each item of a list or tuple value."""
    return [t.args[0]] * len(value) if t.kind == "list" else list(t.args)


def _is_float_list(t: Type) -> bool:
    return t.kind == "list" and t.args[0].kind == "float"


def _refuse_float_list(t: Translator, task: TypedTask) -> None:
    if _is_float_list(task.returns):
        raise Unsupported(f"{t.language}: list[float] results are not compared with tolerance here")


# ---- Python


class Python(Translator):
    language = "python"
    stop_tokens = ("\ndef", "\n#", "\nif", "\nclass")
    float_anywhere = True
    float_check = "    assert _close({call}, {expected}), {shown}"
    eq_check = "    assert {call} == {expected}, {shown}"
    null, true_false = "None", ("True", "False")
    tuple_template, tuple_trailing_comma = "({items})", True

    _NAMES: ClassVar[dict[str, str]] = {"list": "List", "dict": "Dict", "tuple": "Tuple", "optional": "Optional"}

    def quote(self, s: str) -> str:
        return repr(s)

    def type(self, t: Type) -> str:
        if t.kind in SCALARS:
            return t.kind
        return f"{self._NAMES[t.kind]}[{', '.join(self.type(a) for a in t.args)}]"

    def prompt(self, task: TypedTask) -> str:
        used = sorted(
            {
                self._NAMES[k]
                for k in self._NAMES
                if task.returns.contains(k) or any(pt.contains(k) for _, pt in task.params)
            }
        )
        header = f"from typing import {', '.join(used)}\n\n" if used else ""
        params = ", ".join(f"{n}: {self.type(t)}" for n, t in task.params)
        doc = "\n".join(f"    {line}".rstrip() for line in _doc_lines(task, self.language))
        return f'{header}def {task.name}({params}) -> {self.type(task.returns)}:\n    """\n{doc}\n    """\n'

    tests_head = ("def check(candidate):",)
    tests_tail = ("", "def test_check():", "    check({name})", "", "test_check()")

    def prelude(self, task: TypedTask) -> list[str]:
        if not task.returns.contains("float"):
            return []
        return [
            "def _close(a, b):",
            "    if isinstance(b, float):",
            f"        return isinstance(a, (int, float)) and abs(a - b) < {FLOAT_TOLERANCE}",
            "    if isinstance(b, (list, tuple)):",
            (
                "        return isinstance(a, (list, tuple)) and len(a) == len(b) and all(_close(x, y) for x, y "
                "in zip(a, b))"
            ),
            "    if isinstance(b, dict):",
            ("        return isinstance(a, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in b)"),
            "    return a == b",
            "",
        ]


# ---- JavaScript / TypeScript

_JS_CLOSE = (
    "function _close(a, b) {\n"
    "  if (typeof b === 'number') return typeof a === 'number' && Math.abs(a - b) < %g;\n"
    "  if (Array.isArray(b)) return Array.isArray(a) && a.length === b.length && "
    "b.every((x, i) => _close(a[i], x));\n"
    "  if (b !== null && typeof b === 'object') return a !== null && typeof a === 'object' && "
    "Object.keys(a).length === Object.keys(b).length && Object.keys(b).every(k => _close(a[k], b[k]));\n"
    "  return a === b;\n"
    "}"
).replace("%g", repr(FLOAT_TOLERANCE))


class JavaScript(Translator):
    language = "javascript"
    stop_tokens = ("\nfunction ", "\n/*", "\n//", "\nconsole.log")
    any_type = "any"
    null = "undefined"

    def signature(self, task: TypedTask) -> str:
        return f"function {task.name}({', '.join(n for n, _ in task.params)}){{\n"

    def prompt(self, task: TypedTask) -> str:
        return "//" + _comment(_doc_lines(task, self.language), "// ")[3:] + self.signature(task)

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args, "candidate")
        if example.expected is None:
            return f"  assert.ok({call} == null, {json.dumps(call + ' is None')});"
        expected = _expected_text(self, example, task)
        if task.returns.contains("float"):
            return f"  assert.ok(_close({call}, {expected}), {json.dumps(call + ' == ' + expected)});"
        return f"  assert.deepStrictEqual({call}, {expected});"

    def header(self) -> list[str]:
        return ["const assert = require('node:assert');"]

    tests_head = ("function test() {", "  let candidate = {name};")
    tests_tail = ("}", "", "test();")

    def prelude(self, task: TypedTask) -> list[str]:
        return [*self.header(), "", *([self.close_fn(), ""] if task.returns.contains("float") else [])]

    def close_fn(self) -> str:
        return _JS_CLOSE


class TypeScript(JavaScript):
    language = "typescript"
    stop_tokens = ("\nfunction ", "\n/*", "\n//", "\nclass")

    def type(self, t: Type) -> str:
        match t.kind:
            case "int" | "float":
                return "number"
            case "bool":
                return "boolean"
            case "str":
                return "string"
            case "list":
                inner = self.type(t.args[0])
                return f"({inner})[]" if " " in inner else f"{inner}[]"
            case "tuple":
                return "[" + ", ".join(self.type(a) for a in t.args) + "]"
            case "dict":
                return "{" + f"[key: string]: {self.type(t.args[1])}" + "}"
            case "optional":
                return f"{self.type(t.args[0])} | undefined"
        raise Unsupported(str(t))

    def signature(self, task: TypedTask) -> str:
        params = ", ".join(f"{n}: {self.type(t)}" for n, t in task.params)
        return f"function {task.name}({params}): {self.type(task.returns)} {{\n"

    def header(self) -> list[str]:
        return ["declare var require: any;", "const assert = require('node:assert');"]

    def close_fn(self) -> str:
        return (
            _JS_CLOSE.replace("function _close(a, b)", "function _close(a: any, b: any): boolean")
            .replace("(x, i) =>", "(x: any, i: number) =>")
            .replace("k =>", "(k: string) =>")
        )


# ---- C and C++


class Cpp(Translator):
    language = "cpp"
    stop_tokens = ("\n}",)
    prompt_header = "#include<assert.h>\n#include<bits/stdc++.h>\n"
    signature_template, param_template = "{ret} {name}({params}) {{\n", "{type} {param}"
    closer = "}\n"
    float_check = "    assert(std::abs({call} - ({expected})) < {tol});"
    float_list_check = "    assert(qwenpost_close({call}, {expected}));"
    eq_check = "    assert({call} == {expected});"
    str_template, tuple_template = "std::string({})", "std::make_tuple({items})"
    list_template = dict_template = "{type}({{{items}}})"
    dict_entry = "{{{key}, {value}}}"
    none_template, some_template = "std::nullopt", "{type}({value})"

    scalar_types: ClassVar[dict[str, str]] = {"int": "long", "float": "double", "bool": "bool", "str": "std::string"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "std::vector<{elem}>",
        "dict": "std::map<std::string,{elem}>",
        "tuple": "std::tuple<{items}>",
        "optional": "std::optional<{elem}>",
    }

    tests_head = ("int main() {", "    auto candidate = {name};")
    tests_tail = ("}",)

    def prelude(self, task: TypedTask) -> list[str]:
        lines = [
            "#include <cassert>",
            "#include <cmath>",
            "#include <map>",
            "#include <optional>",
            "#include <string>",
            "#include <tuple>",
            "#include <vector>",
            "",
        ]
        if _is_float_list(task.returns):
            lines += [
                "bool qwenpost_close(const std::vector<double>& a, const std::vector<double>& b) {",
                "    if (a.size() != b.size()) return false;",
                (
                    f"    for (size_t i = 0; i < a.size(); i++) if (std::abs(a[i] - b[i]) >= {FLOAT_TOLERANCE}) "
                    "return false;"
                ),
                "    return true;",
                "}",
                "",
            ]
        return lines


class C(Translator):
    """C: MultiPL-E has no C translator; ours follows its C++ one for scalar types (lists need a length: skipped)."""

    language = "c"
    stop_tokens = ("\n}",)
    prompt_header = "#include <stdbool.h>\n#include <stdlib.h>\n#include <string.h>\n"
    signature_template, param_template = "{ret} {name}({params}) {{\n", "{type} {param}"
    no_params = "void"
    tests_head = (
        "#include <math.h>",
        "#include <stdbool.h>",
        "#include <stdio.h>",
        "#include <string.h>",
        "",
        "int main(void) {",
    )
    tests_tail = ("    return 0;", "}")
    closer = "}\n"
    literal_kinds = frozenset(SCALARS)

    scalar_types: ClassVar[dict[str, str]] = {"int": "long", "float": "double", "bool": "bool", "str": "const char*"}
    type_note = " (only int, float, bool, str)"

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args)
        expected = _expected_text(self, example, task)
        if task.returns.kind == "float":
            cond = f"fabs({call} - ({expected})) < {FLOAT_TOLERANCE}"
        elif task.returns.kind == "str":
            cond = f"strcmp({call}, {expected}) == 0"
        else:
            cond = f"{call} == {expected}"
        return f'    if (!({cond})) {{ fprintf(stderr, "assertion failed: %s\\n", {_c_string(cond)}); return 1; }}'


# ---- Java, C#, Scala, Kotlin


class Java(Translator):
    language = "java"
    stop_tokens = ("\n    }\n",)
    closer = "    }\n}\n"
    literal_kinds = frozenset(Translator.literal_kinds - {"tuple"})
    int_template, items_first = "{}l", True
    list_template = "new java.util.ArrayList<{elem}>(java.util.Arrays.asList({items}))"
    dict_template = "new java.util.HashMap<String,{elem}>(java.util.Map.of({items}))"
    dict_entry = "{key}, {value}"
    none_template, some_template = "java.util.Optional.empty()", "java.util.Optional.of({value})"
    _BOX: ClassVar[dict[str, str]] = {"long": "Long", "double": "Double", "boolean": "Boolean"}

    scalar_types: ClassVar[dict[str, str]] = {"int": "long", "float": "double", "bool": "boolean", "str": "String"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "ArrayList<{elem}>",
        "dict": "HashMap<String,{elem}>",
        "optional": "Optional<{elem}>",
    }
    type_note = " (MultiPL-E's tuples need org.javatuples, not here)"

    def elem_type(self, t: Type) -> str:
        inner = self.type(t)
        return self._BOX.get(inner, inner)

    imports = (
        "import java.util.*;",
        "import java.lang.reflect.*;",
        "import java.security.*;",
        "import java.math.*;",
        "import java.io.*;",
        "import java.util.stream.*;",
    )
    exception = "new AssertionError"  # what a failed check throws
    tests_head = ("class Main {", "    public static void main(String[] args) {")
    tests_tail = ("    }", "}")

    def prompt(self, task: TypedTask) -> str:
        params = ", ".join(f"{self.type(t)} {n}" for n, t in task.params)
        return (
            "\n".join(self.imports)
            + f"\nclass {CLASS_NAME} {{\n"
            + _comment(_doc_lines(task, self.language), "    // ")
            + f"    public static {self.type(task.returns)} {self.fn(task)}({params}) {{\n"
        )

    def condition(self, task: TypedTask, call: str, expected: str) -> str:
        if task.returns.kind == "float":
            return f"Math.abs({call} - ({expected})) < {FLOAT_TOLERANCE}"
        if task.returns.kind in ("int", "bool"):
            return f"{call} == {expected}"
        return f"{call}.equals({expected})"

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args, f"{CLASS_NAME}.{self.fn(task)}")
        cond = self.condition(task, call, _expected_text(self, example, task))
        shown = self.call_expr(task, example.args, self.fn(task))
        return f"        if (!({cond})) throw {self.exception}({_c_string('assertion failed: ' + shown)});"

    def refuse(self, task: TypedTask) -> None:
        """Unsupported for results the harness cannot compare."""
        _refuse_float_list(self, task)


class CSharp(Java):
    language = "csharp"
    stop_tokens = ("\n    }\n",)
    _BOX: ClassVar[dict[str, str]] = {}
    int_template, items_first = "{}L", False
    list_template = "new System.Collections.Generic.List<{elem}>(new {elem}[]{{{items}}})"
    empty_list_template = "new System.Collections.Generic.List<{elem}>()"
    dict_template = "new System.Collections.Generic.Dictionary<string,{elem}>(){{{items}}}"
    dict_entry = "{{{key}, {value}}}"
    none_template, some_template = "(System.Nullable<{elem}>)null", "{value}"

    scalar_types: ClassVar[dict[str, str]] = {"int": "long", "float": "double", "bool": "bool", "str": "string"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "List<{elem}>",
        "dict": "Dictionary<string,{elem}>",
        "optional": "Nullable<{elem}>",
    }
    type_note = ""

    imports = (
        "using System;",
        "using System.Numerics;",
        "using System.Diagnostics;",
        "using System.Collections.Generic;",
        "using System.Linq;",
        "using System.Text;",
        "using System.Security.Cryptography;",
    )
    exception = "new System.Exception"
    tests_head = ("class QwenpostTests {", "    public static void Main(string[] args) {")

    def compound_type(self, t: Type) -> str:
        if t.kind == "optional" and t.args[0].kind not in ("int", "float", "bool"):
            raise Unsupported(f"csharp has no translation for {t}")
        return super().compound_type(t)

    def condition(self, task: TypedTask, call: str, expected: str) -> str:
        if task.returns.kind == "float":
            return f"System.Math.Abs({call} - ({expected})) < {FLOAT_TOLERANCE}"
        if task.returns.kind == "list":
            return f"System.Linq.Enumerable.SequenceEqual({call}, {expected})"
        if task.returns.kind == "dict":
            return (
                f"System.Linq.Enumerable.SequenceEqual(System.Linq.Enumerable.OrderBy({call}, p => p.Key), "
                f"System.Linq.Enumerable.OrderBy({expected}, p => p.Key))"
            )
        if task.returns.kind in ("int", "bool", "str", "optional"):
            return f"{call} == {expected}"
        raise Unsupported(f"csharp: no equality for {task.returns}")

    def refuse(self, task: TypedTask) -> None:
        if _is_float_list(task.returns) or (
            task.returns.kind == "list" and task.returns.args[0].kind in ("list", "dict")
        ):
            raise Unsupported(f"csharp: no deep equality for {task.returns} here")


class Scala(Java):
    language = "scala"
    stop_tokens = ("\n    }\n",)
    _BOX: ClassVar[dict[str, str]] = {}
    literal_kinds, int_template, items_first = Translator.literal_kinds, "{}L", False
    list_template, tuple_template = "List[{elem}]({items})", "({items})"
    dict_template = "scala.collection.immutable.Map[String,{elem}]({items})"
    dict_entry = "{key} -> {value}"
    none_template, some_template = "None", "Some({value})"
    tests_head = ("object Main {", "    def main(args: Array[String]) : Unit = {")

    scalar_types: ClassVar[dict[str, str]] = {"int": "Long", "float": "Double", "bool": "Boolean", "str": "String"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "List[{elem}]",
        "dict": "Map[String,{elem}]",
        "tuple": "Tuple{n}[{items}]",
        "optional": "Option[{elem}]",
    }
    type_note = ""

    def prompt(self, task: TypedTask) -> str:
        params = ", ".join(f"{n} : {self.type(t)}" for n, t in task.params)
        return (
            "import scala.math._\nimport scala.collection.mutable._\n"
            + f"object {CLASS_NAME} {{\n"
            + _comment(_doc_lines(task, self.language), "    // ")
            + f"    def {self.fn(task)}({params}) : {self.type(task.returns)} = {{\n"
        )

    def condition(self, task: TypedTask, call: str, expected: str) -> str:
        if task.returns.kind == "float":
            return f"scala.math.abs({call} - ({expected})) < {FLOAT_TOLERANCE}"
        return f"{call} == {expected}"

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args, f"{CLASS_NAME}.{self.fn(task)}")
        cond = self.condition(task, call, _expected_text(self, example, task))
        return f"        assert({cond}, {_c_string(cond)});"


class Kotlin(Translator):
    language = "kotlin"
    stop_tokens = ("\nfun ", "\n/*", "\n//", "\nclass")
    signature_template, param_template = "fun {fn}({params}): {ret} {{\n", "{param}: {type}"
    tests_head = ("fun main() {",)
    tests_tail = ("}",)
    closer = "}\n\n"
    str_escapes = (("$", "\\$"),)
    list_template, empty_list_template = "mutableListOf({items})", "mutableListOf<{elem}>()"
    dict_template, empty_dict_template = "mutableMapOf({items})", "mutableMapOf<String, {elem}>()"
    dict_entry, tuple_template = "{key} to {value}", "({items})"  # Pair(..) or Triple(..)
    none_template = "null"

    scalar_types: ClassVar[dict[str, str]] = {"int": "Int", "float": "Double", "bool": "Boolean", "str": "String"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "MutableList<{elem}>",
        "dict": "Map<String, {elem}>",
        "optional": "{elem}?",
    }

    def compound_type(self, t: Type) -> str:
        if t.kind == "tuple" and len(t.args) in (2, 3):
            return f"{'Pair' if len(t.args) == 2 else 'Triple'}<{', '.join(self.type(a) for a in t.args)}>"
        return super().compound_type(t)

    def refuse(self, task: TypedTask) -> None:
        _refuse_float_list(self, task)

    def literal(self, value: object, t: Type) -> str:
        text = super().literal(value, t)
        return ("Pair" if len(t.args) == 2 else "Triple") + text if t.kind == "tuple" else text

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args)
        expected = _expected_text(self, example, task)
        if task.returns.kind == "float":
            cond = f"Math.abs({call} - ({expected})) < {FLOAT_TOLERANCE}"
        else:
            cond = f"{expected} == {call}"  # MultiPL-E: (expected == actual)
        return f"    if (!({cond})) throw AssertionError({_c_string(cond).replace('$', chr(92) + '$')})"


# ---- Go and Rust


class Go(Translator):
    language = "go"
    stop_tokens = ("\nfunc", "struct", "\n// ")
    prompt_header = "package main\n\n"
    signature_template, param_template = "func {name}({params}) {ret} {{\n", "{param} {type}"
    closer = "}\n\n"
    literal_kinds = frozenset((*SCALARS, "list", "dict"))
    list_template = dict_template = "{type}{{{items}}}"

    scalar_types: ClassVar[dict[str, str]] = {"int": "int", "float": "float64", "bool": "bool", "str": "string"}
    type_templates: ClassVar[dict[str, str]] = {"list": "[]{elem}", "dict": "map[string]{elem}"}
    type_note = " (MultiPL-E rejects Optional; tuples are []interface{})"

    def _eq(self, t: Type, helpers: dict[str, str]) -> str:
        """The name of a generated function `func(a, b T) bool` comparing two values of type `t` deeply."""
        name = "qwenpostEq" + re.sub(r"\W", "_", str(t))
        if name in helpers:
            return name
        go = self.type(t)
        if t.kind == "float":
            body = f"\td := a - b\n\tif d < 0 {{\n\t\td = -d\n\t}}\n\treturn d < {FLOAT_TOLERANCE}"
        elif t.kind in SCALARS:
            body = "\treturn a == b"
        elif t.kind == "list":
            inner = self._eq(t.args[0], helpers)
            body = (
                f"\tif len(a) != len(b) {{\n\t\treturn false\n\t}}\n\tfor i := range a {{\n"
                f"\t\tif !{inner}(a[i], b[i]) {{\n\t\t\treturn false\n\t\t}}\n\t}}\n\treturn true"
            )
        else:
            inner = self._eq(t.args[1], helpers)
            body = (
                f"\tif len(a) != len(b) {{\n\t\treturn false\n\t}}\n\tfor k, v := range b {{\n"
                f"\t\tw, ok := a[k]\n\t\tif !ok || !{inner}(w, v) {{\n\t\t\treturn false\n\t\t}}\n\t}}\n"
                "\treturn true"
            )
        helpers[name] = f"func {name}(a, b {go}) bool {{\n{body}\n}}\n"
        return name

    def tests(self, task: TypedTask) -> str:
        self.validate(task)
        helpers: dict[str, str] = {}
        eq = self._eq(task.returns, helpers)
        lines = [*helpers.values(), "func main() {", f"\tcandidate := {task.name}"]
        for example in task.examples:
            call = self.call_expr(task, example.args, "candidate")
            expected = _expected_text(self, example, task)
            lines.append(
                f"\tif !{eq}({call}, {expected}) {{\n\t\tpanic({_c_string('assertion failed: ' + call)})\n\t}}"
            )
        lines.append("}")
        return "\n".join(lines) + "\n"


class Rust(Translator):
    language = "rust"
    stop_tokens = ("\n}",)
    comment = "/// "
    signature_template, param_template = "fn {name}({params}) -> {ret} {{\n", "{param}: {type}"
    tests_head = ("fn main() {", "    let candidate = {name};")
    tests_tail = ("}",)
    closer = "}\n\n"
    float_check = "    assert!(({call} - {expected}).abs() < {tol}, {quoted_call});"
    float_list_check = (
        "    {{ let (a, b) = ({call}, {expected}); assert!(a.len() == b.len() && a.iter().zip(b.iter())"
        ".all(|(x, y)| (x - y).abs() < {tol}), {quoted_call}); }}"
    )
    eq_check = "    assert_eq!({call}, {expected});"
    str_template, list_template, empty_list_template = "String::from({})", "vec![{items}]", "Vec::<{elem}>::new()"
    dict_template = "std::collections::HashMap::from([{items}])"
    empty_dict_template = "std::collections::HashMap::<String, {elem}>::new()"
    dict_entry = "(String::from({key}), {value})"
    tuple_template, tuple_trailing_comma = "({items})", True
    none_template, some_template = "None", "Some({value})"

    scalar_types: ClassVar[dict[str, str]] = {"int": "isize", "float": "f64", "bool": "bool", "str": "String"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "Vec<{elem}>",
        "dict": "HashMap<String, {elem}>",
        "tuple": "({items})",
        "optional": "Option<{elem}>",
    }

    def prompt_head(self, task: TypedTask) -> str:
        needs_map = task.returns.contains("dict") or any(pt.contains("dict") for _, pt in task.params)
        return "use std::collections::HashMap;\n\n" if needs_map else ""


# ---- PHP, Ruby, Perl, Lua, R


class PHP(Translator):
    language = "php"
    stop_tokens = ("\nfunction", "\n?>", "\n//", "\n#")
    prompt_header = "<?php\n"
    signature_template, param_template = "function {name}({params}) {{\n", "${param}"
    any_type = "mixed"
    float_anywhere = True
    float_check = '    if (!qwenpost_close({call}, {expected})) {{ throw new Exception("Test failed!"); }}'
    eq_check = '    if ({call} !== {expected}) {{ throw new Exception("Test failed!"); }}'
    null, str_escapes, escape_keys = "null", (("$", "\\$"),), True
    list_template = tuple_template = dict_template = "array({items})"
    dict_entry = "{key} => {value}"

    def call_expr(self, task: TypedTask, args: tuple, fn: str | None = None) -> str:
        return f"{fn or task.name}({', '.join(self.args_text(task, args))})"

    tests_head = ("function test(): void {",)
    tests_tail = ("}", "", "test();")

    def prelude(self, task: TypedTask) -> list[str]:
        lines = ["function candidate(...$args) {", f"    return {task.name}(...$args);", "}", ""]
        if task.returns.contains("float"):
            lines += [
                "function qwenpost_close($a, $b) {",
                f"    if (is_float($b)) return (is_int($a) || is_float($a)) && abs($a - $b) < {FLOAT_TOLERANCE};",
                "    if (is_array($b)) {",
                "        if (!is_array($a) || count($a) !== count($b)) return false;",
                (
                    "        foreach ($b as $k => $v) { if (!array_key_exists($k, $a) || !qwenpost_close($a[$k], $v))"
                    " return false; }"
                ),
                "        return true;",
                "    }",
                "    return $a === $b;",
                "}",
                "",
            ]
        return lines


class Ruby(Translator):
    language = "ruby"
    stop_tokens = ("\nclass", "\ndef", "\n#", "\n\n")
    comment, signature_template = "# ", "def {name}({params})\n"
    any_type = "Object"
    tests_head = (
        "require 'test/unit'",
        "class TestHumanEval < Test::Unit::TestCase",
        "  def test_{name}",
        "    candidate = method(:{name})",
    )
    tests_tail = ("  end", "end")
    float_check = "    assert_in_delta({expected}, {call}, {tol})"
    float_list_check = (
        "    actual = {call}\n    expected = {expected}\n    assert_equal(expected.length, actual.length)\n"
        "    expected.zip(actual).each {{ |e, a| assert_in_delta(e, a, {tol}) }}"
    )
    eq_check = "    assert_equal({expected}, {call})"
    null, str_escapes, escape_keys = "nil", (("#{", "\\#{"),), True
    dict_entry = "{key} => {value}"

    def call_expr(self, task: TypedTask, args: tuple, fn: str | None = None) -> str:
        if fn == "candidate":
            return f"candidate.call({', '.join(self.args_text(task, args))})"
        return super().call_expr(task, args, fn)


_PERL_EQ = r"""sub qwenpost_eq_deeply {
    my ($x, $y) = @_;
    return !defined($x) if !defined($y);
    return 0 if !defined($x);
    if (ref($y) eq 'ARRAY') {
        return 0 if ref($x) ne 'ARRAY' || @$x != @$y;
        for my $i (0 .. $#$y) { return 0 if !qwenpost_eq_deeply($x->[$i], $y->[$i]); }
        return 1;
    }
    if (ref($y) eq 'HASH') {
        return 0 if ref($x) ne 'HASH' || keys(%$x) != keys(%$y);
        for my $k (keys %$y) { return 0 if !exists($x->{$k}) || !qwenpost_eq_deeply($x->{$k}, $y->{$k}); }
        return 1;
    }
    return 0 if ref($x);
    my $number = qr/^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
    return abs($x - $y) < TOLERANCE if $x =~ $number && $y =~ $number;
    return $x eq $y;
}""".replace("TOLERANCE", repr(FLOAT_TOLERANCE))


class Perl(Translator):
    language = "perl"
    stop_tokens = ("\nsub", "\n#", "\n\n")
    comment, signature_template = "# ", "sub {name} {{\n    my({params}) = @_;\n"
    param_template = "${param}"
    any_type = "scalar"
    tests_head = (_PERL_EQ, "", "sub testhumaneval {", "    my $candidate = \\&{name};")
    tests_tail = ("}", "", "testhumaneval();")
    null, true_false = "undef", ("1", '""')
    str_escapes, escape_keys = (("$", "\\$"), ("@", "\\@")), True
    dict_entry = "{key} => {value}"

    def call_expr(self, task: TypedTask, args: tuple, fn: str | None = None) -> str:
        if fn == "candidate":
            return f"$candidate->({', '.join(self.args_text(task, args))})"
        return super().call_expr(task, args, fn)

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args, "candidate")
        expected = _expected_text(self, example, task)
        if task.returns.kind == "bool":  # Perl's true/false are any true/false scalars
            cond = f"(({call}) ? 1 : 0) == {1 if example.expected else 0}"
        else:
            cond = f"qwenpost_eq_deeply({call},{expected})"
        return f'    if({cond}) {{\n        print "ok!" }}else{{\n        exit 1;\n        }}'


_LUA_EQ = """local function qwenpost_eq(a, b)
  if type(a) == 'number' and type(b) == 'number' then return math.abs(a - b) < TOLERANCE end
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(b) do if not qwenpost_eq(a[k], v) then return false end end
  for k, _ in pairs(a) do if b[k] == nil then return false end end
  return true
end""".replace("TOLERANCE", repr(FLOAT_TOLERANCE))


class Lua(Translator):
    language = "lua"
    stop_tokens = ("\nlocal", "\nfunction", "\n--", "\n\n")
    comment, signature_template = "-- ", "local function {name}({params})\n"
    any_type = "any"
    tests_head = (_LUA_EQ, "", "local function test_humaneval()", "    local candidate = {name}")
    tests_tail = ("end", "", "test_humaneval()")
    null = "nil"
    list_template = tuple_template = "{{{items}}}"
    dict_entry = "[{key}] = {value}"

    def check(self, task: TypedTask, example: Example) -> str:
        call = self.call_expr(task, example.args, "candidate")
        expected = _expected_text(self, example, task)
        return f"    assert(qwenpost_eq({call}, {expected}), {_c_string(call + ' == ' + expected)})"


class R(Translator):
    language = "r"
    stop_tokens = ("\n#", "\n```")
    comment, signature_template = "# ", "{name} <- function({params}) {{"
    any_type = "any"
    tests_head = ("test_humaneval <- function() {", "    candidate <- {name}")
    tests_tail = ("}", "test_humaneval()")
    eq_check = "    stopifnot(isTRUE(all.equal({call}, {expected})))"
    null, true_false = "NULL", ("TRUE", "FALSE")
    dict_template, dict_entry = "list({items})", "{key} = {value}"
    _EMPTY: ClassVar[dict[str, str]] = {
        "int": "integer(0)",
        "float": "numeric(0)",
        "bool": "logical(0)",
        "str": "character(0)",
    }

    def literal(self, value: object, t: Type) -> str:
        if value is None or t.kind not in ("list", "tuple"):
            return super().literal(value, t)
        subs = _item_types(value, t)
        if not value:
            return self._EMPTY.get(t.args[0].kind, "list()") if t.kind == "list" else "list()"
        atomic = all(s.kind in SCALARS for s in subs) and len({s.kind for s in subs}) <= 1
        items = ", ".join(self.literal(v, s) for v, s in zip(value, subs, strict=True))
        return f"c({items})" if atomic else f"list({items})"


# ---- Bash


class Bash(Translator):
    language = "bash"
    stop_tokens = ("\n}",)
    tests_head = ("candidate() {", '    {name} "$@"', "}", "", "set -e", "run_test() {")
    tests_tail = ("}", "", "run_test")
    closer = "}\n\n"

    def type(self, t: Type) -> str:
        if t.kind in ("int", "bool", "str"):
            return t.kind
        if t.kind in ("list", "tuple") and all(a.kind in ("int", "str", "bool") for a in t.args):
            return "list"
        raise Unsupported(f"bash has no translation for {t} (strings, integers and flat space-separated lists only)")

    def _raw(self, value: object, t: Type) -> str:
        if t.kind == "bool":
            return "true" if value else "false"
        if t.kind in ("list", "tuple"):
            parts = [self._raw(v, s) for v, s in zip(value, _item_types(value, t), strict=True)]
            if any(re.search(r"\s", p) or not p for p in parts):
                raise Unsupported("bash: list elements with whitespace cannot be translated")
            return " ".join(parts)
        return str(value)

    def literal(self, value: object, t: Type) -> str:
        self.type(t)
        raw = self._raw(value, t)
        escaped = raw.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
        return f'"{escaped}"'

    def call_expr(self, task: TypedTask, args: tuple, fn: str | None = None) -> str:
        return f"$({fn or task.name} {' '.join(self.args_text(task, args))})"

    def refuse(self, task: TypedTask) -> None:
        self.validate(task)

    def prompt(self, task: TypedTask) -> str:
        kinds = {
            "int": "an integer",
            "str": "a string",
            "bool": "a boolean (true or false)",
            "list": "a space-separated list",
        }
        notes = [f"# ${i} is {kinds[self.type(t)]}" for i, (_, t) in enumerate(task.params, start=1)]
        return (
            "#!/bin/bash\n"
            + _comment(_doc_lines(task, self.language), "# ")
            + ("#\n" + "\n".join(notes) + "\n" if notes else "")
            + f"{task.name}() {{\n"
        )

    def check(self, task: TypedTask, example: Example) -> str:
        return f"    [[ {self.call_expr(task, example.args, 'candidate')} = {_expected_text(self, example, task)} ]]"


# ---- Haskell, OCaml, Racket


class _ML(Translator):
    """Haskell and OCaml: curried calls, negative numbers in parentheses, association lists for dictionaries."""

    paren_negative = True
    tuple_template = "({items})"
    dict_template, dict_entry = "[{items}]", "({key}, {value})"
    atom_brackets: tuple[str, ...] = ("(",)  # type texts that need no parentheses as an argument
    no_args: tuple[str, ...] = ()  # the arguments of a call without any

    def atom_type(self, t: Type) -> str:
        text = self.type(t)
        return f"({text})" if " " in text and not text.startswith(self.atom_brackets) else text

    def call_expr(self, task: TypedTask, args: tuple, fn: str | None = None) -> str:
        return " ".join([fn or self.fn(task), *(self.args_text(task, args) or self.no_args)])


class Haskell(_ML):
    language = "haskell"
    true_false = ("True", "False")
    none_template, some_template = "Nothing", "(Just {value})"
    atom_brackets = ("[", "(")
    stop_tokens = ("\n\n", "\n{-", "\ntype", "\ndata", "\nnewtype")
    tests_head = ("", "main :: IO ()", "main = do", "  let candidate = {fn}")
    tests_tail = ("  pure ()",)
    float_check = "abs (({call}) - {expected}) < {tol}"
    float_list_check = (
        "let (a, b) = (({call}), {expected}) in length a == length b && "
        "and (zipWith (\\x y -> abs (x - y) < {tol}) a b)"
    )
    eq_check = "({call}) == {expected}"
    check_line = "  if {cond} then pure () else error {msg}"

    scalar_types: ClassVar[dict[str, str]] = {"int": "Int", "float": "Double", "bool": "Bool", "str": "String"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "[{elem}]",
        "dict": "[(String, {elem})]",
        "tuple": "({items})",
        "optional": "Maybe {atom}",
    }

    def prompt(self, task: TypedTask) -> str:
        sig = " -> ".join([*(self.type(t) for _, t in task.params), self.type(task.returns)])
        lines = _doc_lines(task, self.language)
        doc = "-- | " + lines[0] + "\n" + "".join(f"-- {line}\n" for line in lines[1:])
        return f"{doc}{self.fn(task)} :: {sig}\n{self.fn(task)} {' '.join(n for n, _ in task.params)} ="


class OCaml(_ML):
    language = "ocaml"
    list_sep = dict_sep = "; "
    none_template, some_template = "None", "(Some {value})"
    no_args = ("()",)
    stop_tokens = ("\n\n", "\n(*", "\ntype")
    tests_head = ("", "let () =")
    tests_tail = ("  ()",)
    check_call = None
    float_check = "  assert (abs_float (({call}) -. {expected}) < {tol});"
    float_list_check = (
        "  assert (List.length ({call}) = List.length {expected} && List.for_all2 (fun x y -> "
        "abs_float (x -. y) < {tol}) ({call}) {expected});"
    )
    eq_check = "  assert (({call}) = {expected});"

    scalar_types: ClassVar[dict[str, str]] = {"int": "int", "float": "float", "bool": "bool", "str": "string"}
    type_templates: ClassVar[dict[str, str]] = {
        "list": "{atom} list",
        "dict": "(string * {elem}) list",
        "tuple": "({items})",
        "optional": "{atom} option",
    }
    tuple_type_sep = " * "

    def prompt(self, task: TypedTask) -> str:
        params = " ".join(f"({n} : {self.type(t)})" for n, t in task.params) or "()"
        doc = "(**" + "\n".join(_doc_lines(task, self.language)).replace("*)", "* )") + "\n*)\n"
        return f"{doc}let rec {task.name} {params} : {self.type(task.returns)} =\n"


class Racket(Translator):
    language = "racket"
    stop_tokens = ("\n(define ", "\n#|", "\n;", "\n(")
    prompt_header, comment = "#lang racket\n\n", ";; "
    signature_template, param_template, param_sep = "(define ({name}{params})\n", " {param}", ""
    any_type = "any"
    tests_head = ("", "(define (test-humaneval)", "  (let ((candidate {name}))")
    tests_tail = ("))", "", "(test-humaneval)")
    float_check = "(< (abs (- {call} {expected})) {tol})"
    float_list_check = (
        "(let ([a {call}] [b {expected}]) (and (= (length a) (length b)) "
        "(andmap (lambda (x y) (< (abs (- x y)) {tol})) a b)))"
    )
    eq_check = "(equal? {call} {expected})"
    check_line = "    (unless {cond} (error 'test-humaneval {msg}))"
    null, true_false = "#f", ("#t", "#f")
    dict_template, dict_sep, dict_entry = "#hash({items})", " ", "({key} . {value})"

    def literal(self, value: object, t: Type) -> str:
        if value is None or t.kind not in ("list", "tuple"):
            return super().literal(value, t)
        items = zip(value, _item_types(value, t), strict=True)
        return "(list" + "".join(" " + self.literal(v, s) for v, s in items) + ")"

    def call_expr(self, task: TypedTask, args: tuple, fn: str | None = None) -> str:
        return "(" + " ".join([fn or task.name, *self.args_text(task, args)]) + ")"


TRANSLATORS: dict[str, Translator] = {
    t.language: t
    for t in (
        Python(),
        JavaScript(),
        TypeScript(),
        C(),
        Cpp(),
        Java(),
        CSharp(),
        Go(),
        Rust(),
        PHP(),
        Ruby(),
        Perl(),
        Lua(),
        R(),
        Scala(),
        Kotlin(),
        Bash(),
        Haskell(),
        OCaml(),
        Racket(),
    )
}
assert tuple(TRANSLATORS) == tuple(sorted(TRANSLATORS, key=LANGUAGES.index))


# ------------------------------------------------------------------------------------------------------ public


def _translator(language: str) -> Translator:
    if language not in TRANSLATORS:
        raise ValueError(f"no MultiPL-E translator for language {language!r}; languages: {list(LANGUAGES)}")
    return TRANSLATORS[language]


def translate_prompt(task: TypedTask, language: str, doctests: str = "transform") -> str:
    """MultiPL-E's prompt: the signature in `language`'s idiom, the description (and examples) as a doc comment,
    left open for the body. `doctests`: MultiPL-E's three modes for the examples in the doc comment, "transform"
    (translated into the language), "keep" (as Python wrote them) or "remove"."""
    if doctests not in ("transform", "keep", "remove"):
        raise ValueError(f"doctests must be 'transform', 'keep' or 'remove', got {doctests!r}")
    t = _translator(language)
    t.validate(task)
    _DOCTESTS["doctests"] = doctests
    try:
        return t.prompt(task)
    finally:
        _DOCTESTS["doctests"] = "transform"


def translate_tests(task: TypedTask, language: str) -> str:
    """The test harness appended after a complete candidate function: every example as a deep-equality check;
    the program exits non-zero when one fails."""
    t = _translator(language)
    t.validate(task)
    for example in task.examples:
        for arg, (_, pt) in zip(example.args, task.params, strict=True):
            t.literal(arg, pt)
    return t.tests(task)


def supports(task: TypedTask, language: str) -> bool:
    """Whether `task` translates into `language` (prompt and tests)."""
    try:
        translate_prompt(task, language)
        translate_tests(task, language)
    except Unsupported:
        return False
    return True


def stop_tokens(language: str) -> list[str]:
    return list(_translator(language).stop_tokens)


def multipl_e_row(task: TypedTask, language: str, name: str | None = None, doctests: str = "transform") -> dict:
    """The task as a row of MultiPL-E's published dataset: `prompt` + completion + newline + `tests` is the program
    (the tests begin by closing the prompt's function, as MultiPL-E's do)."""
    t = _translator(language)
    prompt = translate_prompt(task, language, doctests)
    return {
        "name": name or f"qwenpost_{task.name}",
        "language": MULTIPL_E_NAMES[language],
        "prompt": prompt,
        "doctests": doctests,
        "original": "",
        "prompt_terminology": "verbatim",
        "tests": t.close_prompt(task) + translate_tests(task, language),
        "stop_tokens": stop_tokens(language),
    }


@dataclass
class Translation:
    """A task in one language: what a builder needs."""

    language: str
    entry: str
    prompt: str
    tests: str
    fence: str = field(default="")


def translate(task: TypedTask, language: str) -> Translation:
    return Translation(
        language,
        entry_name(task.name, language),
        translate_prompt(task, language),
        translate_tests(task, language),
        FENCES[language],
    )
