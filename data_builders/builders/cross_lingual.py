"""Cross-lingual queries (SFT area 7): tasks written in English, asked in French, Spanish, German, Swahili and
Indonesian, with answers that do not depend on the language (a sum, a maximum, a count, a sorted list).

The report translates instructions from high- to low-resource languages and checks each response for semantic
alignment with the original. Here the original task's answer is computed once, so alignment is checked exactly
(the `cross_lingual` verifier: the response, in the target language, must give the original's answer).
- Offline (procedural backend): each task has hand-written templates in every language, so prompts and candidate
  responses exist without a model. Candidates: two correct ones, a wrong answer, a reply in English, and a bare
  answer line (not written in the language).
- Model backends: the generator translates the English task (one sample per task); a translation that loses or
  changes a number, or drops the answer word, is refused (counted as dropped) and the templated prompt is not used
  in its place, so every kept prompt is a checked translation.
"""

import random
import re
from collections import Counter

from data_builders.config import CrossLingualAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import user_message
from verifiers.cross_lingual import ANSWER_WORDS

CATEGORY = "cross_lingual"
LANGUAGE_NAMES = {"en": "English", "fr": "French", "es": "Spanish", "de": "German", "sw": "Swahili",
                  "id": "Indonesian"}
INSTRUCTION = {
    "en": "Explain briefly, then give the result on a line 'Answer: ...'.",
    "fr": "Expliquez brièvement, puis donnez le résultat sur une ligne « Réponse : ... ».",
    "es": "Explica brevemente y luego da el resultado en una línea «Respuesta: ...».",
    "de": "Erkläre kurz und gib dann das Ergebnis in einer Zeile „Antwort: ...“ an.",
    "sw": "Eleza kwa ufupi, kisha toa jibu kwenye mstari 'Jibu: ...'.",
    "id": "Jelaskan secara singkat, lalu tulis hasilnya pada baris 'Jawaban: ...'.",
}
# task -> language -> (question, reasoning); {nums} the list, {evens} the even numbers, {ans} the answer
TEMPLATES = {
    "sum": {
        "en": ("Compute the sum of these numbers: {nums}.",
               "The numbers are {nums}. Adding them one by one, the sum is {ans}."),
        "fr": ("Calculez la somme de ces nombres : {nums}.",
               "Les nombres sont {nums}. En les additionnant un par un, la somme est {ans}."),
        "es": ("Calcula la suma de estos números: {nums}.",
               "Los números son {nums}. Al sumarlos uno por uno, la suma es {ans}."),
        "de": ("Berechne die Summe dieser Zahlen: {nums}.",
               "Die Zahlen sind {nums}. Addiert man sie der Reihe nach, ist die Summe {ans}."),
        "sw": ("Hesabu jumla ya namba hizi: {nums}.",
               "Namba ni {nums}. Tukijumlisha moja na nyingine, jumla ya namba hizi ni {ans}."),
        "id": ("Hitung jumlah dari angka-angka berikut: {nums}.",
               "Angka-angka yang diberikan adalah {nums}. Jika dijumlahkan satu per satu, hasilnya adalah {ans}."),
    },
    "max": {
        "en": ("What is the largest number in this list: {nums}?",
               "The numbers in the list are {nums}. The largest is {ans}."),
        "fr": ("Quel est le plus grand nombre de cette liste : {nums} ?",
               "Les nombres de la liste sont {nums}. Le plus grand est {ans}."),
        "es": ("¿Cuál es el número más grande de esta lista: {nums}?",
               "Los números de la lista son {nums}. El más grande es {ans}."),
        "de": ("Was ist die größte Zahl in dieser Liste: {nums}?",
               "Die Zahlen der Liste sind {nums}. Die größte ist {ans}."),
        "sw": ("Ni namba ipi kubwa zaidi katika orodha hii: {nums}?",
               "Namba za orodha hii ni {nums}. Kubwa zaidi ni {ans}."),
        "id": ("Berapa angka terbesar dari daftar ini: {nums}?",
               "Angka dalam daftar ini adalah {nums}. Yang terbesar adalah {ans}."),
    },
    "even": {
        "en": ("How many even numbers are in this list: {nums}?",
               "The even numbers in the list are {evens}. That is {ans} of them."),
        "fr": ("Combien de nombres pairs y a-t-il dans cette liste : {nums} ?",
               "Les nombres pairs de la liste sont {evens}. Il y en a {ans}."),
        "es": ("¿Cuántos números pares hay en esta lista: {nums}?",
               "Los números pares de la lista son {evens}. Hay {ans} en total."),
        "de": ("Wie viele gerade Zahlen enthält diese Liste: {nums}?",
               "Die geraden Zahlen der Liste sind {evens}. Das sind {ans}."),
        "sw": ("Ni namba ngapi shufwa katika orodha hii: {nums}?",
               "Namba shufwa za orodha hii ni {evens}. Idadi yake ni {ans}."),
        "id": ("Ada berapa angka genap dalam daftar ini: {nums}?",
               "Angka genap dalam daftar ini adalah {evens}. Jumlahnya ada {ans}."),
    },
    "sort": {
        "en": ("Sort these numbers in increasing order: {nums}.",
               "The numbers are {nums}. In increasing order, the list is {ans}."),
        "fr": ("Triez ces nombres par ordre croissant : {nums}.",
               "Les nombres sont {nums}. Dans l'ordre croissant, la liste est {ans}."),
        "es": ("Ordena estos números de menor a mayor: {nums}.",
               "Los números son {nums}. De menor a mayor, la lista es {ans}."),
        "de": ("Sortiere diese Zahlen aufsteigend: {nums}.",
               "Die Zahlen sind {nums}. Aufsteigend sortiert ist die Liste {ans}."),
        "sw": ("Panga namba hizi kwa mpangilio wa kupanda: {nums}.",
               "Namba ni {nums}. Kwa mpangilio wa kupanda, orodha ni {ans}."),
        "id": ("Urutkan angka-angka ini dari yang terkecil: {nums}.",
               "Angka-angka ini adalah {nums}. Dari yang terkecil, urutannya adalah {ans}."),
    },
}


