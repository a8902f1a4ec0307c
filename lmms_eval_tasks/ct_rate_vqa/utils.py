"""lmms-eval hooks for CT-RATE-VQA: prompt, visual, target, per-reply scoring, aggregation.

Self-contained (standard library only) so that this folder works when copied alone into
``lmms_eval/tasks/``. The reply reading mirrors ``model_training/answers.py`` and
``model_training/evaluation/tasks/classification.py`` of medreason-r1 (keep them in step): the class
inside the last ``<answer>...</answer>`` (normalised: case, spaces, surrounding punctuation); a
reply with no answer tags at all is scored by a fallback, the single class whose full name
appears in it.
One addition for lmms-eval: a last ``<answer>`` left open counts as an answer block, because
the task asks to stop at ``</answer>`` and the models that honour stop strings remove it from the
reply (lmms-eval's ``huggingface`` chat class, like our evaluator, ignores them).
The prompts mirror ``model_training/prompts.py``: chat models get the conversation our
evaluator sends (``doc_to_messages``: system prompt, then the image and the question).

Grounding (``ct_rate_vqa_grounding``, MedReasoner's task, arXiv 2508.08177): the hooks named
``grounding_*`` mirror ``model_training/grounding.py`` and
``model_training/evaluation/tasks/grounding.py`` ``score_reply`` (keep them in step): the reply's
last ``<answer>`` JSON (single quotes read as double) holds ``bbox`` and ``points_1`` /
``points_2`` in the model-input frame (the image as Qwen2-VL's ``smart_resize`` resized it,
computed here from ``GROUNDING_MIN_PIXELS`` / ``GROUNDING_MAX_PIXELS``); they go to the stored
image's frame and are scored against the row's ``bbox`` (box IoU) and ``points`` (our
point-Dice, a true circle Dice, and MedReasoner's pDice, 2 inter / union of the same circles:
the one comparable with the paper's 26.55). The answer parsing is ours (the last block, tags in
any case): lmms-eval passes no task options to process_results.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict

# mirrors model_training/prompts.py SYSTEM_PROMPTS (byte for byte: keep them in step). Chat
# models get the mode's prompt as the system turn (doc_to_messages), as our evaluator sends it.
SYSTEM_PROMPTS = {
    "think": (
        "You are a radiologist reading a chest CT slice. First reason about the image inside "
        "<think> </think> tags, then give your final answer inside <answer> </answer> tags. "
        "The answer must be exactly one of the class names offered in the question."
    ),
    "no-think": (
        "You are a radiologist reading a chest CT slice. Give your final answer inside "
        "<answer> </answer> tags, with no explanation. The answer must be exactly one of the "
        "class names offered in the question."
    ),
}
DEFAULT_MODE = "think"  # the task YAMLs choose theirs with lmms_eval_specific_kwargs prompt_mode

# mirrors model_training/answers.py
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
# ours (lmms-eval): a last <answer> left open, the reply having been cut at "</answer>"
OPEN_ANSWER_RE = re.compile(r"<answer>((?:(?!<answer>).)*)$", re.DOTALL | re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"[^a-z0-9]+")  # everything but letters and digits separates words
_TRIM = " \t\r\n.,;:!?\"'`*()[]{}"


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation or quotes (answers.normalise)."""
    return _SPACES.sub(" ", text).strip(_TRIM).lower()


def match_class(text: str | None, classes: list[str]) -> str | None:
    """The class whose name ``text`` is, after normalisation, else None (answers.match_class)."""
    if not isinstance(text, str):
        return None
    wanted = normalise(text)
    for name in classes:
        if normalise(name) == wanted:
            return name
    return None


def fallback_class(reply: object, classes: list[str]) -> str | None:
    """The single class whose full name appears in the reply (lower case, on word boundaries);
    None if no class or several are named (answers.fallback_class)."""
    if not isinstance(reply, str):
        return None
    text = f" {_WORDS.sub(' ', reply.lower())} "
    found = [c for c in classes if f" {_WORDS.sub(' ', c.lower()).strip()} " in text]
    return found[0] if len(found) == 1 else None


