r"""MedReason-R1 Space: upload a chest CT, choose a slice and a lesion, and see the model reason
and answer, on the very image and question CT-RATE-VQA would give it.

    python space/app.py [--model PATH_OR_HUB_ID] [--host 127.0.0.1] [--port 7860]

As the Hub starts a Space (``python app.py``, no arguments) it serves on GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT and runs the model named by MEDREASON_MODEL or, on a Space, by the card's
``models:`` entry; locally, by default, the demo model (serving.py: the order, and why).
The scan is a NIfTI CT (.nii.gz, read as the dataset builder reads it) with an optional
ReXGroundingCT mask (F, H, W, D), or a PNG/JPEG slice. The lesion is the chosen finding's
box on the slice (from the mask), or a box drawn with two clicks (or typed). The model is a
checkpoint folder or a Hub id (downloaded only when named); nothing else leaves the machine.
Research use only: not a medical device, not for clinical decisions.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
APP_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(APP_DIR))  # the modules beside this file (and the bundled packages)

from serving import (  # noqa: E402
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEMO_MODEL,
    HOST_ENV,
    MODEL_ENV,
    PORT_ENV,
    SpaceError,
    check_host,
    check_port,
    choose_model,
    env_port,
    serve_address,
)

from common.errors import report, user_errors  # noqa: E402

if __name__ == "__main__":  # Gradio reads GRADIO_SERVER_PORT as it is imported: check it first
    try:
        env_port()
    except SpaceError as err:
        sys.exit(report(err))

import gradio as gr  # noqa: E402
from grounding_view import Segmenters, ground, overlay, summary  # noqa: E402
from model_runner import ModelRunner  # noqa: E402
from scan_input import (  # noqa: E402
    DEFAULT_WINDOW,
    WINDOWS,
    Scan,
    UploadError,
    box_from_clicks,
    finding_box,
    load_scan,
    model_input,
    parse_box,
    picker_image,
    render,
    window_options,
)

from common.cli_options import parse_options  # noqa: E402
from dataset_builder.class_map import load_class_map  # noqa: E402
from dataset_builder.config import VARIANTS  # noqa: E402
from model_training import prompts  # noqa: E402
from model_training.evaluation.options import DEFAULT_MAX_NEW_TOKENS  # noqa: E402
from model_training.evaluation.sam import NO_SAM, SegmenterError, sam_config  # noqa: E402

NO_FINDING = "none (draw a box)"
GROUNDING_NOTE = (
    "## Grounding (MedReasoner's task)\n"
    "A model trained on the `grounding` config (e.g. `python -m model_training.run --config "
    "recipes/demo-grounding-cpu.yaml`) reads the plain slice and the dataset's query for a "
    "report sentence, reasons, and answers with a box and two points (red, yellow); with "
    "`--sam-model`, a frozen SAM turns them into a mask (blue). The lesion box chosen above, if "
    "any, is drawn in green."
)
PROGRESS = gr.Progress()  # Gradio injects a tracker into handlers with this default
NOTICE = "Research use only. Not a medical device; not for clinical decisions."


@dataclass
class SpaceArguments:
    """The options of ``python space/app.py`` (one field, one option)."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "checkpoint folder or Hub model id (a Hub id is downloaded); None: "
            f"${MODEL_ENV}, else on a Space the card's models: entry, else the demo model "
            f"{DEMO_MODEL}"
        },
    )
    host: str | None = field(
        default=None,
        metadata={"help": f"address to serve on; None: ${HOST_ENV}, else {DEFAULT_HOST}"},
    )
    port: int | None = field(
        default=None,
        metadata={"help": f"port to serve on (1-65535); None: ${PORT_ENV}, else {DEFAULT_PORT}"},
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "reply tokens (the evaluator's default)"}
    )
    class_map: str | None = field(
        default=None,
        metadata={"help": "class map JSON the dataset was built with (default: the packaged one)"},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "run the model repo's own code (read it first)"}
    )
    sam_model: str = field(
        default=NO_SAM,  # ours: offline by default; the evaluator's default is MedSAM
        metadata={
            "help": "frozen SAM that turns a grounding answer into a mask: a folder or Hub id "
            "(e.g. flaviagiammarino/medsam-vit-base, downloaded when named), or none"
        },
    )

    def __post_init__(self) -> None:
        if self.port is not None:
            check_port(self.port, "--port")
        if self.max_new_tokens < 1:
            raise SpaceError(f"--max-new-tokens {self.max_new_tokens}: give a positive number")
        if self.host is not None:
            check_host(self.host, "--host")


