"""Reasoning-answer consistency: a tiny local judge (a real Qwen2 causal LM built offline), an
OpenAI-compatible endpoint judge on 127.0.0.1, and the evaluator's --judge end to end."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from model_training.evaluation.evaluate import EvaluateArguments, evaluate
from model_training.evaluation.judge import (
    JUDGE_PROMPT_FILE,
    EndpointJudge,
    LocalJudge,
    judge_consistency,
    judge_prompt,
    load_judge,
)
from model_training.tiny_model import CLASS_NAMES, build_tiny_model, train_tokenizer

OPTIONS = list(CLASS_NAMES)


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory) -> Path:
    """A tiny random Qwen2 causal LM with the tiny tokenizer (and its chat template)."""
    out = tmp_path_factory.mktemp("judge") / "tiny-judge"
    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_judge_prompt_is_the_file_with_reasoning_and_options():
    template = JUDGE_PROMPT_FILE.read_text()
    prompt = judge_prompt("  low attenuation without walls  ", OPTIONS)
    assert "low attenuation without walls" in prompt and "; ".join(OPTIONS) in prompt
    assert prompt == template.format(
        reasoning="low attenuation without walls", options="; ".join(OPTIONS)
    )


def test_local_judge_picks_the_most_probable_option(tiny_judge):
    judge = LocalJudge(str(tiny_judge))
    prompt = judge_prompt("round solid opacity", OPTIONS)
    choice = judge.choose(prompt, OPTIONS)
    assert choice in OPTIONS and judge.choose(prompt, OPTIONS) == choice  # deterministic
    # the choice is the argmax of the per-byte log probability of each option
    scores = {}
    for option in OPTIONS:
        prefix = judge._prefix(prompt)
        cont = judge.tokenizer(option, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prefix + cont])
        with torch.no_grad():
            logprobs = torch.log_softmax(judge.model(input_ids=ids).logits.float(), -1)[0]
        total = sum(logprobs[len(prefix) - 1 + k, t].item() for k, t in enumerate(cont))
        scores[option] = total / len(option.encode())
    assert choice == max(scores, key=scores.get)


class _FixedAnswerJudge:
    name = "fixed"

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def choose(self, prompt, options):
        self.calls += 1
        return self.answer


def test_consistency_counts_and_resumes(tmp_path):
    rows = [
        {"id": "a", "think": "dark", "answer": "emphysema"},
        {"id": "b", "think": "dark", "answer": "ground-glass opacity"},
        {"id": "c", "think": "", "answer": "emphysema"},  # no reasoning: inconsistent
        {"id": "d", "think": "dark", "answer": None},  # no valid answer: inconsistent
    ]
    options = {r["id"]: OPTIONS for r in rows}
    judge = _FixedAnswerJudge("emphysema")
    metrics = judge_consistency(rows, options, judge, tmp_path)
    assert metrics["consistency"] == pytest.approx(1 / 4)
    assert metrics["consistency_judged"] == 3 and judge.calls == 3
    assert [r["judge_answer"] for r in rows] == ["emphysema", "emphysema", None, "emphysema"]
    again = judge_consistency(rows, options, judge, tmp_path)  # answers come from judge.jsonl
    assert again == metrics and judge.calls == 3
    other = _FixedAnswerJudge("ground-glass opacity")
    other.name = "another judge"
    assert judge_consistency(rows, options, other, tmp_path)["consistency"] == pytest.approx(1 / 4)
    assert other.calls == 3  # another judge is asked again


def test_keyword_judge_names_the_single_class_in_the_reasoning(tmp_path):
    """The model-free judge: the one class the reasoning spells out, none for zero or two."""
    judge = load_judge("keyword")
    rows = [
        {"id": "a", "think": f"Thick bronchial walls: {OPTIONS[0]}.", "answer": OPTIONS[0]},
        {"id": "b", "think": f"{OPTIONS[0]} or {OPTIONS[1]}?", "answer": OPTIONS[0]},
        {"id": "c", "think": "nothing named", "answer": OPTIONS[1]},
        {"id": "d", "think": f"looks like {OPTIONS[1].upper()}", "answer": OPTIONS[0]},
    ]
    metrics = judge_consistency(rows, {r["id"]: OPTIONS for r in rows}, judge, tmp_path)
    assert [r["judge_answer"] for r in rows] == [OPTIONS[0], None, None, OPTIONS[1]]
    assert metrics["consistency"] == pytest.approx(1 / 4) and metrics["judge"] == "keyword"


class _ChatServer(BaseHTTPRequestHandler):
    """The two OpenAI routes a judge uses: /v1/models and /v1/chat/completions."""

    requests: list = []

    def _send(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send({"object": "list", "data": [{"id": "judge-20b", "object": "model"}]})

    def do_POST(self):  # noqa: N802
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(payload)
        reasoning = payload["messages"][-1]["content"]
        text = (
            "Thinking it over... <answer>Pleural effusion/thickening</answer>"
            if "fluid" in reasoning
            else "It is emphysema, I believe."
        )
        self._send(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": payload["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    def log_message(self, *args):
        pass


def test_endpoint_judge_reads_tags_then_the_named_class():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = EndpointJudge(f"http://127.0.0.1:{server.server_port}/v1")
        assert judge.model == "judge-20b"  # the served model, from /v1/models
        fluid = judge.choose(judge_prompt("fluid in the pleural space", OPTIONS), OPTIONS)
        assert fluid == "pleural effusion/thickening"
        assert judge.choose(judge_prompt("dark areas", OPTIONS), OPTIONS) == "emphysema"
        sent = _ChatServer.requests[-1]
        assert sent["model"] == "judge-20b" and sent["temperature"] == 0.0
    finally:
        server.shutdown()


def test_evaluate_with_a_tiny_judge(built_dataset, tiny_judge, tmp_path):
    from model_training.evaluation.tasks.classification import read_reply

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "eval"
    options = EvaluateArguments(
        str(model), str(built_dataset), str(out), limit=4, batch_size=4, max_new_tokens=8,
        progress=False,
    )  # fmt: skip
    evaluate(options)
    # the random tiny model writes no reasoning: give its think-mode predictions some (the
    # evaluator resumes from predictions.jsonl, so only the judge runs below)
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    replies = [
        "<think>dark areas without walls</think><answer>emphysema</answer>",
        "<think>fluid in the pleural space</think><answer>pleural effusion/thickening</answer>",
        "<think>round solid opacity</think><answer>pulmonary nodules/masses</answer>",
        "no reasoning at all",
    ]
    think = [r for r in rows if r["mode"] == "think"]
    for row, reply in zip(think, replies, strict=True):
        row.update(output=reply, **read_reply(reply, OPTIONS))
        row["correct"] = row["answer"] == row["gold"]
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = evaluate(replace(options, judge=str(tiny_judge)))
    assert report["judge"]["judge"] == tiny_judge.name  # a local folder by its name only
    assert report["judge"]["judge_prompt"] == JUDGE_PROMPT_FILE.read_text()
    assert "consistency" not in report["modes"]["no-think"]
    metrics = report["modes"]["think"]
    assert metrics["consistency_judged"] == 3
    import datasets

    saved = datasets.load_dataset(
        "parquet", data_files=str(out / "predictions.parquet"), split="train"
    ).to_list()
    judged = [r for r in saved if r["mode"] == "think"]
    assert [r["output"] for r in judged] == replies
    assert (
        all(r["judge_answer"] in OPTIONS for r in judged[:3]) and judged[3]["judge_answer"] is None
    )
    # the judge's answers are those LocalJudge gives for the same prompts
    local = LocalJudge(str(tiny_judge))
    for row in judged[:3]:
        assert row["judge_answer"] == local.choose(judge_prompt(row["think"], OPTIONS), OPTIONS)
    expected = sum(r["answer"] is not None and r["judge_answer"] == r["answer"] for r in judged)
    assert metrics["consistency"] == pytest.approx(expected / 4)