def answer_text(reply: str) -> str | None:
    """The text of the last ``<answer>`` block, closed or (at the very end) left open."""
    last = OPEN_ANSWER_RE.search(reply)  # from the last "<answer>" to the end
    if last and "</answer>" not in last.group(1).lower():
        return last.group(1)  # left open
    blocks = ANSWER_RE.findall(reply)
    return blocks[-1] if blocks else None


def parse_answer(reply: object, classes: list[str]) -> tuple[str | None, str | None]:
    """``(class or None, how)``, how being "tags", "fallback" or None (the evaluator's
    ``tasks.classification.read_reply``)."""
    text = reply if isinstance(reply, str) else ""
    inside = answer_text(text)
    if inside is not None:
        answer = match_class(inside, classes)
        return answer, "tags" if answer is not None else None
    answer = fallback_class(text, classes)
    return answer, "fallback" if answer is not None else None


# -- lmms-eval hooks ---------------------------------------------------------------------------


def prompt_mode(lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The prompt mode the task asks for (``prompt_mode`` in lmms_eval_specific_kwargs)."""
    mode = (lmms_eval_specific_kwargs or {}).get("prompt_mode", DEFAULT_MODE)
    if mode not in SYSTEM_PROMPTS:
        raise ValueError(
            f"ct_rate_vqa task: prompt_mode {mode!r} is not one of {', '.join(SYSTEM_PROMPTS)}; "
            "fix lmms_eval_specific_kwargs in the task YAML"
        )
    return mode


def doc_to_visual(doc: dict) -> list:
    return [doc["image"].convert("RGB")]


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    """The conversation chat models get, as our evaluator builds it
    (model_training/prompts.py ``prompt_messages``): the mode's system prompt, then the user
    turn with the image and the question (which names the options)."""
    system = SYSTEM_PROMPTS[prompt_mode(lmms_eval_specific_kwargs)]
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [
                {"type": "image", "url": doc_to_visual(doc)[0]},
                {"type": "text", "text": doc["question"]},
            ],
        },
    ]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """For models without chat support (no system turn): the question, then the mode's
    system prompt as the instruction."""
    return f"{doc['question']}\n{SYSTEM_PROMPTS[prompt_mode(lmms_eval_specific_kwargs)]}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def process_results(doc: dict, results: list[str]) -> dict:
    """Per-reply values of each metric: ``accuracy`` and ``macro_accuracy`` get the same record
    {id, gold, prediction, parsed_by}; ``validity_rate`` is 1.0 when the answer tags name a
    class, ``fallback_rate`` 1.0 when the class came from the fallback (as evaluate.py)."""
    reply = results[0] if results else ""
    prediction, how = parse_answer(reply, list(doc["options"]))
    record = {"id": doc.get("id"), "gold": doc["answer"], "prediction": prediction}
    record["parsed_by"] = how
    return {
        "accuracy": record,
        "macro_accuracy": record,
        "validity_rate": float(how == "tags"),
        "fallback_rate": float(how == "fallback"),
    }


def aggregate_accuracy(items: list[dict]) -> float:
    """Micro accuracy: the share of replies whose class is the gold one."""
    if not items:
        return 0.0
    return sum(item["prediction"] == item["gold"] for item in items) / len(items)


def aggregate_macro_accuracy(items: list[dict]) -> float:
    """Macro accuracy: the mean over gold classes (those with at least one question) of each
    class's accuracy."""
    support: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    for item in items:
        support[item["gold"]] += 1
        hits[item["gold"]] += item["prediction"] == item["gold"]
    if not support:
        return 0.0
    return sum(hits[c] / support[c] for c in support) / len(support)


# -- grounding (ct_rate_vqa_grounding) -----------------------------------------------------------

# mirrors model_training/prompts.py GROUNDING_SYSTEM_PROMPTS (byte for byte: keep them in step)
GROUNDING_SYSTEM_PROMPTS = {
    "think": (
        "You are a radiologist reading a chest CT slice. The question describes a finding; "
        "locate it on the image. First reason about the image inside <think> </think> tags, "
        "then give your final answer inside <answer> </answer> tags as JSON: "
        '{"bbox": [x0, y0, x1, y1], "points_1": [x, y], "points_2": [x, y]}, the bounding box '
        "of the finding and two points inside it, in the image's pixel coordinates."
    ),
    "no-think": (
        "You are a radiologist reading a chest CT slice. The question describes a finding; "
        "locate it on the image. Give your final answer inside <answer> </answer> tags, with no "
        'explanation, as JSON: {"bbox": [x0, y0, x1, y1], "points_1": [x, y], "points_2": '
        "[x, y]}, the bounding box of the finding and two points inside it, in the image's "
        "pixel coordinates."
    ),
}
# The model-input frame: Qwen2-VL / Qwen2.5-VL resize an image to sides that are multiples of
# FACTOR with a pixel count within [min_pixels, max_pixels] (smart_resize). These bounds MUST
# equal the evaluated model's processor bounds (the min_pixels / max_pixels model args); for
# another processor, edit these two lines (lmms-eval 0.7.3 hands lmms_eval_specific_kwargs to
# the prompt hooks only, never to process_results, so a task YAML cannot set them).
GROUNDING_MIN_PIXELS = 504 * 504  # ours: the 7B recipes' image_min_pixels (254016)
GROUNDING_MAX_PIXELS = 512 * 512  # ours: the 7B recipes' image_max_pixels (262144)
FACTOR = 28  # Qwen2-VL: patch 14 x spatial merge 2
MAX_ASPECT_RATIO = 200  # Qwen2-VL's smart_resize refuses more elongated images
IOU_HIT = 0.5  # mirrors tasks.grounding.IOU_HIT (ours: the common "IoU >= 0.5" hit)
ANSWER_KEYS = ("bbox", "points_1", "points_2")  # MedReasoner's answer keys (grounding.py)
PDICE_UNION_EPS = 1e-5  # mirrors grounding.PDICE_UNION_EPS (MedReasoner's compute_pdice)


def smart_resize(
    height: int,
    width: int,
    factor: int = FACTOR,
    min_pixels: int = GROUNDING_MIN_PIXELS,
    max_pixels: int = GROUNDING_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) of the model input for an image of ``height`` x ``width`` (Qwen2-VL's
    ``smart_resize``: sides multiples of ``factor``, pixel count within the bounds, the aspect
    ratio kept as closely as possible)."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, got "
            f"{max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def input_size(
    image_size: tuple[int, int],
    min_pixels: int = GROUNDING_MIN_PIXELS,
    max_pixels: int = GROUNDING_MAX_PIXELS,
) -> tuple[int, int]:
    """(width, height) of the model input for a stored image of ``image_size`` (width, height)."""
    height, width = smart_resize(image_size[1], image_size[0], FACTOR, min_pixels, max_pixels)
    return width, height


