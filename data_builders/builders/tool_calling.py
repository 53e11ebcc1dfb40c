"""Tool-calling queries: function calling in Qwen2.5's format, every tool result executed in the sandbox.

A task is a user request that needs tools from a small library (exact big-integer arithmetic, unit conversion,
string operations, date arithmetic, a lookup in a small city table), each with a JSON Schema and a Python reference
implementation (`TOOLS`). Three kinds, drawn in turn from `areas.tool_calling.kinds`:
- single: one call, then the final answer;
- parallel: two independent calls in one assistant turn, then an answer stating both results;
- multi_step: a second call that takes the first call's result (days -> hours, date -> weekday, two populations
  -> their exact sum), then the answer.

The conversation is Qwen2.5's (qwen25/chat_template.jinja): the system turn carries the tools exactly as the
template renders `tools=` (`tools_system_prompt`), an assistant call turn is its `<tool_call>` blocks as text
(`call_text`: byte for byte what the template makes of a structured `tool_calls` message), and each tool result is
`json.dumps` of the value the implementation returned in the sandbox (`verifiers.tool_call.execute_calls`). Records
keep messages as plain `{"role", "content"}` strings, so the rows render identically with or without a `tools`
column and need no tool-call struct in Arrow.

Each task gives ONE query, at one step of its trajectory: the first call(s), a later (dependent) call, or the
final answer (`answer_step_fraction` of the tasks). The query's prompt holds the system turn, the user request and
the gold turns before that step with their sandbox results; the candidate is the next assistant turn, verified by
the `tool_call` verifier against the reference's `steps[step]`. An SFT row at the answer step is the whole
sample: system, user, assistant `<tool_call>` turn(s), the tool results, the final answer. The gold turns in the
prompt are checked by the same verifier before the query is kept (counted as "gold history fails its step").

Tool results go in one `tool` message per result (`tool_role: tool`, the default, Qwen2.5's format) or in a `user`
message holding the `<tool_response>` blocks (`tool_role: user`, for consumers that know no `tool` role). Qwen2.5's
template renders both to the same text (a tool turn IS a user turn wrapping `<tool_response>` blocks); preference
and RL-query prompts may end with tool results (data_builders/records.py).

Offline candidates: call steps get the gold call(s), a variant with a short preamble, wrong arguments (a changed
value: the sandbox result differs), a schema violation (a required argument dropped), an unknown function name,
malformed JSON (Python-style quotes) and a guessed answer with no call; answer steps get two phrasings of the right
answer, a wrong value and a repeated call. A model backend (hf, openai) gets the same prompt, with the tools in
the system turn, and writes its own turn.
"""

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from data_builders.builders.sampling import distinct_queries
from data_builders.config import ToolCallingAreaConfig
from data_builders.generators import Candidate, Generator, Query
from qwen25.tokenizer import DEFAULT_SYSTEM_PROMPT
from verifiers import VerifierResult
from verifiers.tool_call import execute_calls, verify_tool_call_many

CATEGORY = "tool_calling"
TIMEOUT_S = 5.0  # ours: every library tool returns in milliseconds; a candidate that loops costs 5 s of a worker
BUILD_THREADS = 8  # tasks whose tool results are computed at once (each a sandbox run)

TOOLS_HEADER = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call>"
)


# ------------------------------------------------------------------------------------------------ Qwen2.5 format


def tools_system_prompt(tools: Sequence[dict], system: str = DEFAULT_SYSTEM_PROMPT) -> str:
    """The system turn's content exactly as Qwen2.5's template writes it for `apply_chat_template(tools=tools)`,
    so the same text renders without `tools=` (tests/data_builders/test_tool_calling.py checks the bytes)."""
    return (
        system + TOOLS_HEADER + "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools) + TOOLS_FOOTER
    )


def call_text(calls: Sequence[dict]) -> str:
    """An assistant turn making `calls` ({"name", "arguments"}): what the template renders for the structured
    message `{"role": "assistant", "content": "", "tool_calls": calls}`."""
    return "\n".join(
        "<tool_call>\n"
        + json.dumps({"name": c["name"], "arguments": c["arguments"]}, ensure_ascii=False)
        + "\n</tool_call>"
        for c in calls
    )


def result_text(value: object) -> str:
    """A tool result's message content: the value as JSON, as Qwen's function-calling guide writes it."""
    return json.dumps(value, ensure_ascii=False)


