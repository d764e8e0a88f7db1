"""The "Try a clip" HTML: the upload form (on the dashboard and on its own page) and the page that answers it with
what ``ui.clip.check_clip`` found, or why it could not.

The form is a plain multipart POST to ``clip``, beside the page, so it works inside Airflow's frame too.
"""

from __future__ import annotations

from sensevoice_pipeline.speech.languages import LANGUAGES
from sensevoice_pipeline.speech.redact import DROPPED
from sensevoice_pipeline.ui.clip import ACCEPT, MAX_CLIP_SECONDS, MAX_SEGMENT_S, MAX_UPLOAD_BYTES, ClipResult
from sensevoice_pipeline.ui.html_parts import Column, html_document, render_table
from sensevoice_pipeline.ui.page_text import esc, redact

SEGMENT_COLUMNS = [
    Column("index", "#", True),
    Column("start_s", "start s", True, get=lambda s: f"{s.start_s:.2f}"),
    Column("end_s", "end s", True, get=lambda s: f"{s.end_s:.2f}"),
    Column("raw", "raw", wrap=True),
    Column("plain", "plain", wrap=True),
    Column("emoji", "emoji", wrap=True),
]


def clip_form(language: str = "auto", itn: bool = True) -> str:
    """The upload form: a plain multipart POST to ``clip`` (beside the page, so inside Airflow's frame too)."""
    languages = "".join(
        f'<option value="{esc(x)}"{" selected" if x == language else ""}>{esc(x)}</option>' for x in LANGUAGES
    )
    itns = "".join(
        f'<option value="{v}"{" selected" if (v == "on") == itn else ""}>{v}</option>' for v in ("on", "off")
    )
    return "".join(
        [
            '<form method="post" action="clip" enctype="multipart/form-data" class="clip">',
            f'<label>clip<input type="file" name="clip" accept="{esc(ACCEPT)}" required></label>',
            f'<label>language<select name="language">{languages}</select></label>',
            f'<label>ITN<select name="itn">{itns}</select></label>',
            '<button type="submit">Transcribe</button></form>',
        ]
    )


def _clip_help() -> str:
    formats = ", ".join(e.lstrip(".") for e in ACCEPT.split(","))
    return (
        f'<p class="meta">Upload a clip ({esc(formats)}; up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB and '
        f"{MAX_CLIP_SECONDS / 60:.0f} min) to see what the serving model answers: the raw rich transcription, "
        "its plain and emoji renderings, with card and phone numbers, e-mail addresses and long digit runs "
        "redacted as the daily job stores them (SVP_REDACT). Channels are mixed down; a clip longer than "
        f"{MAX_SEGMENT_S:.0f} s is cut into speech segments as the daily job does. Nothing is stored.</p>"
    )


def clip_section(language: str = "auto", itn: bool = True) -> str:
    return f'<section id="clip"><h2>Try a clip</h2>{_clip_help()}{clip_form(language, itn)}</section>'


def render_clip_page(
    result: ClipResult | None = None,
    error: str | None = None,
    status: int = 200,
    language: str = "auto",
    itn: bool = True,
) -> str:
    """The answer to the clip form: what Triton said (or why not), then the form again with the same choices."""
    body = []
    if error:
        body.append(f'<p class="error" role="alert" id="clip-error">{esc(status)}: {esc(redact(error))}</p>')
    if result is not None:
        body.append(_clip_result(result))
    return html_document(
        "try a clip",
        '<p class="meta"><a href="./">Back to the dashboard</a></p>',
        '<section id="clip"><h2>Try a clip</h2>',
        *body,
        _clip_help(),
        clip_form(language, itn),
        "</section>",
    )


def _redacted(result: ClipResult) -> str:
    """What the redaction policy (SVP_REDACT) did to the texts shown, as the daily job stores them."""
    if result.redact == "off":
        return "off (SVP_REDACT=off): texts as the model said them"
    if not result.redactions:
        return f"nothing found to redact ({result.redact})"
    counts: dict[str, int] = {}
    for kind in result.redacted_kinds:
        counts[kind] = counts.get(kind, 0) + 1
    what = ", ".join(f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in counts.items())
    n = result.redactions
    if result.redact == "mask":
        return f"{n} item{'' if n == 1 else 's'} masked: {what}"
    return f"{n} item{'' if n == 1 else 's'} dropped: {what} (each text holding any is replaced by {DROPPED})"


def _clip_result(result: ClipResult) -> str:
    """What was sent (the audio, the hint, the model) and the transcription, whole and per segment."""
    n = len(result.segments)
    cut = (
        f"{n} speech segment{'' if n == 1 else 's'} (VAD, at most {MAX_SEGMENT_S:.0f} s each)"
        if result.segmented
        else "the whole clip in one request"
    )
    channels = f"{result.channels} channel{'' if result.channels == 1 else 's'}"
    facts = [
        ("clip", result.name),
        ("audio", f"{result.format}, {result.sample_rate} Hz, {channels}, {result.duration_s:.2f} s"),
        ("language hint", result.language),
        ("ITN", "on" if result.use_itn else "off"),
        ("model", f"{result.model_name} version {result.model_version}" if result.model_name else "none"),
        ("transcribed", cut),
        ("took", f"{result.seconds:.2f} s"),
        ("redacted", _redacted(result)),
    ]
    out = [
        '<div id="clip-result"><dl>'
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
        + "</dl>"
    ]
    if result.segments:
        out.append(
            '<h3>Transcription</h3><dl class="texts">'
            f'<dt>raw</dt><dd><code id="clip-raw">{esc(result.raw)}</code></dd>'
            f'<dt>plain</dt><dd id="clip-plain">{esc(result.plain)}</dd>'
            f'<dt>emoji</dt><dd id="clip-emoji">{esc(result.emoji)}</dd></dl>'
        )
    else:
        out.append('<p class="empty" id="clip-raw">No speech found in this clip.</p>')
    if result.segmented and result.segments:
        out.append("<h3>Segments</h3>" + render_table(SEGMENT_COLUMNS, result.segments, "", "compact"))
    out.append("</div>")
    return "".join(out)
