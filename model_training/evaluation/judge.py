"""Reasoning-answer consistency (the paper's Fig. 3): a judge reads only the ``<think>`` text of
each prediction and names the class it points to; consistency is the share of samples where
that class equals the model's own final answer.

Judges:

- a local causal LM by Hub id or path (``transformers``; no remote code): it scores every
  option as the continuation of the judge prompt and picks the most probable one (log
  probability per byte of the option, as lm-evaluation-harness's ``acc_norm``), so it always
  names a class and is deterministic;
- ``keyword`` (ours, no model): the single class whose full name the reasoning contains, as
  the evaluator's fallback reads a reply without tags; None when it names none or several.
  Offline and deterministic, for the CPU miniatures, where no language model is at hand; a
  weaker judge than an LLM (it does not read paraphrases);
- an OpenAI-compatible endpoint (``http(s)://HOST/v1``, e.g. a vLLM server running
  gpt-oss-20b), asked through ``huggingface_hub.InferenceClient``; its reply is read like a
  model's (``<answer>`` tags, else the single class named). A key, if the server needs one,
  comes from ``JUDGE_API_KEY``.

The judge prompt is ``model_training/data/judge_prompt.txt`` (ours: the paper did not publish
its prompt). Samples without reasoning or without a valid answer count as inconsistent.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import torch

from common.hub_ids import is_hub_id

from ..answers import ANSWER_RE, fallback_class, match_class
from .generation import WEIGHT_FILES
from .options import EvaluationError

JUDGE_PROMPT_FILE = Path(__file__).parents[1] / "data" / "judge_prompt.txt"
JUDGE_FILE = "judge.jsonl"  # judge answers by sample id, for resuming
ENDPOINT_MAX_TOKENS = 1024  # room for a reasoning judge's own thinking before its answer
ENDPOINT_TIMEOUT_SECONDS = 30  # ours: the model list asked when the judge starts
ENDPOINT_PROBE_SECONDS = 10  # ours: the check before generation (one request, no retries)


def judge_prompt(reasoning: str, options: list[str], template: str | None = None) -> str:
    template = template if template is not None else JUDGE_PROMPT_FILE.read_text()
    return template.format(reasoning=reasoning.strip(), options="; ".join(options))


class LocalJudge:
    """A causal LM that picks the option it finds most probable after the prompt."""

    def __init__(self, model_id: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_id)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_id, dtype=torch.bfloat16 if device == "cuda" else torch.float32
        )
        self.model = self.model.to(device).eval()
        self.name = model_id

    def _prefix(self, prompt: str) -> list[int]:
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = prompt + "\n"
        return self.tokenizer(text + "<answer>", add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def choose(self, prompt: str, options: list[str]) -> str:
        prefix = self._prefix(prompt)
        continuations = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        longest = max(len(prefix) + len(c) for c in continuations)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(options), longest), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, cont in enumerate(continuations):
            row = prefix + cont
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        logits = self.model(
            input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)
        ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1).cpu()
        scores = []
        for i, (option, cont) in enumerate(zip(options, continuations, strict=True)):
            positions = range(len(prefix) - 1, len(prefix) - 1 + len(cont))
            total = sum(logprobs[i, p, t].item() for p, t in zip(positions, cont, strict=True))
            scores.append(total / max(1, len(option.encode())))
        return options[max(range(len(options)), key=scores.__getitem__)]


KEYWORD_JUDGE = "keyword"  # the --judge value of the model-free judge


class KeywordJudge:
    """Names the single class the reasoning spells out (no model, no prompt)."""

    name = KEYWORD_JUDGE

    def choose_from_reasoning(self, reasoning: str, options: list[str]) -> str | None:
        return fallback_class(reasoning, options)


class EndpointJudge:
    """An OpenAI-compatible chat endpoint (vLLM, TGI, ...), greedy."""

    def __init__(self, base_url: str, model: str | None = None):
        from huggingface_hub import InferenceClient

        self.base_url = base_url.rstrip("/")
        self.client = InferenceClient(
            base_url=self.base_url, api_key=os.environ.get("JUDGE_API_KEY")
        )
        self.model = model or self._served_model()
        self.name = f"{self.model} @ {self.base_url}"

    def _served_model(self) -> str:
        """The first model the server lists at ``/models`` (OpenAI API)."""
        served = served_models(self.base_url)
        if not served:
            raise ValueError(f"{self.base_url}/models lists no model; pass --judge-model NAME")
        return served[0]

    def choose(self, prompt: str, options: list[str]) -> str | None:
        reply = self.client.chat_completion(
            [{"role": "user", "content": prompt}],
            model=self.model,
            temperature=0.0,
            max_tokens=ENDPOINT_MAX_TOKENS,
        )
        text = reply.choices[0].message.content or ""
        answers = ANSWER_RE.findall(text)
        if answers:
            return match_class(answers[-1], options)
        return fallback_class(text, options)


def served_models(base_url: str, timeout: float = ENDPOINT_TIMEOUT_SECONDS) -> list[str]:
    """The model ids an OpenAI-compatible server lists at ``BASE/models`` (with
    ``JUDGE_API_KEY`` as its bearer key, if set)."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/models")
    key = os.environ.get("JUDGE_API_KEY")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (user's URL)
        listed = json.load(response)
    served = listed.get("data") if isinstance(listed, dict) else None
    return [str(m["id"]) for m in served or [] if isinstance(m, dict) and "id" in m]


def _judge_error(judge: str, why: str) -> EvaluationError:
    return EvaluationError(f"--judge {judge}: {why}; nothing was generated")


def check_endpoint(url: str, judge_model: str | None = None) -> None:
    """Refuse a judge endpoint that does not answer ``/models`` within
    ``ENDPOINT_PROBE_SECONDS`` (one request), refuses the key, serves no model, or does not
    serve ``judge_model``."""
    try:
        served = served_models(url, ENDPOINT_PROBE_SECONDS)
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            raise _judge_error(
                url, f"the server refused the key (HTTP {err.code}): set JUDGE_API_KEY"
            ) from None
        if judge_model is not None:  # it answers, without the OpenAI model list
            return
        raise _judge_error(
            url,
            f"{url.rstrip('/')}/models answered HTTP {err.code}: give the "
            "OpenAI-compatible base URL (http://HOST:PORT/v1) or pass "
            "--judge-model NAME",
        ) from None
    except (OSError, ValueError) as err:  # refused, timed out, not JSON, a malformed URL
        reason = getattr(err, "reason", None) or err
        raise _judge_error(
            url,
            f"the endpoint does not answer ({reason}): start the judge "
            "server, or give its URL (http://HOST:PORT/v1)",
        ) from None
    if judge_model is None and not served:
        raise _judge_error(url, "the server lists no model at /models: pass --judge-model NAME")
    if judge_model is not None and served and judge_model not in served:
        raise _judge_error(
            url, f"it does not serve --judge-model {judge_model} (it serves {', '.join(served)})"
        )


def check_local_judge(judge: str) -> None:
    """Refuse a local or Hub judge that is not a causal LM with a tokenizer (config and
    tokenizer read; no weights): a missing folder, a folder without weights, a model of
    another kind."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig, AutoTokenizer

    path = Path(judge)
    if not path.exists() and not is_hub_id(judge):
        raise _judge_error(
            judge,
            "no such folder, and not a Hub model id: give a causal LM's "
            "folder or Hub id, an http(s)://.../v1 endpoint, or keyword",
        )
    if path.exists() and not (path / "config.json").is_file():
        raise _judge_error(
            judge, "not a model folder (no config.json): give the folder that holds config.json"
        )
    try:
        config = AutoConfig.from_pretrained(judge)
        AutoTokenizer.from_pretrained(judge)
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _judge_error(
            judge, f"its config or tokenizer could not be read ({first[:200]})"
        ) from None
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise _judge_error(
            judge,
            f"a {config.model_type!r} model, not a causal language "
            "model: give one such as Qwen/Qwen2.5-7B-Instruct",
        )
    if path.is_dir() and not any((path / name).is_file() for name in WEIGHT_FILES):
        raise _judge_error(judge, "the folder holds no weights (model.safetensors)")


def check_judge(judge: str, judge_model: str | None = None) -> None:
    """Refuse a judge that cannot run, before any reply is generated (the judge runs last):
    ``keyword`` always runs; an endpoint must answer (``check_endpoint``); a model must be a
    readable causal LM (``check_local_judge``)."""
    if judge == KEYWORD_JUDGE:
        return
    if judge.startswith(("http://", "https://")):
        check_endpoint(judge, judge_model)
    else:
        check_local_judge(judge)


def load_judge(
    judge: str, judge_model: str | None = None
) -> LocalJudge | EndpointJudge | KeywordJudge:
    if judge == KEYWORD_JUDGE:
        return KeywordJudge()
    if judge.startswith(("http://", "https://")):
        return EndpointJudge(judge, judge_model)
    return LocalJudge(judge)


def judge_consistency(
    predictions: list[dict],
    options: dict[str, list[str]],
    judge,
    output_dir: Path,
    template: str | None = None,
) -> dict:
    """Ask the judge about every prediction with reasoning; return the consistency metrics and
    set ``judge_answer`` on each prediction row. Judge answers are kept in ``judge.jsonl``
    (with the judge's name and prompt) so that a re-run asks only for the missing ones."""
    template = template if template is not None else JUDGE_PROMPT_FILE.read_text()
    progress = output_dir / JUDGE_FILE
    done: dict[str, str | None] = {}
    if progress.is_file():
        for line in progress.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("judge") == judge.name and row.get("prompt") == template:
                done[row["id"]] = row["judge_answer"]
    consistent = judged = 0
    with progress.open("a") as sink:
        for row in predictions:
            reasoning = (row.get("think") or "").strip()
            if not reasoning:
                row["judge_answer"] = None
                continue
            if row["id"] not in done:
                if isinstance(judge, KeywordJudge):
                    done[row["id"]] = judge.choose_from_reasoning(reasoning, options[row["id"]])
                else:
                    prompt = judge_prompt(reasoning, options[row["id"]], template)
                    done[row["id"]] = judge.choose(prompt, options[row["id"]])
                record = {"id": row["id"], "judge": judge.name, "prompt": template}
                sink.write(json.dumps({**record, "judge_answer": done[row["id"]]}) + "\n")
                sink.flush()
            row["judge_answer"] = done[row["id"]]
            judged += 1
            consistent += row["answer"] is not None and row["judge_answer"] == row["answer"]
    n = len(predictions)
    return {
        "judge": judge.name,
        "judge_prompt": template,
        "consistency": consistent / n if n else 0.0,
        "consistency_judged": judged,
    }