def tool_messages(results: Sequence[object], role: str) -> list[dict]:
    """The turn(s) carrying one step's results: one `tool` message each, or one `user` message holding the
    `<tool_response>` blocks (the same rendered text)."""
    if role == "tool":
        return [{"role": "tool", "content": result_text(value)} for value in results]
    body = "\n".join(f"<tool_response>\n{result_text(value)}\n</tool_response>" for value in results)
    return [{"role": "user", "content": body}]


# ---------------------------------------------------------------------------------------------------- the tools


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict
    source: str  # the reference implementation, run only in the sandbox

    def spec(self) -> dict:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _object(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


LENGTH_UNITS = ("m", "km", "cm", "mi", "ft", "in")
MASS_UNITS = ("kg", "g", "lb", "oz")
UNITS = LENGTH_UNITS + MASS_UNITS
CITIES = {
    "Lyon": ("France", 522250, 173),
    "Osaka": ("Japan", 2752412, 12),
    "Lima": ("Peru", 9943800, 154),
    "Accra": ("Ghana", 2388000, 61),
    "Oslo": ("Norway", 709037, 23),
    "Perth": ("Australia", 2309338, 31),
    "Quito": ("Ecuador", 2800388, 2850),
    "Tartu": ("Estonia", 97435, 57),
}
_DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "description": "a date as YYYY-MM-DD"}
_INTEGER_TEXT = {"type": "string", "pattern": "^-?[0-9]{1,60}$", "description": "an integer in decimal digits"}

TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "big_arithmetic",
            "Exact integer arithmetic on numbers of any length, given as decimal strings.",
            _object(
                {
                    "operation": {"type": "string", "enum": ["add", "subtract", "multiply"]},
                    "a": _INTEGER_TEXT,
                    "b": _INTEGER_TEXT,
                },
                ["operation", "a", "b"],
            ),
            "def big_arithmetic(operation, a, b):\n"
            "    x, y = int(a), int(b)\n"
            "    if operation == 'add':\n        return str(x + y)\n"
            "    if operation == 'subtract':\n        return str(x - y)\n"
            "    if operation == 'multiply':\n        return str(x * y)\n"
            "    raise ValueError(f'unknown operation {operation!r}')\n",
        ),
        Tool(
            "convert_units",
            "Convert a length or a mass between units; the result is rounded to 4 decimals.",
            _object(
                {
                    "value": {"type": "number", "minimum": -1e9, "maximum": 1e9},
                    "from_unit": {"type": "string", "enum": list(UNITS)},
                    "to_unit": {"type": "string", "enum": list(UNITS)},
                },
                ["value", "from_unit", "to_unit"],
            ),
            "def convert_units(value, from_unit, to_unit):\n"
            "    length = {'m': 1.0, 'km': 1000.0, 'cm': 0.01, 'mi': 1609.344, 'ft': 0.3048, 'in': 0.0254}\n"
            "    mass = {'kg': 1.0, 'g': 0.001, 'lb': 0.45359237, 'oz': 0.028349523125}\n"
            "    for table in (length, mass):\n"
            "        if from_unit in table and to_unit in table:\n"
            "            return round(value * table[from_unit] / table[to_unit], 4)\n"
            "    raise ValueError(f'cannot convert {from_unit} to {to_unit}')\n",
        ),
        Tool(
            "text_tool",
            "Apply a string operation to a text.",
            _object(
                {
                    "operation": {"type": "string", "enum": ["reverse", "uppercase", "count_vowels", "word_count"]},
                    "text": {"type": "string", "maxLength": 200},
                },
                ["operation", "text"],
            ),
            "def text_tool(operation, text):\n"
            "    if operation == 'reverse':\n        return text[::-1]\n"
            "    if operation == 'uppercase':\n        return text.upper()\n"
            "    if operation == 'count_vowels':\n        return sum(c in 'aeiouAEIOU' for c in text)\n"
            "    if operation == 'word_count':\n        return len(text.split())\n"
            "    raise ValueError(f'unknown operation {operation!r}')\n",
        ),
        Tool(
            "add_days",
            "The date a number of days after (or, if negative, before) a date.",
            _object(
                {"date": _DATE, "days": {"type": "integer", "minimum": -36500, "maximum": 36500}}, ["date", "days"]
            ),
            "def add_days(date, days):\n"
            "    import datetime\n"
            "    return (datetime.date.fromisoformat(date) + datetime.timedelta(days=days)).isoformat()\n",
        ),
        Tool(
            "days_between",
            "The number of days from the start date to the end date (negative if the end is earlier).",
            _object({"start": _DATE, "end": _DATE}, ["start", "end"]),
            "def days_between(start, end):\n"
            "    import datetime\n"
            "    return (datetime.date.fromisoformat(end) - datetime.date.fromisoformat(start)).days\n",
        ),
        Tool(
            "weekday",
            "The day of the week of a date, in English.",
            _object({"date": _DATE}, ["date"]),
            "def weekday(date):\n    import datetime\n    return datetime.date.fromisoformat(date).strftime('%A')\n",
        ),
        Tool(
            "city_info",
            "Look up a field of a city in the city table.",
            _object(
                {
                    "city": {"type": "string", "enum": list(CITIES)},
                    "field": {"type": "string", "enum": ["country", "population", "elevation_m"]},
                },
                ["city", "field"],
            ),
            "CITY_TABLE = "
            + json.dumps({c: dict(zip(("country", "population", "elevation_m"), v)) for c, v in CITIES.items()})
            + "\n"
            "\n\ndef city_info(city, field):\n"
            "    return CITY_TABLE[city][field]\n",
        ),
    )
}