def _error(err: Exception) -> str:
    return f"**Error:** {err}"


class SpaceApp:
    """The page's handlers; each returns messages for the page instead of raising."""

    def __init__(self, args: SpaceArguments):
        try:
            self.classes = list(load_class_map(args.class_map).classes)
        except (OSError, ValueError) as err:
            raise SpaceError(f"--class-map: {err}") from None
        self.model = choose_model(args.model, APP_DIR)
        self.runner = ModelRunner(self.model.name, args.max_new_tokens, args.trust_remote_code)
        self.model_problem = self.runner.problem()
        if args.sam_model != NO_SAM:
            try:
                sam_config(args.sam_model)  # reads the config only: a bad name fails at start
            except SegmenterError as err:
                raise SpaceError(f"--sam-model: {err}") from None
        self.segmenters = Segmenters(args.sam_model)

    def load(self, ct_file, mask_file, window: str, progress=PROGRESS):
        """Upload -> (scan, slider, finding chooser, status, picker, box, clicks)."""
        progress(0.1, desc="Reading the scan")
        try:
            scan = load_scan(ct_file, mask_file)
            picker = picker_image(scan, scan.slices // 2, window_options(window))
        except UploadError as err:
            empty = gr.update(choices=[NO_FINDING], value=NO_FINDING)
            return None, gr.update(value=0, maximum=1), empty, _error(err), None, "", None
        findings = [NO_FINDING] + [
            f"finding {i}: lesions on {len(scan.finding_slices(i))} slice(s)"
            for i in range(0 if scan.masks is None else scan.masks.shape[0])
        ]
        kind = "image" if scan.ct is None else f"CT {' x '.join(map(str, scan.ct.shape))}"
        masks = "" if scan.masks is None else f", mask with {scan.masks.shape[0]} finding(s)"
        status = f"Loaded {scan.name}: {kind}{masks}. Choose a slice and a lesion."
        slider = gr.update(value=scan.slices // 2, maximum=max(scan.slices - 1, 1))
        return scan, slider, gr.update(choices=findings, value=NO_FINDING), status, picker, "", None

    @staticmethod
    def _finding(choice: str | None) -> int | None:
        if not choice or choice == NO_FINDING:
            return None
        return int(choice.split(":")[0].removeprefix("finding "))

    def choose_finding(self, scan: Scan | None, choice: str, slice_index: int):
        """A finding chosen: go to its middle lesion slice -> (slider value, box, status)."""
        finding = self._finding(choice)
        if scan is None or finding is None:
            return gr.update(), gr.update(), ""
        slices = scan.finding_slices(finding)
        if not slices:
            return gr.update(), "", _error(f"finding {finding} has no lesion above the threshold")
        target = slice_index if slice_index in slices else slices[len(slices) // 2]
        box = finding_box(scan, finding, target)
        return target, ",".join(map(str, box)), f"Finding {finding}, slice {target}."

    def move_slice(self, scan: Scan | None, choice: str, slice_index: int, box_text: str):
        """The slider moved: the finding's box on the new slice (a drawn box stays)."""
        finding = self._finding(choice)
        if scan is None or finding is None:
            return box_text, ""
        try:
            box = finding_box(scan, finding, int(slice_index))
        except UploadError as err:
            return "", _error(err)
        return ",".join(map(str, box)), f"Finding {finding}, slice {int(slice_index)}."

    def click(self, scan: Scan | None, clicks, window: str, slice_index: int, evt: gr.SelectData):
        """A click on the slice: first corner, then the box -> (clicks, box, picker)."""
        if scan is None:
            return None, gr.update(), gr.update()
        point = (int(evt.index[0]), int(evt.index[1]))
        options = window_options(window)
        if clicks is None:
            return point, gr.update(), picker_image(scan, int(slice_index), options, click=point)
        box = box_from_clicks(clicks, point)
        return None, ",".join(map(str, box)), picker_image(scan, int(slice_index), options, box)

    def preview(self, scan: Scan | None, slice_index: int, box_text: str, window: str, variant):
        """(picker, model input image, question, status) for the current choices."""
        if scan is None:
            return None, None, "", gr.update()  # keep the upload's status (its error)
        try:
            options = window_options(window)
            if not box_text.strip():
                picker = picker_image(scan, int(slice_index), options)
                return picker, None, "", gr.update()  # keep the upload's status
            box = parse_box(box_text, scan)
            rendered = render(scan, int(slice_index), box, options)
            png, question = model_input(rendered, variant, self.classes)
        except UploadError as err:
            return gr.update(), None, "", _error(err)
        picker = picker_image(scan, int(slice_index), options, box)
        return picker, _png_image(png), question, "Ready: press Ask the model."

    def ask(self, scan, slice_index, box_text, window, variant, mode, progress=PROGRESS):
        """-> (reasoning, answer, raw reply, status)."""
        if self.model_problem:
            return "", "", "", _error(self.model_problem)
        if scan is None or not box_text.strip():
            return "", "", "", _error("upload a scan and choose a lesion first")
        try:
            box = parse_box(box_text, scan)
            rendered = render(scan, int(slice_index), box, window_options(window))
            png, question = model_input(rendered, variant, self.classes)
        except UploadError as err:
            return "", "", "", _error(err)
        progress(0.2, desc=f"Loading {self.runner.model_name}")
        self.runner.load()
        progress(0.6, desc="Generating")
        reply = self.runner.ask(png, question, self.classes, mode)
        answer = reply.answer or "(no valid class in the reply)"
        if reply.parsed_by == "fallback":
            answer += " (no <answer> tags: class found in the text)"
        return reply.think or "(no <think> block)", answer, reply.text, "Done."

    def ground(self, scan, slice_index, box_text, window, finding_text, mode, progress=PROGRESS):
        """-> (overlay image, summary, reasoning, raw reply, status)."""
        if self.model_problem:
            return None, "", "", "", _error(self.model_problem)
        if scan is None:
            return None, "", "", "", _error("upload a scan first")
        if not finding_text.strip():
            return None, "", "", "", _error("type the report sentence to ground")
        try:
            true_box = parse_box(box_text, scan) if box_text.strip() else None
            width, height = scan.size
            # the plain rendering draws no box; a whole-slice box stands in when none is chosen
            lesion = true_box or (0, 0, width, height)
            rendered = render(scan, int(slice_index), lesion, window_options(window))
        except UploadError as err:
            return None, "", "", "", _error(err)
        progress(0.2, desc=f"Loading {self.runner.model_name}")
        self.runner.load()
        progress(0.5, desc="Generating")
        try:
            reply = ground(self.runner, rendered.plain_png, finding_text, mode, self.segmenters)
        except SegmenterError as err:
            return None, "", "", "", _error(err)
        true_box = list(rendered.bbox) if true_box is not None else None
        return (
            overlay(rendered.plain_png, reply, true_box),
            summary(reply, true_box),
            reply.think or "(no <think> block)",
            reply.text,
            "Done.",
        )


def _png_image(png: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(png))


def build_blocks(space: SpaceApp) -> gr.Blocks:
    theme = gr.themes.Base(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no CDN
    with gr.Blocks(title="MedReason-R1", theme=theme) as blocks:
        gr.Markdown(f"# MedReason-R1: chest CT lesion classification\n{NOTICE}")
        if space.model_problem:
            gr.Markdown(_error(space.model_problem), elem_id="model-problem")
        scan = gr.State(None)
        clicks = gr.State(None)
        with gr.Row():
            ct_file = gr.File(label="CT (.nii.gz) or slice (PNG/JPEG)", elem_id="scan-file")
            mask_file = gr.File(label="Mask (ReXGroundingCT, optional)", elem_id="mask-file")
        status = gr.Markdown("Upload a scan to start.", elem_id="status")
        with gr.Row():
            slider = gr.Slider(0, 1, value=0, step=1, label="Slice", elem_id="slice")
            window = gr.Radio(list(WINDOWS), value=DEFAULT_WINDOW, label="Window", elem_id="window")
            finding = gr.Dropdown(
                [NO_FINDING], value=NO_FINDING, label="Finding", elem_id="finding"
            )
        with gr.Row():
            picker = gr.Image(
                label="Slice: click two corners of the lesion",
                format="png",
                interactive=False,
                elem_id="picker",
            )
            shown = gr.Image(label="What the model sees", format="png", elem_id="model-image")
        box = gr.Textbox(label="Lesion box x0,y0,x1,y1 (view pixels)", elem_id="box")
        question = gr.Textbox(label="Question (as in CT-RATE-VQA)", elem_id="question")
        with gr.Row():
            variant = gr.Radio(list(VARIANTS), value=VARIANTS[0], label="Rendering")
            mode = gr.Radio(list(prompts.MODES), value=prompts.MODES[0], label="Thinking")
            ask = gr.Button("Ask the model", variant="primary", elem_id="ask")
        think = gr.Textbox(label="Reasoning (<think>)", elem_id="think")
        answer = gr.Textbox(label="Answer", elem_id="answer")
        reply = gr.Textbox(label="Raw reply", elem_id="reply")
        gr.Markdown(GROUNDING_NOTE, elem_id="grounding")
        with gr.Row():
            sentence = gr.Textbox(
                label="Report sentence to ground", elem_id="grounding-finding", scale=3
            )
            ground_button = gr.Button("Ground it", elem_id="ground", scale=1)
        with gr.Row():
            grounded = gr.Image(label="Grounding", format="png", elem_id="grounding-image")
            with gr.Column():
                grounded_summary = gr.Textbox(label="Box and points", elem_id="grounding-summary")
                grounded_think = gr.Textbox(label="Reasoning (<think>)", elem_id="grounding-think")
                grounded_reply = gr.Textbox(label="Raw reply", elem_id="grounding-reply")

        view = [scan, slider, box, window, variant]
        refreshed = [picker, shown, question, status]
        loaded = [scan, slider, finding, status, picker, box, clicks]
        for upload in (ct_file, mask_file):
            upload.change(space.load, [ct_file, mask_file, window], loaded).then(
                space.preview, view, refreshed
            )
        finding.input(space.choose_finding, [scan, finding, slider], [slider, box, status]).then(
            space.preview, view, refreshed
        )
        slider.release(space.move_slice, [scan, finding, slider, box], [box, status]).then(
            space.preview, view, refreshed
        )
        picker.select(space.click, [scan, clicks, window, slider], [clicks, box, picker])
        for trigger in (box.submit, box.blur, window.change, variant.change):
            trigger(space.preview, view, refreshed)
        ask.click(space.ask, [*view, mode], [think, answer, reply, status])
        ground_button.click(
            space.ground,
            [scan, slider, box, window, sentence, mode],
            [grounded, grounded_summary, grounded_think, grounded_reply, status],
        )
    return blocks


@user_errors
def main(argv: list[str] | None = None) -> int:
    (args,) = parse_options(SpaceArguments, argv, "python space/app.py", __doc__)
    host, port = serve_address(args.host, args.port)
    space = SpaceApp(args)
    if space.model_problem and space.model.source:  # the user or the card named it: refuse
        raise SpaceError(f"{space.model.source}: {space.model_problem}")
    if space.model_problem:  # the default demo model is missing: the page says how to make it
        print(f"warning: {space.model_problem}", file=sys.stderr)
    print(f"model: {space.model.name} ({space.model.source or 'the default'})", flush=True)
    try:
        build_blocks(space).launch(server_name=host, server_port=port)
    except OSError as err:
        raise SpaceError(f"cannot serve on {host}:{port} ({err})") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
