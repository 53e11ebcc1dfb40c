"""Logical-reasoning queries (SFT area 6): deductive, inductive, analogical, causal and statistical problems made
procedurally, each solved by a small solver, asked as multiple-choice, true/false or open-ended questions.

- deductive: an ordering from shuffled pairwise facts ("Ana is taller than Ben"); the solver chains them;
- inductive: the next term of an arithmetic, geometric or second-order sequence; the solver finds the rule;
- analogical: letter-shift analogies ("ABC is to DEF as KLM is to ?"); the solver reads the shift off the pair;
- causal: forward chaining over if-then rules from an observed event, with a rule whose cause never happens;
- statistical: mean, median, range of a small sample, or a probability as a reduced fraction.
The reference (`logic` verifier) holds the solver's answer and the steps it derived, which a response must state:
the report's "iterative refinement removes wrong answers and flawed reasoning" is the answer check plus the
reasoning check on every candidate, and with a model backend `RefiningGenerator` gives a failed candidate
`refine_rounds` more tries with the verifier's feedback before it is dropped. Offline candidates: two correct
responses, a wrong answer, a right answer with flawed reasoning, and a bare answer.
"""

import itertools
import random
import string
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from data_builders.builders.sampling import distinct_queries
from data_builders.config import LogicAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import assistant_message, user_message
from verifiers import verify
from verifiers.final_answer import same_answer

CATEGORY = "logic"
NAMES = ("Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jun")
EVENTS = ("the river floods", "the bridge closes", "the bus takes a detour", "the school opens late",
          "the market moves indoors", "the power fails", "the pumps stop", "the cellar fills with water",
          "the alarm sounds", "the guards arrive", "the frost comes", "the crops fail", "prices rise")


class Problem:
    """A solved problem: question, answer, the steps a sound derivation states, reasoning text and variants."""

    def __init__(self, question: str, answer: str, steps: list[str], reasoning: str, flawed: str,
                 distractors: list[str]) -> None:
        self.question, self.answer, self.steps = question, answer, steps
        self.reasoning, self.flawed, self.distractors = reasoning, flawed, distractors


def deductive(rng: random.Random) -> Problem:
    people = rng.sample(NAMES, rng.randint(3, 5))  # tallest first: the solver must recover this order
    facts = [f"{a} is taller than {b}." for a, b in itertools.pairwise(people)]
    rng.shuffle(facts)
    chain = " > ".join(people)
    k = rng.randrange(len(people))
    ordinal = ("tallest", "second tallest", "third tallest", "fourth tallest", "fifth tallest")[k]
    i, j = rng.sample([p for p in range(len(people)) if p != k], 2)
    wrong = list(people)
    wrong[i], wrong[j] = wrong[j], wrong[i]
    question = " ".join(facts) + f" Who is the {ordinal}?"
    reasoning = (f"Chaining the facts from tallest to shortest gives {chain}. "
                 f"Position {k + 1} in this order is {people[k]}.")
    flawed = f"Chaining the facts gives {' > '.join(wrong)}, and the {ordinal} is {people[k]}."
    return Problem(question, people[k], [chain], reasoning, flawed, [p for p in people if p != people[k]])


def inductive(rng: random.Random) -> Problem:
    kind = rng.choice(("arithmetic", "geometric", "second_order"))
    a = rng.randint(1, 12)
    if kind == "arithmetic":
        d = rng.choice([x for x in range(-7, 10) if x])
        terms = [a + i * d for i in range(6)]
        rule, bad = f"each term adds {d}", f"each term adds {d + 1}"
    elif kind == "geometric":
        r = rng.randint(2, 4)
        terms = [a * r**i for i in range(6)]
        rule, bad = f"each term is multiplied by {r}", f"each term is multiplied by {r + 1}"
    else:
        d, e = rng.randint(1, 5), rng.randint(1, 3)
        terms = [a]
        for i in range(5):
            terms.append(terms[-1] + d + i * e)
        rule, bad = f"the differences grow by {e}", f"the differences grow by {e + 1}"
    shown, nxt = terms[:5], terms[5]
    question = f"What number comes next in the sequence {', '.join(map(str, shown))}, ...?"
    reasoning = f"Comparing neighbouring terms, {rule}. Applying that rule to {shown[-1]} gives {nxt}."
    flawed = f"Comparing neighbouring terms, {bad}. So the next number is {nxt}."
    return Problem(question, str(nxt), [rule], reasoning, flawed, [str(nxt + 1), str(nxt - 1), str(nxt + 2)])


def _shift(word: str, s: int) -> str:
    return "".join(string.ascii_uppercase[(string.ascii_uppercase.index(c) + s) % 26] for c in word)