def _scale(image_size: tuple[int, int], model_size: tuple[int, int]) -> tuple[float, float]:
    """(x, y) factors from the image frame to the model-input frame (grounding.Frame.scale)."""
    return model_size[0] / image_size[0], model_size[1] / image_size[1]


def box_to_image(
    box: list[float], image_size: tuple[int, int], model_size: tuple[int, int]
) -> list[float]:
    """A model-input box in the image frame (grounding.Frame.box_to_image)."""
    sx, sy = _scale(image_size, model_size)
    return [box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy]


def point_to_image(
    point: list[float], image_size: tuple[int, int], model_size: tuple[int, int]
) -> list[int]:
    """The image pixel under a model-input pixel's centre (grounding.Frame.point_to_image)."""
    sx, sy = _scale(image_size, model_size)
    return [
        min(math.floor((point[0] + 0.5) / sx), image_size[0] - 1),
        min(math.floor((point[1] + 0.5) / sy), image_size[1] - 1),
    ]


def _number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


def valid_box(value: object) -> list[float] | None:
    """Four finite numbers with x0 < x1 and y0 < y1, else None (grounding.valid_box)."""
    if not isinstance(value, list) or len(value) != 4 or not all(_number(v) for v in value):
        return None
    box = [float(v) for v in value]
    return box if box[0] < box[2] and box[1] < box[3] else None


