"""Procedural code tasks: small typed function problems, with tests and candidate answers in up to 20 languages.

Each task family is one function to write, typed in the translator's small type language (multipl_e.py: `int`,
`list[int]`, `optional[int]`, ...), its examples, a correct implementation per language and the bugs a model really
makes on it: an off-by-one loop bound, a wrong base case, a missing edge case, a syntax error, an infinite loop, a
case-sensitivity slip, a type error the static check catches. Tests are translated per language the MultiPL-E way
(`multipl_e.translate_tests`) and appended after the candidate's code, as the code verifier runs them: Python
`assert candidate(x) == y` inside `check`; JavaScript `assert.deepStrictEqual(candidate(x), y)`; C++ a `main` of
`assert(candidate(x) == y)`; Java a `Main` class that throws `AssertionError`; and so on. Hand-written data: these
are the task maker's "model outputs", so that the sandbox has real failures to find offline. Solutions in the
languages beyond Python, JavaScript and C++ live in code_solutions.py.
"""

from dataclasses import dataclass, field

from data_builders.builders.code_solutions import SOLUTIONS
from data_builders.builders.multipl_e import DISPLAY_NAMES, TypedTask, make_task, translate_tests


@dataclass(frozen=True)
class Family:
    """One function task: description, entry point, typed signature and examples, and code per language (correct
    and buggy)."""

    name: str
    entry: str
    description: str
    params: str  # typed parameters, e.g. "xs: list[int], target: int"
    returns: str  # return type, e.g. "optional[int]"
    cases: tuple[tuple[tuple, object], ...]  # (argument values, expected value)
    code: dict[str, dict[str, str]] = field(default_factory=dict)  # language -> kind -> code; kind "correct" first

    @property
    def task(self) -> TypedTask:
        return make_task(self.entry, self.params, self.returns, f"{self.entry} {self.description}.",
                         [list(case) for case in self.cases])


def render_tests(family: Family, language: str) -> str:
    """The test code for `family` in `language`, to be appended after a candidate's code (the translator's)."""
    return translate_tests(family.task, language)


def _code(text: str) -> str:
    """A code block written flush left inside the table below, with one final newline."""
    return text.strip("\n") + "\n"