def implementation(names: Sequence[str]) -> str:
    """The Python source defining the tools `names`."""
    return "\n\n".join(TOOLS[name].source for name in names)


# ------------------------------------------------------------------------------------------------------- tasks


@dataclass
class Task:
    """A user request and its trajectory: `plan(results_so_far)` gives the calls of each step in turn."""

    kind: str
    request: str
    tools: list[str]  # the tools it needs
    first: list[dict]  # the first step's calls
    then: Callable[[list], list[dict]] | None = None  # the second step's calls from the first step's results
    answer: Callable[[list], list[str]] = lambda results: [str(results[-1][0])]


def _call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def _big(rng: random.Random) -> str:
    return str(rng.randrange(10 ** rng.randint(18, 30), 10 ** rng.randint(31, 40)))


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1990, 2035)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


WORDS = (
    "lantern",
    "orbit",
    "marble",
    "quiet river",
    "paper boats",
    "silver moon",
    "north wind",
    "open window",
    "tiny garden",
    "amber light",
    "seven stones",
    "morning tea",
)


def single_task(rng: random.Random) -> Task:
    tool = rng.choice(("big_arithmetic", "convert_units", "text_tool", "add_days", "days_between", "city_info"))
    if tool == "big_arithmetic":
        op, a, b = rng.choice(("add", "subtract", "multiply")), _big(rng), _big(rng)
        word = {"add": "plus", "subtract": "minus", "multiply": "times"}[op]
        return Task(
            "single", f"What is {a} {word} {b}? I need the exact value.", [tool], [_call(tool, operation=op, a=a, b=b)]
        )
    if tool == "convert_units":
        units = rng.choice((LENGTH_UNITS, MASS_UNITS))
        src, dst = rng.sample(units, 2)
        value = rng.choice((rng.randint(1, 5000), round(rng.uniform(0.5, 500), 1)))
        return Task(
            "single",
            f"How many {dst} is {value} {src}?",
            [tool],
            [_call(tool, value=value, from_unit=src, to_unit=dst)],
        )
    if tool == "text_tool":
        op, text = rng.choice(("reverse", "uppercase", "count_vowels", "word_count")), rng.choice(WORDS)
        ask = {
            "reverse": f"Reverse the text '{text}'.",
            "uppercase": f"Write '{text}' in upper case.",
            "count_vowels": f"How many vowels are in '{text}'?",
            "word_count": f"How many words does '{text}' have?",
        }[op]
        return Task("single", ask, [tool], [_call(tool, operation=op, text=text)])
    if tool == "add_days":
        date, days = _date(rng), rng.choice((rng.randint(1, 400), -rng.randint(1, 400)))
        ask = f"What date is {abs(days)} days {'after' if days > 0 else 'before'} {date}?"
        return Task("single", ask, [tool], [_call(tool, date=date, days=days)])
    if tool == "days_between":
        start, end = sorted((_date(rng), _date(rng)))
        return Task(
            "single", f"How many days are there from {start} to {end}?", [tool], [_call(tool, start=start, end=end)]
        )
    city, field = rng.choice(list(CITIES)), rng.choice(("country", "population", "elevation_m"))
    ask = {
        "country": f"Which country is {city} in? Check the city table.",
        "population": f"What is the population of {city} according to the city table?",
        "elevation_m": f"What is the elevation of {city} in metres, per the city table?",
    }[field]
    return Task("single", ask, [tool], [_call(tool, city=city, field=field)])