def valid_point(value: object) -> list[float] | None:
    """Two finite numbers, else None (grounding.valid_point)."""
    if not isinstance(value, list) or len(value) != 2 or not all(_number(v) for v in value):
        return None
    return [float(v) for v in value]


def parse_grounding(reply: object) -> tuple[str, list[float] | None, list[list[float]] | None]:
    """(status, box, points) of a reply in the model-input frame (grounding.parse_grounding):
    status "no_answer" (no ``<answer>...</answer>``), "bad_json" (the last block is not a JSON
    object), "missing_keys", or "ok" with the valid box and both valid points (None if not)."""
    if not isinstance(reply, str):
        return "no_answer", None, None
    blocks = ANSWER_RE.findall(reply)
    if not blocks:
        return "no_answer", None, None
    try:
        value = json.loads(blocks[-1].strip().replace("'", '"'))
    except (ValueError, RecursionError):
        return "bad_json", None, None
    if not isinstance(value, dict):
        return "bad_json", None, None
    if not all(key in value for key in ANSWER_KEYS):
        return "missing_keys", None, None
    box = valid_box(value["bbox"])
    p1, p2 = valid_point(value["points_1"]), valid_point(value["points_2"])
    return "ok", box, [p1, p2] if p1 is not None and p2 is not None else None


def box_area(box: list[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two boxes (end-exclusive corners; grounding.box_iou)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def _circle(points: list[list[float]]) -> tuple[float, float, float]:
    """(cx, cy, r) of the circle whose diameter is the segment between two points."""
    (x1, y1), (x2, y2) = points
    return (x1 + x2) / 2, (y1 + y2) / 2, math.hypot(x2 - x1, y2 - y1) / 2


def _lens_area(r1: float, r2: float, d: float) -> float:
    """Area of the intersection of two circles with radii r1, r2 and centre distance d."""
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    a1 = r1 * r1 * math.acos(max(-1.0, min(1.0, (d * d + r1 * r1 - r2 * r2) / (2 * d * r1))))
    a2 = r2 * r2 * math.acos(max(-1.0, min(1.0, (d * d + r2 * r2 - r1 * r1) / (2 * d * r2))))
    k = (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)
    return a1 + a2 - 0.5 * math.sqrt(max(0.0, k))


def _circles(
    predicted: list[list[float]], true: list[list[float]]
) -> tuple[float, float, float] | None:
    """(intersection, area 1, area 2) of the two point pairs' circles; None when either is
    degenerate (grounding._circles)."""
    x1, y1, r1 = _circle(predicted)
    x2, y2, r2 = _circle(true)
    if r1 <= 0 or r2 <= 0:
        return None
    inter = _lens_area(r1, r2, math.hypot(x2 - x1, y2 - y1))
    return inter, math.pi * r1 * r1, math.pi * r2 * r2


def circle_dice(predicted: list[list[float]], true: list[list[float]]) -> float:
    """Our point-Dice (grounding.circle_dice): each point pair is the diameter of a circle; the
    true Dice 2 |A n B| / (|A| + |B|) of the predicted and the true circle (max 1; 0 for a
    degenerate circle). Not MedReasoner's pDice: see ``medreasoner_pdice``."""
    circles = _circles(predicted, true)
    if circles is None:
        return 0.0
    inter, a1, a2 = circles
    return 2 * inter / (a1 + a2)


def medreasoner_pdice(predicted: list[list[float]], true: list[list[float]]) -> float:
    """MedReasoner's pDice (grounding.medreasoner_pdice; MedReasoner's eval/utils.py
    compute_pdice): 2 |A n B| / (|A u B| + 1e-5) of the same circles, twice their IoU (a
    perfect answer scores 2.0; 0 for a degenerate circle)."""
    circles = _circles(predicted, true)
    if circles is None:
        return 0.0
    inter, a1, a2 = circles
    return 2 * inter / (a1 + a2 - inter + PDICE_UNION_EPS)


def score_grounding(
    reply: object,
    bbox: list[float],
    points: list[list[float]],
    image_size: tuple[int, int],
    model_size: tuple[int, int],
) -> dict:
    """One reply scored as tasks.grounding.score_reply does: the prediction (model-input frame)
    taken to the image frame, then IoU with ``bbox`` (0 without a valid box), our point-Dice
    and MedReasoner's pDice with ``points`` (0 without two valid points)."""
    status, box_model, points_model = parse_grounding(reply)
    box = box_to_image(box_model, image_size, model_size) if box_model is not None else None
    predicted = (
        [point_to_image(p, image_size, model_size) for p in points_model]
        if points_model is not None
        else None
    )
    iou = box_iou(box, list(bbox)) if box is not None else 0.0
    true_points = [list(p) for p in points]
    dice = circle_dice(predicted, true_points) if predicted is not None else 0.0
    pdice = medreasoner_pdice(predicted, true_points) if predicted is not None else 0.0
    return {"status": status, "box": box, "points": predicted, "iou": iou, "point_dice": dice,
            "medreasoner_pdice": pdice}  # fmt: skip


def grounding_doc_to_messages(
    doc: dict, lmms_eval_specific_kwargs: dict | None = None
) -> list[dict]:
    """The grounding conversation our evaluator sends (prompts.prompt_messages of a grounding
    row): the mode's grounding system prompt, then the image and the row's ``query``."""
    system = GROUNDING_SYSTEM_PROMPTS[prompt_mode(lmms_eval_specific_kwargs)]
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [
                {"type": "image", "url": doc_to_visual(doc)[0]},
                {"type": "text", "text": doc["query"]},
            ],
        },
    ]