_FAMILIES = (
    Family(
        "sum_to_n", "sum_to_n", "returns the sum of the integers from 1 to n (0 when n is 0)", "n: int", "int",
        (((0,), 0), ((1,), 1), ((5,), 15), ((10,), 55)),
        {
            "python": {
                "correct": _code("""
def sum_to_n(n):
    total = 0
    for i in range(1, n + 1):
        total += i
    return total
"""),
                "off_by_one": _code("""
def sum_to_n(n):
    total = 0
    for i in range(1, n):
        total += i
    return total
"""),
                "syntax_error": _code("""
def sum_to_n(n)
    total = 0
    for i in range(1, n + 1):
        total += i
    return total
"""),
            },
            "javascript": {
                "correct": _code("""
function sum_to_n(n) {
  let total = 0;
  for (let i = 1; i <= n; i++) total += i;
  return total;
}
"""),
                "off_by_one": _code("""
function sum_to_n(n) {
  let total = 0;
  for (let i = 1; i < n; i++) total += i;
  return total;
}
"""),
            },
            "cpp": {
                "correct": _code("""
long long sum_to_n(int n) {
    long long total = 0;
    for (int i = 1; i <= n; i++) total += i;
    return total;
}
"""),
                "off_by_one": _code("""
long long sum_to_n(int n) {
    long long total = 0;
    for (int i = 1; i < n; i++) total += i;
    return total;
}
"""),
                "syntax_error": _code("""
long long sum_to_n(int n) {
    long long total = 0
    for (int i = 1; i <= n; i++) total += i;
    return total;
}
"""),
            },
        },
    ),
    Family(
        "factorial", "factorial", "returns n! for n >= 0 (0! is 1)", "n: int", "int",
        (((0,), 1), ((1,), 1), ((5,), 120), ((7,), 5040)),
        {
            "python": {
                "correct": _code("""
def factorial(n):
    if n <= 1:
        return 1
    return n * factorial(n - 1)
"""),
                "wrong_base_case": _code("""
def factorial(n):
    if n == 1:
        return 1
    return n * factorial(n - 1)
"""),
                "wrong_base_value": _code("""
def factorial(n):
    if n <= 1:
        return n
    return n * factorial(n - 1)
"""),
            },
            "javascript": {
                "correct": _code("""
function factorial(n) {
  if (n <= 1) return 1;
  return n * factorial(n - 1);
}
"""),
                "wrong_base_value": _code("""
function factorial(n) {
  if (n <= 1) return n;
  return n * factorial(n - 1);
}
"""),
            },
            "cpp": {
                "correct": _code("""
long long factorial(int n) {
    if (n <= 1) return 1;
    return n * factorial(n - 1);
}
"""),
                "wrong_base_value": _code("""
long long factorial(int n) {
    if (n <= 1) return n;
    return n * factorial(n - 1);
}
"""),
            },
        },
    ),
    Family(
        "fibonacci", "fibonacci", "returns the n-th Fibonacci number, with fibonacci(0) = 0 and fibonacci(1) = 1",
        "n: int", "int", (((0,), 0), ((1,), 1), ((2,), 1), ((10,), 55)),
        {
            "python": {
                "correct": _code("""
def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
"""),
                "wrong_base_case": _code("""
def fibonacci(n):
    if n < 2:
        return 1
    return fibonacci(n - 1) + fibonacci(n - 2)
"""),
                "off_by_one": _code("""
def fibonacci(n):
    a, b = 0, 1
    for _ in range(n - 1):
        a, b = b, a + b
    return a
"""),
            },
            "javascript": {
                "correct": _code("""
function fibonacci(n) {
  let a = 0, b = 1;
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}
"""),
                "wrong_base_case": _code("""
function fibonacci(n) {
  if (n < 2) return 1;
  return fibonacci(n - 1) + fibonacci(n - 2);
}
"""),
            },
        },
    ),
    Family(
        "is_prime", "is_prime", "returns whether n is a prime number (n may be 0, 1 or negative)", "n: int", "bool",
        (((1,), False), ((2,), True), ((9,), False), ((13,), True), ((0,), False)),
        {
            "python": {
                "correct": _code("""
def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True
"""),
                "missing_edge_case": _code("""
def is_prime(n):
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True
"""),
                "off_by_one": _code("""
def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i < n:
        if n % i == 0:
            return False
        i += 1
    return True
"""),
            },
            "javascript": {
                "correct": _code("""
function is_prime(n) {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}
"""),
                "missing_edge_case": _code("""
function is_prime(n) {
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}
"""),
            },
            "cpp": {
                "correct": _code("""
bool is_prime(int n) {
    if (n < 2) return false;
    for (int i = 2; i * i <= n; i++) if (n % i == 0) return false;
    return true;
}
"""),
                "off_by_one": _code("""
bool is_prime(int n) {
    if (n < 2) return false;
    for (int i = 2; i * i < n; i++) if (n % i == 0) return false;
    return true;
}
"""),
            },
        },
    ),
    Family(
        "gcd", "gcd", "returns the greatest common divisor of two non-negative integers a and b (gcd(a, 0) = a)",
        "a: int, b: int", "int", (((12, 18), 6), ((7, 0), 7), ((17, 5), 1), ((100, 75), 25)),
        {
            "python": {
                "correct": _code("""
def gcd(a, b):
    while b:
        a, b = b, a % b
    return a
"""),
                "infinite_loop": _code("""
def gcd(a, b):
    while b:
        a = a % b
    return a
"""),
            },
            "cpp": {
                "correct": _code("""
int gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}
"""),
                "infinite_loop": _code("""
int gcd(int a, int b) {
    while (b) {
        a = a % b;
    }
    return a;
}
"""),
            },
        },
    ),
    Family(
        "count_vowels", "count_vowels", "returns how many vowels (a, e, i, o, u, either case) the string s contains",
        "s: str", "int", ((("hello",), 2), (("AEIOU",), 5), (("",), 0), (("rhythm",), 0)),
        {
            "python": {
                "correct": _code("""
def count_vowels(s):
    return sum(1 for ch in s.lower() if ch in 'aeiou')
"""),
                "case_sensitive": _code("""
def count_vowels(s):
    return sum(1 for ch in s if ch in 'aeiou')
"""),
            },
            "javascript": {
                "correct": _code("""
function count_vowels(s) {
  return [...s.toLowerCase()].filter(c => 'aeiou'.includes(c)).length;
}
"""),
                "case_sensitive": _code("""
function count_vowels(s) {
  return [...s].filter(c => 'aeiou'.includes(c)).length;
}
"""),
            },
        },
    ),
    Family(
        "max_or_none", "max_or_none", "returns the largest number in the list xs, or None when xs is empty",
        "xs: list[int]", "optional[int]", ((([3, 9, 2],), 9), (([-5, -2],), -2), (([],), None), (([4],), 4)),
        {
            "python": {
                "correct": _code("""
def max_or_none(xs):
    if not xs:
        return None
    best = xs[0]
    for x in xs[1:]:
        if x > best:
            best = x
    return best
"""),
                "missing_edge_case": _code("""
def max_or_none(xs):
    best = xs[0]
    for x in xs[1:]:
        if x > best:
            best = x
    return best
"""),
                "wrong_initial_value": _code("""
def max_or_none(xs):
    if not xs:
        return None
    best = 0
    for x in xs:
        if x > best:
            best = x
    return best
"""),
            },
        },
    ),
    Family(
        "binary_search", "binary_search", "returns the index of target in the sorted list xs, or -1 when it is absent",
        "xs: list[int], target: int", "int",
        ((([1, 3, 5, 7], 7), 3), (([1, 3, 5, 7], 1), 0), (([1, 3, 5, 7], 4), -1), (([], 2), -1), (([2], 2), 0)),
        {
            "python": {
                "correct": _code("""
def binary_search(xs, target):
    lo, hi = 0, len(xs) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1
"""),
                "off_by_one": _code("""
def binary_search(xs, target):
    lo, hi = 0, len(xs) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1
"""),
                "infinite_loop": _code("""
def binary_search(xs, target):
    lo, hi = 0, len(xs) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid
        else:
            hi = mid
    return -1
"""),
            },
        },
    ),
    Family(
        "evens", "evens", "returns the even numbers of the list xs, in their order", "xs: list[int]", "list[int]",
        ((([1, 2, 3, 4],), [2, 4]), (([],), []), (([1, 3],), []), (([6, -2, 7, 8],), [6, -2, 8]),
         (([5, 10],), [10])),
    ),
)


def _merge_solutions() -> tuple[Family, ...]:
    """FAMILIES with code_solutions.py's languages added (a family's own code comes first)."""
    merged = []
    for family in _FAMILIES:
        code = {language: dict(kinds) for language, kinds in family.code.items()}
        for language, kinds in SOLUTIONS.get(family.name, {}).items():
            code.setdefault(language, {}).update(kinds)
        merged.append(Family(family.name, family.entry, family.description, family.params, family.returns,
                             family.cases, code))
    return tuple(merged)


FAMILIES = _merge_solutions()
FENCES = {language: language for language in DISPLAY_NAMES}
LANGUAGE_NAMES = dict(DISPLAY_NAMES)
