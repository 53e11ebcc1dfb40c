"""Structured-data queries (SFT area 5): tabular QA, fact verification, error correction, structural understanding
and JSON output, over procedurally generated tables, with every answer computed by pandas.

Each query shows a small table (markdown, CSV or JSON) and asks one of:
- table_qa: a sum, mean, count or arg-max over the table, answered on an `Answer:` line (`structured` verifier);
- fact_verification: a claim about the table, answered "supported" or "refuted";
- error_correction: a CSV whose `total` column breaks total = price x quantity in one row, or a JSON array with one
  syntax error; the repaired data, in a fenced block, is checked by comparison with the original;
- structure: rows, columns and numeric columns of the table, as JSON checked by `jsonschema` and by value;
- json_output: the rows matching a condition as a JSON array, checked by `jsonschema` (the `json_schema` reference
  type of DESIGN.md) and by value.
Responses state their reasoning chain first (the values looked up and the arithmetic), which the verifiers require.
Offline candidates: two correct responses, a wrong answer (or wrong repair, schema violation), and an answer with
no reasoning; the first correct one is the gold that proves the reference sound.
"""

import json
import random
from collections import Counter

import pandas as pd

from data_builders.builders.sampling import distinct_queries
from data_builders.config import StructuredAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import user_message

CATEGORY = "structured"
ITEMS = ("lamp", "kettle", "chair", "desk", "rug", "mirror", "clock", "vase", "shelf", "stool", "fan", "heater",
         "blender", "toaster", "pillow", "blanket", "candle", "basket")
CITIES = ("Lyon", "Osaka", "Lima", "Accra", "Oslo", "Perth")
GROUPS = ("home", "kitchen", "office")
MIN_REASONING = 8  # words of reasoning the verifiers require before the answer


def make_table(rng: random.Random, rows: int) -> pd.DataFrame:
    """Distinct items and prices, so arg-max questions have one answer."""
    return pd.DataFrame({
        "item": rng.sample(ITEMS, rows),
        "city": [rng.choice(CITIES) for _ in range(rows)],
        "group": [rng.choice(GROUPS) for _ in range(rows)],
        "price": rng.sample(range(5, 200), rows),
        "quantity": [rng.randint(1, 40) for _ in range(rows)],
    })


def markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _answer(reasoning: str, answer: str) -> str:
    return f"{reasoning}\nAnswer: {answer}"


def table_qa(df: pd.DataFrame, rng: random.Random) -> tuple[str, str, str, str]:
    """(question, reasoning, answer, a wrong answer)."""
    kind = rng.choice(("sum", "mean", "count", "argmax"))
    if kind == "sum":
        group = rng.choice(sorted(set(df["group"])))
        rows = df[df["group"] == group]
        value = int(rows["quantity"].sum())
        parts = " + ".join(str(q) for q in rows["quantity"])
        reasoning = (f"The rows in group {group} are {', '.join(rows['item'])}. Their quantities are {parts}, "
                     f"which add up to {value}.")
        return f"What is the total quantity of items in the {group} group?", reasoning, str(value), str(value + 1)
    if kind == "mean":
        value = round(float(df["price"].mean()), 2)
        reasoning = (f"The prices are {', '.join(str(p) for p in df['price'])}. Their sum is {int(df['price'].sum())} "
                     f"over {len(df)} rows, so the mean is {value}.")
        return "What is the mean price, rounded to two decimals?", reasoning, f"{value:g}", f"{value + 1.5:g}"
    if kind == "count":
        threshold = int(df["price"].median())
        rows = df[df["price"] > threshold]
        reasoning = (f"The items priced above {threshold} are {', '.join(rows['item']) or 'none'}; "
                     f"counting them gives {len(rows)}.")
        return f"How many items cost more than {threshold}?", reasoning, str(len(rows)), str(len(rows) + 1)
    revenue = df["price"] * df["quantity"]
    best = int(revenue.idxmax())
    if (revenue == revenue.max()).sum() > 1:
        return table_qa(df, rng)
    second = int(revenue.drop(best).idxmax())
    lines = ", ".join(f"{i} {p} x {q} = {p * q}" for i, p, q in zip(df["item"], df["price"], df["quantity"]))
    reasoning = f"Revenue is price times quantity: {lines}. The largest is {int(revenue[best])}."
    return ("Which item brings the most revenue (price times quantity)?", reasoning, str(df["item"][best]),
            str(df["item"][second]))