def parallel_task(rng: random.Random) -> Task:
    if rng.random() < 0.5:
        a, b = rng.sample(list(CITIES), 2)
        field = rng.choice(("population", "elevation_m"))
        label = "populations" if field == "population" else "elevations in metres"
        return Task(
            "parallel",
            f"Look up the {label} of {a} and {b} in the city table.",
            ["city_info"],
            [_call("city_info", city=a, field=field), _call("city_info", city=b, field=field)],
            answer=lambda results: [str(v) for v in results[-1]],
        )
    first, second = rng.sample(list(LENGTH_UNITS), 2), rng.sample(list(MASS_UNITS), 2)
    x, y = rng.randint(2, 900), rng.randint(2, 900)
    return Task(
        "parallel",
        f"Convert {x} {first[0]} to {first[1]} and {y} {second[0]} to {second[1]}.",
        ["convert_units"],
        [
            _call("convert_units", value=x, from_unit=first[0], to_unit=first[1]),
            _call("convert_units", value=y, from_unit=second[0], to_unit=second[1]),
        ],
        answer=lambda results: [str(v) for v in results[-1]],
    )


def multi_step_task(rng: random.Random) -> Task:
    kind = rng.choice(("hours", "weekday", "sum_population"))
    if kind == "hours":
        start, end = sorted((_date(rng), _date(rng)))
        return Task(
            "multi_step",
            f"How many hours are there from the start of {start} to the start of {end}? "
            "Use the tools for both the days and the multiplication.",
            ["days_between", "big_arithmetic"],
            [_call("days_between", start=start, end=end)],
            then=lambda results: [_call("big_arithmetic", operation="multiply", a=str(results[0][0]), b="24")],
        )
    if kind == "weekday":
        date, days = _date(rng), rng.randint(10, 900)
        return Task(
            "multi_step",
            f"Which day of the week is it {days} days after {date}?",
            ["add_days", "weekday"],
            [_call("add_days", date=date, days=days)],
            then=lambda results: [_call("weekday", date=results[0][0])],
        )
    a, b = rng.sample(list(CITIES), 2)
    return Task(
        "multi_step",
        f"What is the combined population of {a} and {b} in the city table? Add them exactly "
        "with the arithmetic tool.",
        ["city_info", "big_arithmetic"],
        [_call("city_info", city=a, field="population"), _call("city_info", city=b, field="population")],
        then=lambda results: [_call("big_arithmetic", operation="add", a=str(results[0][0]), b=str(results[0][1]))],
    )


MAKERS = {"single": single_task, "parallel": parallel_task, "multi_step": multi_step_task}


# ---------------------------------------------------------------------------------------------------- candidates


def _perturbed(call: dict) -> dict:
    """`call` with one argument changed to another schema-valid value (so only the result can tell)."""
    schema = TOOLS[call["name"]].parameters["properties"]
    arguments = dict(call["arguments"])
    for key, value in arguments.items():
        spec = schema[key]
        if "enum" in spec and key not in ("from_unit", "to_unit", "field"):
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            arguments[key] = value + 1
        elif isinstance(value, str) and value.lstrip("-").isdigit():
            arguments[key] = value[:-1] + str((int(value[-1]) + 1) % 10)
        elif isinstance(value, str) and spec.get("pattern", "").startswith("^[0-9]{4}"):
            arguments[key] = value[:-2] + f"{int(value[-2:]) % 28 + 1:02d}"
        elif "enum" in spec:
            arguments[key] = next(v for v in spec["enum"] if v != value)
        elif isinstance(value, str):
            arguments[key] = value + "s"
        else:
            continue
        return {"name": call["name"], "arguments": arguments}
    return {"name": call["name"], "arguments": arguments}


def _python_style(calls: Sequence[dict]) -> str:
    return "\n".join(f"<tool_call>\n{ {'name': c['name'], 'arguments': c['arguments']} }\n</tool_call>" for c in calls)


def call_candidates(calls: list[dict], rng: random.Random) -> tuple[Candidate, ...]:
    correct = call_text(calls)
    preamble = rng.choice(("I'll use the tools for this.", "Let me look that up.", "Calling the tool now."))
    dropped = dict(calls[0], arguments=dict(list(calls[0]["arguments"].items())[:-1]))
    return (
        Candidate(correct, "correct"),
        Candidate(f"{preamble}\n{correct}", "correct"),
        Candidate(call_text([_perturbed(calls[0]), *calls[1:]]), "wrong_arguments"),
        Candidate(call_text([dropped, *calls[1:]]), "schema_violation"),
        Candidate(call_text([dict(calls[0], name="get_" + calls[0]["name"]), *calls[1:]]), "unknown_function"),
        Candidate(_python_style(calls), "malformed_json"),
        Candidate(f"The answer is {rng.randint(2, 999)}.", "no_call"),
    )