def analogical(rng: random.Random) -> Problem:
    s = rng.randint(1, 5)
    first = "".join(rng.sample(string.ascii_uppercase, 3))
    second = "".join(rng.sample(string.ascii_uppercase, 3))
    answer = _shift(second, s)
    places = "place" if s == 1 else "places"
    rule = f"each letter moves {s} {places} forward"
    question = f"{first} is to {_shift(first, s)} as {second} is to what?"
    pair = f"From {first} to {_shift(first, s)}"
    reasoning = f"{pair}, {rule} in the alphabet. Doing the same to {second} gives {answer}."
    flawed = f"{pair}, each letter moves {s + 2} places forward, so the answer is {answer}."
    return Problem(question, answer, [rule], reasoning, flawed, [_shift(second, s + 1), _shift(second, s - 1) if s > 1
                                                                else _shift(second, s + 2), _shift(first, s)])


def causal(rng: random.Random) -> Problem:
    events = rng.sample(EVENTS, 6)
    chain, spare = events[: rng.randint(3, 4)], events[4:]
    rules = [f"If {a}, then {b}." for a, b in itertools.pairwise(chain)] + [f"If {spare[0]}, then {spare[1]}."]
    rng.shuffle(rules)
    question = " ".join(rules) + f" Today {chain[0]}. Which last event in the chain of consequences must happen?"
    links = [f"{a}, so {b}" for a, b in itertools.pairwise(chain)]
    reasoning = ("Starting from what happened: " + "; ".join(links) + f". No rule starts from {chain[-1]}, and "
                 f"{spare[0]} did not happen, so its rule does not apply.")
    flawed = f"Starting from what happened: {chain[0]}, so {chain[-1]}."
    return Problem(question, chain[-1], links, reasoning, flawed, [spare[1], chain[1] if len(chain) > 2 else spare[0],
                                                                   spare[0]])


def statistical(rng: random.Random) -> Problem:
    kind = rng.choice(("mean", "median", "range", "probability"))
    if kind == "probability":
        red, blue, green = rng.randint(1, 9), rng.randint(1, 9), rng.randint(0, 6)
        total = red + blue + green
        value = Fraction(red, total)
        answer = f"{value.numerator}/{value.denominator}"
        question = (f"A bag holds {red} red, {blue} blue and {green} green marbles. One is drawn at random. What is "
                    "the probability that it is red, as a reduced fraction?")
        step = f"there are {total} marbles in all"
        reasoning = f"Counting, {step}, and {red} of them are red, so the probability is {red}/{total} = {answer}."
        flawed = f"Counting, there are {total + 1} marbles, so the probability is {answer}."
        wrong = [f"{red}/{total + 1}", f"{blue}/{total}", f"{red}/{red + blue}"]
        return Problem(question, answer, [step], reasoning, flawed, wrong)
    data = [rng.randint(1, 30) for _ in range(rng.choice((5, 7)))]
    ordered = sorted(data)
    listed = ", ".join(map(str, ordered))
    if kind == "mean":
        while sum(data) % len(data):  # a whole-number mean keeps the answer exact
            data[-1] += 1
        ordered, listed = sorted(data), ", ".join(map(str, sorted(data)))
        value = sum(data) // len(data)
        step = f"the sum is {sum(data)}"
        reasoning = f"The values are {', '.join(map(str, data))}; {step}, and {sum(data)} / {len(data)} = {value}."
        flawed = f"The values are {', '.join(map(str, data))}; the sum is {sum(data) + 3}, so the mean is {value}."
    elif kind == "median":
        value = ordered[len(ordered) // 2]
        step = f"sorted: {listed}"
        reasoning = f"Sorting the values, {step}. The middle one is {value}."
        flawed = f"The middle value of {', '.join(map(str, data))} is {value}."
    else:
        value = ordered[-1] - ordered[0]
        step = f"the largest is {ordered[-1]} and the smallest is {ordered[0]}"
        reasoning = f"Looking at {listed}, {step}, so the range is {ordered[-1]} - {ordered[0]} = {value}."
        flawed = f"Looking at {listed}, the largest is {ordered[-1] + 1}, so the range is {value}."
    question = f"What is the {kind} of {', '.join(map(str, data))}?"
    return Problem(question, str(value), [step], reasoning, flawed, [str(value + 1), str(value - 1), str(value + 2)])


SOLVERS = {"deductive": deductive, "inductive": inductive, "analogical": analogical, "causal": causal,
           "statistical": statistical}
LETTERS = "ABCD"


def pose(problem: Problem, form: str, rng: random.Random) -> tuple[str, dict, dict[str, str]]:
    """(prompt, reference, answer lines: correct / wrong) for one form of `problem`."""
    # a distractor equal in value to the answer ("2/4" for "1/2") would make two options right
    distractors = list(dict.fromkeys(d for d in problem.distractors if not same_answer(d, problem.answer)))[:3]
    steps = problem.steps
    if form == "multiple_choice":
        options = [problem.answer, *distractors]
        rng.shuffle(options)
        right = LETTERS[options.index(problem.answer)]
        wrong = LETTERS[(options.index(problem.answer) + 1) % len(options)]
        listed = "\n".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))
        prompt = (f"{problem.question}\n{listed}\nReason step by step, then give the letter of your choice on a line "
                  "'Answer: X'.")
        reference = {"type": "logic", "form": form, "answer": right, "steps": steps}
        return prompt, reference, {"correct": f"{right}) {problem.answer}",
                                   "wrong": f"{wrong}) {options[LETTERS.index(wrong)]}"}
    if form == "true_false":
        truth = rng.random() < 0.5 or not distractors
        claimed = problem.answer if truth else distractors[0]
        prompt = (f"{problem.question}\nClaim: the answer is {claimed}. Is the claim true or false? Reason step by "
                  "step, then answer on a line 'Answer: true' or 'Answer: false'.")
        reference = {"type": "logic", "form": form, "answer": "true" if truth else "false", "steps": steps}
        return prompt, reference, {"correct": reference["answer"], "wrong": "false" if truth else "true"}
    prompt = f"{problem.question}\nReason step by step, then give the final answer on a line 'Answer: ...'."
    reference = {"type": "logic", "form": form, "answer": problem.answer, "steps": steps}
    wrong = distractors[0] if distractors else problem.answer + "x"
    return prompt, reference, {"correct": problem.answer, "wrong": wrong}