def fact_claim(df: pd.DataFrame, rng: random.Random) -> tuple[str, str, str, str]:
    """(claim, reasoning, "supported"/"refuted", the other verdict)."""
    a, b = rng.sample(range(len(df)), 2)
    truth = rng.random() < 0.5
    if rng.random() < 0.5:
        ia, ib, pa, pb = df["item"][a], df["item"][b], int(df["price"][a]), int(df["price"][b])
        if (pa > pb) != truth:
            ia, ib, pa, pb = ib, ia, pb, pa
        claim = f"The {ia} costs more than the {ib}."
        reasoning = f"The {ia} costs {pa} and the {ib} costs {pb}; {pa} is {'more' if pa > pb else 'less'} than {pb}."
        verdict = pa > pb
    else:
        city = df["city"][a]
        count = int((df["city"] == city).sum())
        stated = count if truth else count + rng.choice((1, 2))
        claim = f"Exactly {stated} of the items are in {city}."
        reasoning = f"The items in {city} are {', '.join(df[df['city'] == city]['item'])}, which makes {count}."
        verdict = stated == count
    answer = "supported" if verdict else "refuted"
    return claim, reasoning, answer, "refuted" if verdict else "supported"


def _corrupt_json(text: str, rng: random.Random) -> tuple[str, str]:
    """`text` with one syntax error, and what the error is."""
    kind = rng.choice(("trailing comma", "missing comma", "single quotes"))
    if kind == "trailing comma":
        return text[: text.rindex("}") + 1] + ",\n]", "a trailing comma after the last object"
    if kind == "missing comma":
        at = text.index("},")
        return text[: at + 1] + text[at + 2 :], "a missing comma between the first two objects"
    at = text.index('"item"')
    return text[:at] + "'item'" + text[at + 6 :], "a key written in single quotes"


def error_correction(df: pd.DataFrame, rng: random.Random) -> tuple[str, str, str, str, str]:
    """(prompt body, reasoning, repaired text, unrepaired text, format)."""
    if rng.random() < 0.5:
        table = df[["item", "price", "quantity"]].copy()
        table["total"] = table["price"] * table["quantity"]
        clean = table.to_csv(index=False)
        row = rng.randrange(len(table))
        broken_table = table.copy()
        broken_table.loc[row, "total"] = int(table["total"][row]) + rng.choice((-10, -1, 1, 9, 100))
        broken = broken_table.to_csv(index=False)
        p, q = int(table["price"][row]), int(table["quantity"][row])
        reasoning = (f"Each total must equal price times quantity. In the {table['item'][row]} row the total is "
                     f"{int(broken_table['total'][row])}, but {p} x {q} = {p * q}, so that cell is wrong and becomes "
                     f"{p * q}. Every other row is consistent.")
        body = ("The `total` column of this CSV must equal price times quantity, but one cell is wrong. "
                f"Find it and return the corrected CSV in a ```csv block.\n\n```csv\n{broken}```")
        return body, reasoning, clean, broken, "csv"
    clean = json.dumps(_records(df[["item", "price"]]), indent=1)
    broken, error = _corrupt_json(clean, rng)
    reasoning = (f"The JSON does not parse because it has {error}. Fixing that one error and keeping every value "
                 "unchanged gives valid JSON.")
    body = ("This JSON array has one syntax error. Return the corrected JSON in a ```json block."
            f"\n\n```json\n{broken}\n```")
    return body, reasoning, clean, broken, "json"


def structure(df: pd.DataFrame) -> tuple[str, str, dict, dict]:
    """(question, reasoning, schema, expected)."""
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    expected = {"rows": len(df), "columns": list(df.columns), "numeric_columns": numeric}
    schema = {"type": "object", "required": ["rows", "columns", "numeric_columns"], "additionalProperties": False,
              "properties": {"rows": {"type": "integer", "minimum": 0},
                             "columns": {"type": "array", "items": {"type": "string"}},
                             "numeric_columns": {"type": "array", "items": {"type": "string"}}}}
    question = ("Describe the structure of this table as JSON with keys `rows` (the number of data rows), `columns` "
                "(the column names in order) and `numeric_columns` (the columns holding numbers, in order).")
    reasoning = (f"The header lists {len(df.columns)} columns: {', '.join(df.columns)}. There are {len(df)} data "
                 f"rows below it. The columns whose cells are all numbers are {', '.join(numeric)}.")
    return question, reasoning, schema, expected