def _wrong(value: str) -> str:
    if value.lstrip("-").replace(".", "", 1).isdigit():
        return value[:-1] + str((int(value[-1]) + 3) % 10)
    return value[::-1] if value[::-1] != value else value + "x"


def answer_candidates(answers: list[str], last_calls: list[dict], rng: random.Random) -> tuple[Candidate, ...]:
    stated = " and ".join(answers)
    right = rng.choice((f"The result is {stated}.", f"According to the tools, the answer is {stated}."))
    other = f"Based on the tool output: {stated}."
    wrong = " and ".join(_wrong(a) for a in answers)
    return (
        Candidate(right, "correct"),
        Candidate(other, "correct"),
        Candidate(f"The result is {wrong}.", "wrong_answer"),
        Candidate(call_text(last_calls), "call_again"),
    )


# ------------------------------------------------------------------------------------------------------ queries


def trajectory(task: Task) -> tuple[list[list[dict]], list[list[object]]]:
    """(calls of each call step, their results): each step executed in the sandbox before the next is planned."""
    steps, results = [task.first], []
    tools = implementation(task.tools)
    results.append(execute_calls(tools, task.first, TIMEOUT_S))
    if task.then is not None:
        second = task.then(results)
        steps.append(second)
        results.append(execute_calls(tools, second, TIMEOUT_S))
    return steps, results


def make_query(
    task: Task, steps: list[list[dict]], results: list[list[object]], rng: random.Random, area: ToolCallingAreaConfig
) -> tuple[Query, list[tuple[str, dict]]]:
    """The query at one step of the task, and the (gold turn, reference) pairs of the turns in its prompt."""
    distractors = rng.sample(sorted(set(TOOLS) - set(task.tools)), min(area.distractors, len(TOOLS) - len(task.tools)))
    shown = sorted(set(task.tools) | set(distractors))
    rng.shuffle(shown)
    answers = task.answer(results)
    reference_steps = [{"calls": calls} for calls in steps] + [{"answer": answers if len(answers) > 1 else answers[0]}]
    last = len(steps)  # the answer step
    at = last if rng.random() < area.answer_step_fraction else rng.randrange(last)
    base = {
        "type": "tool_call",
        "tools": [TOOLS[name].spec() for name in shown],
        "implementation": implementation(shown),
        "steps": reference_steps,
        "timeout_s": TIMEOUT_S,
    }
    messages = [
        {"role": "system", "content": tools_system_prompt(base["tools"])},
        {"role": "user", "content": task.request},
    ]
    history = []
    for i in range(at):
        gold = call_text(steps[i])
        history.append((gold, {**base, "step": i}))
        messages.append({"role": "assistant", "content": gold})
        messages.extend(tool_messages(results[i], area.tool_role))
    if at == last:
        offline = answer_candidates(answers, steps[-1], rng)
    else:
        offline = call_candidates(steps[at], rng)
    source = f"procedural:tool_calling:{task.kind}:{'answer' if at == last else f'call{at}'}"
    query = Query(
        CATEGORY,
        tuple(messages),
        {**base, "step": at},
        source,
        offline,
        offline[0].text,
        key=json.dumps([task.request, at]),
    )
    return query, history


def make_queries(
    area: ToolCallingAreaConfig, seed: int, generator: Generator | None = None
) -> tuple[list[Query], Counter]:
    rng = random.Random(f"{seed}:tool_calling")
    tasks = [MAKERS[area.kinds[i % len(area.kinds)]](rng) for i in range(area.procedural)]
    with ThreadPoolExecutor(BUILD_THREADS) as pool:
        trajectories = list(pool.map(trajectory, tasks))
    dropped = Counter()
    drafts, histories = [], []
    for task, (steps, results) in zip(tasks, trajectories, strict=True):
        query, history = make_query(task, steps, results, random.Random(f"{seed}:{task.request}"), area)
        drafts.append(query)
        histories.append(history)
    checks = [pair for history in histories for pair in history]
    verdicts = iter(verify_tool_call_many(checks, workers=area.workers))
    sound = []
    for query, history in zip(drafts, histories, strict=True):
        if all([next(verdicts).passed for _ in history]):  # noqa: C419 (a list: consume every verdict)
            sound.append(query)
        else:
            dropped["gold history fails its step"] += 1
    return distinct_queries(sound, dropped), dropped


def batch_verifier(area: ToolCallingAreaConfig) -> Callable[[Sequence[tuple[str, dict]]], list[VerifierResult]]:
    """`verify_tool_call_many` on `area.workers` sandboxes: `verify_tool_call`'s verdicts, run concurrently."""
    return lambda items: verify_tool_call_many(items, workers=area.workers)