def make_query(kind: str, form: str, rng: random.Random) -> Query:
    problem = SOLVERS[kind](rng)
    prompt, reference, lines = pose(problem, form, rng)
    offline = (
        Candidate(f"{problem.reasoning}\nAnswer: {lines['correct']}", "correct"),
        Candidate(f"Let me think it through. {problem.reasoning}\nAnswer: {lines['correct']}", "correct"),
        Candidate(f"{problem.reasoning}\nAnswer: {lines['wrong']}", "wrong_answer"),
        Candidate(f"{problem.flawed}\nAnswer: {lines['correct']}", "flawed_reasoning"),
        Candidate(f"Answer: {lines['correct']}", "no_reasoning"),
    )
    return Query(CATEGORY, (user_message(prompt),), reference, f"procedural:logic:{kind}:{form}", offline,
                 offline[0].text, prompt)


def make_queries(area: LogicAreaConfig, seed: int, generator: Generator | None = None) -> tuple[list[Query], Counter]:
    rng = random.Random(f"{seed}:logic")
    kinds, forms, dropped = area.kinds, area.forms, Counter()
    drafts = (make_query(kinds[i % len(kinds)], forms[(i // len(kinds)) % len(forms)], rng)
              for i in range(area.procedural))
    return distinct_queries(drafts, dropped), dropped


class RefiningGenerator:
    """Iterative refinement for model backends: a candidate that fails its check is shown to the model again with
    the verifier's reason and replaced by the revision, up to `rounds` times; what still fails is dropped later."""

    def __init__(self, generator: Generator, rounds: int) -> None:
        self.generator, self.rounds = generator, rounds
        self.name = f"{generator.name}+refine"
        self.refined = 0  # revisions asked for, for tests and summaries

    def generate(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        out = [list(c) for c in self.generator.generate(queries, k)]
        for _ in range(self.rounds):
            todo = []
            for qi, candidates in enumerate(out):
                for ci, candidate in enumerate(candidates):
                    result = verify(candidate.text, queries[qi].reference)
                    if not result.passed:
                        reason = result.details.get("failure", "the answer or the reasoning is wrong")
                        messages = (*queries[qi].messages, assistant_message(candidate.text),
                                    user_message(f"That response failed a check: {reason}. Re-check every step and "
                                                 "write the full corrected reasoning and answer."))
                        todo.append((qi, ci, Query(CATEGORY, messages, queries[qi].reference, queries[qi].source)))
            if not todo:
                break
            revised = self.generator.generate([q for _, _, q in todo], 1)
            for (qi, ci, _), new in zip(todo, revised, strict=True):
                if new:
                    out[qi][ci] = Candidate(new[0].text, "refined")
                    self.refined += 1
        return out


def response_generator(area: LogicAreaConfig, generator: Generator, seed: int) -> Generator:
    """The procedural backend as is (its candidates are fixed); model backends wrapped in `RefiningGenerator`."""
    if generator.name == "procedural" or area.refine_rounds == 0:
        return generator
    return RefiningGenerator(generator, area.refine_rounds)