def grounding_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """For models without chat support: the query, then the mode's grounding instruction."""
    return f"{doc['query']}\n{GROUNDING_SYSTEM_PROMPTS[prompt_mode(lmms_eval_specific_kwargs)]}"


def grounding_doc_to_target(doc: dict) -> str:
    """The true box and points, in the stored image's frame (for the logged samples)."""
    return json.dumps({"bbox": list(doc["bbox"]), "points": [list(p) for p in doc["points"]]})


def grounding_process_results(doc: dict, results: list[str]) -> dict:
    """Per-reply values: ``iou`` (a record {id, status, box, points, iou}: box and points in
    the image frame), ``iou_50`` (1.0 when IoU >= IOU_HIT), ``point_dice`` (ours, a true Dice)
    and ``medreasoner_pdice`` (MedReasoner's 2 inter / union)."""
    reply = results[0] if results else ""
    size = doc["image"].size
    model_size = input_size(size, GROUNDING_MIN_PIXELS, GROUNDING_MAX_PIXELS)
    scored = score_grounding(reply, doc["bbox"], doc["points"], size, model_size)
    return {
        "iou": {"id": doc.get("id"), **scored},
        "iou_50": float(scored["iou"] >= IOU_HIT),
        "point_dice": scored["point_dice"],
        "medreasoner_pdice": scored["medreasoner_pdice"],
    }


def model_arg_bounds(args: object) -> dict[str, int]:
    """The min_pixels / max_pixels in lmms-eval's ``--model_args`` (a "k=v,k=v" string or a
    dict), those given."""
    model_args = getattr(args, "model_args", None) or {}
    if isinstance(model_args, str):
        pairs = (item.split("=", 1) for item in model_args.split(",") if "=" in item)
        model_args = {key.strip(): value.strip() for key, value in pairs}
    return {k: int(model_args[k]) for k in ("min_pixels", "max_pixels") if k in model_args}


def aggregate_iou(items: list[dict], args: object = None) -> float:
    """Mean box IoU (a reply without a valid box counts 0). Refuses model args whose
    min_pixels / max_pixels differ from the bounds the scores were computed with."""
    bounds = {"min_pixels": GROUNDING_MIN_PIXELS, "max_pixels": GROUNDING_MAX_PIXELS}
    for name, value in model_arg_bounds(args).items():
        if value != bounds[name]:
            raise ValueError(
                f"ct_rate_vqa_grounding: the model args set {name}={value} but the task scored "
                f"with {bounds[name]}: set GROUNDING_{name.upper()} in the task folder's "
                "utils.py to the model's bounds (or pass the task's)"
            )
    return sum(item["iou"] for item in items) / len(items) if items else 0.0
