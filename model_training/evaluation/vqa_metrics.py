"""General-VQA metrics for the retention check (the paper's Table 2: ChartQA, TextVQA).

Pure functions on strings; every function accepts any text and never raises on it.

- ChartQA: *relaxed accuracy* (Methani et al. 2020, "PlotQA", as used by the ChartQA paper,
  Masry et al. 2022, sec. 5.1: a numeric answer is right within 5 % of the gold one, any other
  answer needs an exact match). The reference code is Pix2Struct's ``relaxed_correctness``
  (google-research/pix2struct ``pix2struct/metrics.py``), which lmms-eval's ``chartqa`` task
  copies. See :func:`relaxed_correctness` for the three places where ours is more careful.
- TextVQA: *VQA accuracy* (Antol et al. 2015; the official VQA evaluation script
  ``vqaEval.py``), with the answer processing of TextVQA's EvalAI evaluator (MMF's
  ``EvalAIAnswerProcessor``, which lmms-eval's ``textvqa`` task uses). See :func:`vqa_accuracy`.
- :func:`weighted_average`: the sample-weighted mean over benchmarks that the paper reports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from itertools import combinations

# ---------------------------------------------------------------------------------------------
# ChartQA: relaxed accuracy
# ---------------------------------------------------------------------------------------------

CHARTQA_TOLERANCE = 0.05  # "within 5% of the gold answer" (ChartQA paper, sec. 5.1)

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")  # 1,000 / 12,345.6
_CURRENCY = "$€£¥"
_EDGE_PUNCTUATION = " \t\r\n.,;:!?\"'`*()[]{}"
_SPACES = re.compile(r"\s+")


def parse_number(text: str) -> tuple[float, bool] | None:
    """``(value, is_percent)`` if ``text`` is one number, else None.

    Surrounding spaces, quotes, brackets and punctuation are ignored, as is a leading currency
    sign; commas are accepted only as thousands separators ("1,000", not "1,0"); a trailing "%"
    is reported, not applied. Infinities and NaN are not numbers here.
    """
    if not isinstance(text, str):
        return None
    # a leading period may be a decimal point (".5"), a trailing one is punctuation ("12.")
    core = text.strip().rstrip(_EDGE_PUNCTUATION).lstrip(_EDGE_PUNCTUATION.replace(".", ""))
    core = core.lstrip(_CURRENCY).strip()
    is_percent = core.endswith("%")
    if is_percent:
        core = core[:-1].rstrip()
    if _THOUSANDS.fullmatch(core):
        core = core.replace(",", "")
    if not _NUMBER.fullmatch(core):
        return None
    try:
        value = float(core)
    except (ValueError, OverflowError):
        return None
    return (value, is_percent) if math.isfinite(value) else None


def normalise_text_answer(text: str) -> str:
    """Lower case, surrounding spaces removed, inner spaces collapsed, no trailing period."""
    if not isinstance(text, str):
        return ""
    return _SPACES.sub(" ", text).strip().lower().rstrip(".").rstrip()


def _within(prediction: float, target: float, tolerance: float) -> bool:
    if target == 0:
        return prediction == 0
    return abs(prediction - target) / abs(target) <= tolerance


def relaxed_correctness(prediction: str, target: str, tolerance: float = CHARTQA_TOLERANCE) -> bool:
    """ChartQA's relaxed correctness of one prediction against one gold answer.

    If both parse as numbers (:func:`parse_number`): correct when
    ``|prediction - target| / |target| <= tolerance``; otherwise correct when both are equal after
    :func:`normalise_text_answer`.

    Where ours differs from Pix2Struct's reference (``float(text)`` after removing a trailing "%",
    then ``prediction.lower() == target.lower()``):

    - "1,000", "$1,000", " 12. " parse as numbers (the reference falls back to string equality
      and calls "1,000" vs "1000" wrong);
    - a percent sign on one side only: the reference divides "45%" by 100 and so calls "45%"
      wrong against the gold "45" (ChartQA's gold answers carry no "%"); we compare the plain
      values first and, failing that, the value with the percent applied (as mistral-evals'
      ChartQA scorer does), so "45%" == "45" and "45%" == "0.45";
    - a gold 0: the reference's ``if target_float`` is false for 0 and it compares strings
      ("0.0" vs "0" wrong); we require the prediction to equal 0 numerically.
    """
    prediction = prediction if isinstance(prediction, str) else ""
    target = target if isinstance(target, str) else ""
    predicted, gold = parse_number(prediction), parse_number(target)
    if predicted is not None and gold is not None:
        (p, p_percent), (t, t_percent) = predicted, gold
        if _within(p, t, tolerance):
            return True
        if p_percent or t_percent:
            p_decimal = p / 100 if p_percent else p
            t_decimal = t / 100 if t_percent else t
            return _within(p_decimal, t, tolerance) or _within(p, t_decimal, tolerance)
        return False
    return normalise_text_answer(prediction) == normalise_text_answer(target)


def chartqa_accuracy(
    preds: Sequence[str],
    targets: Sequence[str | Sequence[str]],
    tolerance: float = CHARTQA_TOLERANCE,
) -> float:
    """Mean relaxed correctness. A target may be one string or a list of accepted strings (the
    ``label`` column of ``HuggingFaceM4/ChartQA`` is a list holding one string); a prediction
    is correct if it matches any of them. Empty input gives 0.0."""
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
    if not preds:
        return 0.0
    hits = sum(
        any(relaxed_correctness(p, t, tolerance) for t in _as_list(target))
        for p, target in zip(preds, targets, strict=True)
    )
    return hits / len(preds)


def _as_list(target: str | Sequence[str]) -> list[str]:
    return [target] if isinstance(target, str) else list(target)


# ---------------------------------------------------------------------------------------------
# TextVQA: VQA accuracy
# ---------------------------------------------------------------------------------------------

# The tables and rules of the official VQA evaluation script (vqaEval.py, VQA v2), kept as they
# are there (including the three capitalised keys that never match lower-cased text).
CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<")
PUNCTUATION += ("@", "`", ",", "?", "!")
# The official pattern, as written: "(?!<=\d)" is a look-AHEAD (a typo for the look-behind
# "(?<!\d)"), so in effect a period is removed unless a digit follows it ("3.5" stays, "3." and
# "a.m" lose it).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")  # a comma between digits: "1,000"
# vqaEval.py calls ``periodStrip.sub("", text, re.UNICODE)``: the flag lands in ``count``, so at
# most re.UNICODE (= 32) periods go. Kept, so that our numbers are the official ones.
_OFFICIAL_PERIOD_COUNT = int(re.UNICODE)
VQA_HUMANS_FOR_FULL_CREDIT = 3  # min(#humans that gave the answer / 3, 1)


def process_punctuation(text: str) -> str:
    """vqaEval.py's ``processPunctuation``.

    Each punctuation mark is deleted if it touches a space anywhere in the text, or if the text
    has a comma between two digits; otherwise it becomes a space. Then periods not followed by a
    digit are deleted.
    """
    out = text
    digit_comma = _COMMA_STRIP.search(text) is not None
    for mark in PUNCTUATION:
        if mark + " " in text or " " + mark in text or digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """vqaEval.py's ``processDigitArticle``: lower case, number words to digits ("none" -> "0"),
    articles a / an / the removed, contractions restored ("dont" -> "don't")."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalise_vqa_answer(text: str) -> str:
    """One answer as TextVQA's EvalAI evaluator processes it (MMF ``EvalAIAnswerProcessor``,
    copied by lmms-eval): lower case, commas and "?" removed, "'s" split off as its own word,
    newlines and tabs to spaces, then the official :func:`process_punctuation` and
    :func:`process_digit_article`."""
    if not isinstance(text, str):
        return ""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """The official VQA accuracy of one prediction against the human answers (10 in TextVQA).

    ``min(#humans who gave the prediction / 3, 1)``, averaged, as vqaEval.py does, over the
    ``len(answers)`` subsets that leave one human out (for 10 answers: the 10-choose-9 subsets).
    With 10 answers of which k equal the prediction this is 0, 0.3, 0.6, 0.9, 1.0 for
    k = 0, 1, 2, 3, >= 4. The prediction and every human answer go through
    :func:`normalise_vqa_answer` (TextVQA's evaluator and lmms-eval normalise every answer;
    the VQA v2 script normalises the human answers only when they disagree, which makes no
    difference for its already normalised annotations). No answers gives 0.0.
    """
    if not answers:
        return 0.0
    predicted = normalise_vqa_answer(prediction)
    humans = [normalise_vqa_answer(answer) for answer in answers]
    subsets = list(combinations(range(len(humans)), len(humans) - 1))
    scores = [
        min(
            sum(humans[i] == predicted for i in subset) / VQA_HUMANS_FOR_FULL_CREDIT,
            1.0,
        )
        for subset in subsets
    ]
    return sum(scores) / len(scores)


def textvqa_accuracy(preds: Sequence[str], answers_lists: Sequence[Sequence[str]]) -> float:
    """Mean :func:`vqa_accuracy` over questions. Empty input gives 0.0."""
    if len(preds) != len(answers_lists):
        raise ValueError(f"{len(preds)} predictions for {len(answers_lists)} answer lists")
    if not preds:
        return 0.0
    scores = [vqa_accuracy(p, a) for p, a in zip(preds, answers_lists, strict=True)]
    return sum(scores) / len(scores)


# ---------------------------------------------------------------------------------------------
# Across benchmarks
# ---------------------------------------------------------------------------------------------


def weighted_average(scores: Mapping[str, tuple[float, int]]) -> float:
    """Mean of the benchmark scores weighted by their sample counts: ``{name: (score, n)}``
    -> ``sum(score * n) / sum(n)`` (the paper's "weighted average ... by sample counts").
    Benchmarks with n = 0 carry no weight; no samples at all gives 0.0."""
    total = sum(n for _, n in scores.values())
    if total <= 0:
        return 0.0
    return sum(score * n for score, n in scores.values()) / total