def json_output(df: pd.DataFrame, rng: random.Random) -> tuple[str, str, dict, list]:
    threshold = int(df["price"].median())
    rows = df[df["price"] <= threshold]
    expected = [{"item": str(i), "price": int(p)} for i, p in zip(rows["item"], rows["price"])]
    schema = {"type": "array", "items": {"type": "object", "required": ["item", "price"],
                                         "additionalProperties": False,
                                         "properties": {"item": {"type": "string"}, "price": {"type": "integer"}}}}
    question = (f"List the items priced at most {threshold} as a JSON array of objects with keys `item` (string) "
                "and `price` (integer), in table order.")
    reasoning = (f"Going down the price column and keeping prices of at most {threshold} leaves "
                 f"{', '.join(f'{i} ({p})' for i, p in zip(rows['item'], rows['price']))}.")
    return question, reasoning, schema, expected


def _fenced(value: object) -> str:
    return f"```json\n{json.dumps(value, indent=1)}\n```"


def make_query(task: str, rng: random.Random, area: StructuredAreaConfig) -> Query:
    df = make_table(rng, rng.randint(area.min_rows, area.max_rows))
    shown = f"Table:\n{markdown(df)}\n\n"
    source = f"procedural:structured:{task}"
    if task in ("table_qa", "fact_verification"):
        if task == "table_qa":
            question, reasoning, answer, wrong = table_qa(df, rng)
            prompt = f"{shown}{question} Reason step by step, then give the final answer on a line 'Answer: ...'."
        else:
            claim, reasoning, answer, wrong = fact_claim(df, rng)
            prompt = (f"{shown}Claim: {claim}\nIs the claim supported or refuted by the table? Explain, then answer "
                      "on a line 'Answer: supported' or 'Answer: refuted'.")
        reference = {"type": "structured", "task": task, "answer": answer, "min_reasoning_words": MIN_REASONING}
        offline = (Candidate(_answer(reasoning, answer), "correct"),
                   Candidate(_answer("Checking the table: " + reasoning, answer), "correct"),
                   Candidate(_answer(reasoning, wrong), "wrong_answer"),
                   Candidate(f"Answer: {answer}", "no_reasoning"))
    elif task == "error_correction":
        body, reasoning, clean, broken, fmt = error_correction(df, rng)
        prompt = f"{body}\nExplain what is wrong before the corrected block."
        reference = {"type": "structured", "task": task, "format": fmt, "answer": clean,
                     "min_reasoning_words": MIN_REASONING}
        block = f"```{fmt}\n{clean.strip()}\n```"
        offline = (Candidate(f"{reasoning}\n\n{block}", "correct"),
                   Candidate(f"{reasoning}\n\n```{fmt}\n{broken.strip()}\n```", "unrepaired"),
                   Candidate(block, "no_reasoning"))
    else:
        if task == "structure":
            question, reasoning, schema, expected = structure(df)
            wrong = {**expected, "rows": str(len(df))}  # a string where the schema wants an integer
        else:
            question, reasoning, schema, expected = json_output(df, rng)
            wrong = [{**row, "price": str(row["price"])} for row in expected] or [{"item": 1}]
        prompt = f"{shown}{question} Explain your reading of the table first, then give the JSON in a ```json block."
        reference = {"type": "json_schema", "schema": schema, "expected": expected,
                     "min_reasoning_words": MIN_REASONING}
        offline = (Candidate(f"{reasoning}\n\n{_fenced(expected)}", "correct"),
                   Candidate(f"{reasoning}\n\n{_fenced(wrong)}", "schema_violation"),
                   Candidate(_fenced(expected), "no_reasoning"))
    return Query(CATEGORY, (user_message(prompt),), reference, source, offline, offline[0].text, prompt)


def make_queries(area: StructuredAreaConfig, seed: int,
                 generator: Generator | None = None) -> tuple[list[Query], Counter]:
    rng = random.Random(f"{seed}:structured")
    dropped = Counter()
    drafts = (make_query(area.tasks[i % len(area.tasks)], rng, area) for i in range(area.procedural))
    return distinct_queries(drafts, dropped), dropped