def solve(task: str, numbers: list[int]) -> tuple[str, str]:
    """(answer, even numbers listed) of the language-independent task."""
    evens = ", ".join(str(n) for n in numbers if n % 2 == 0)
    if task == "sum":
        return str(sum(numbers)), evens
    if task == "max":
        return str(max(numbers)), evens
    if task == "even":
        return str(sum(1 for n in numbers if n % 2 == 0)), evens
    return ", ".join(str(n) for n in sorted(numbers)), evens


def _wrong(task: str, answer: str, numbers: list[int]) -> str:
    if task == "sort":
        return ", ".join(str(n) for n in sorted(numbers, reverse=True))
    return str(int(answer) + 1)


def render(task: str, language: str, numbers: list[int], stated: str | None = None) -> tuple[str, str, str]:
    """(prompt, response, answer) of one task in one language; the response states `stated` (default: the answer)."""
    answer, evens = solve(task, numbers)
    answer = answer if stated is None else stated
    question, reasoning = TEMPLATES[task][language]
    nums = ", ".join(map(str, numbers))
    prompt = f"{question.format(nums=nums)} {INSTRUCTION[language]}"
    response = f"{reasoning.format(nums=nums, evens=evens, ans=answer)}\n{ANSWER_WORDS[language]}: {answer}"
    return prompt, response, answer


def translation_ok(original: str, translated: str, language: str) -> bool:
    """Every number of the original, in order, and the target language's answer word survive the translation."""
    return (re.findall(r"\d+", original) == re.findall(r"\d+", translated)
            and ANSWER_WORDS[language].lower() in translated.lower())


def make_queries(area: CrossLingualAreaConfig, seed: int,
                 generator: Generator | None = None) -> tuple[list[Query], Counter]:
    rng = random.Random(f"{seed}:cross_lingual")
    tasks = tuple(TEMPLATES)
    drafts, taken, dropped = [], set(), Counter()
    for index in range(area.procedural):
        task, language = tasks[index % len(tasks)], area.languages[(index // len(tasks)) % len(area.languages)]
        numbers = rng.sample(range(1, 60), rng.randint(4, 7))
        if not any(n % 2 == 0 for n in numbers):
            numbers[0] += 1
        original, _, answer = render(task, "en", numbers)
        prompt, correct, _ = render(task, language, numbers)
        if prompt in taken:
            dropped["duplicate prompt"] += 1
            continue
        taken.add(prompt)
        _, english_reply, _ = render(task, "en", numbers)
        wrong = render(task, language, numbers, _wrong(task, answer, numbers))[1]
        offline = (Candidate(correct, "correct"), Candidate(correct.replace("\n", "\n\n"), "correct"),
                   Candidate(wrong, "wrong_answer"), Candidate(english_reply, "english_reply"),
                   Candidate(f"{ANSWER_WORDS[language]}: {answer}", "bare_answer"))
        reference = {"type": "cross_lingual", "language": language, "answer": answer, "original": original}
        drafts.append(Query(CATEGORY, (user_message(prompt),), reference,
                            f"procedural:cross_lingual:{task}:{language}", offline, correct, prompt))
    if generator is None or generator.name == "procedural":
        return drafts, dropped
    return translate(drafts, generator, dropped)


def translate(drafts: list[Query], generator: Generator, dropped: Counter) -> tuple[list[Query], Counter]:
    """Prompts translated by the generator from each draft's English original; unfaithful translations dropped."""
    asks = []
    for draft in drafts:
        language = draft.reference["language"]
        ask = (f"Translate the following task from English into {LANGUAGE_NAMES[language]}. Keep every number "
               f"exactly as written, and write the answer line with the word '{ANSWER_WORDS[language]}'. Reply with "
               f"the translation only.\n\n{draft.reference['original']}")
        asks.append(Query(CATEGORY, (user_message(ask),), draft.reference, draft.source + ":translation"))
    out = []
    for draft, samples in zip(drafts, generator.generate(asks, 1), strict=True):
        text = samples[0].text.strip() if samples else ""
        if not translation_ok(draft.reference["original"], text, draft.reference["language"]):
            dropped["translation lost a number or the answer word"] += 1
            continue
        out.append(Query(CATEGORY, (user_message(text),), draft.reference, draft.source + ":generated", (), None,
                         text))
    return out, dropped
