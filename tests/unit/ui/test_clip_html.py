"""ui/clip_html.py: the "Try a clip" form and the page that answers it."""

from __future__ import annotations

import re

from sensevoice_pipeline.speech.languages import LANGUAGES
from sensevoice_pipeline.ui.clip import ACCEPT, ClipResult, ClipSegment
from sensevoice_pipeline.ui.clip_html import clip_form, clip_section, render_clip_page


def selected(form: str, select: str) -> list[str]:
    options = re.search(rf'<select name="{select}">(.*?)</select>', form).group(1)
    return re.findall(r'<option value="([^"]*)" selected>', options)


def result(**fields) -> ClipResult:
    return ClipResult(
        **{
            "name": "call <1>.wav",
            "format": "WAV",
            "sample_rate": 16000,
            "channels": 1,
            "duration_s": 3.456,
            "language": "en",
            "use_itn": True,
            "model_name": "sensevoice",
            "model_version": "3",
            "raw": "<|en|><|ANGRY|><|Speech|><|withitn|>Where is my refund?",
            "plain": "Where is my refund?",
            "emoji": "😡 Where is my refund?",
            "segments": [ClipSegment(0, 0.0, 3.456, "<|en|>raw", "plain", "emoji")],
            "seconds": 0.25,
            **fields,
        }
    )


def test_the_form_posts_the_clip_beside_the_page_with_the_choices_kept():
    form = clip_form("ja", itn=False)
    assert form.startswith('<form method="post" action="clip" enctype="multipart/form-data"')
    assert f'accept="{ACCEPT}"' in form and 'type="file" name="clip"' in form and "required" in form
    assert re.findall(r'<option value="([^"]*)"', form.split('name="itn"')[0]) == list(LANGUAGES)
    assert selected(form, "language") == ["ja"] and selected(form, "itn") == ["off"]
    default = clip_form()
    assert selected(default, "language") == ["auto"] and selected(default, "itn") == ["on"]
    assert selected(clip_form('"><script>'), "language") == []  # an unknown hint selects nothing
    assert '<section id="clip"><h2>Try a clip</h2>' in clip_section()


def test_an_error_is_shown_with_its_status_and_without_server_paths():
    page = render_clip_page(error="cannot decode /srv/uploads/tmp123/call<1>.wav", status=415, language="ko")
    alert = re.search(r'<p class="error" role="alert" id="clip-error">(.*?)</p>', page).group(1)
    assert alert == "415: cannot decode …/call&lt;1&gt;.wav"
    assert "/srv/uploads" not in page and 'id="clip-result"' not in page
    assert selected(page, "language") == ["ko"]  # the form again, with the same choices
    assert "<title>SenseVoice · try a clip</title>" in page


def test_a_whole_clip_result_lists_what_was_sent_and_the_escaped_transcription():
    page = render_clip_page(result(), language="en")
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", page.split("<h3>")[0]))
    assert facts == {
        "clip": "call &lt;1&gt;.wav",
        "audio": "WAV, 16000 Hz, 1 channel, 3.46 s",
        "language hint": "en",
        "ITN": "on",
        "model": "sensevoice version 3",
        "transcribed": "the whole clip in one request",
        "took": "0.25 s",
        "redacted": "nothing found to redact (mask)",
    }
    assert '<code id="clip-raw">&lt;|en|&gt;&lt;|ANGRY|&gt;&lt;|Speech|&gt;&lt;|withitn|&gt;Where' in page
    assert '<dd id="clip-emoji">😡 Where is my refund?</dd>' in page
    assert "<h3>Segments</h3>" not in page and 'class="error"' not in page


def test_a_segmented_result_has_its_segment_table_and_counts_in_the_singular_or_plural():
    segments = [ClipSegment(0, 0.0, 12.5, "r0", "p0", "e0"), ClipSegment(1, 14.25, 30.0, "r1", "p1", "<e1>")]
    page = render_clip_page(
        result(segments=segments, segmented=True, channels=2, use_itn=False, model_name="")
    )
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", page.split("<h3>")[0]))
    assert facts["transcribed"].startswith("2 speech segments (VAD, at most ")
    assert "2 channels" in facts["audio"] and facts["ITN"] == "off" and facts["model"] == "none"
    table = page.split("<h3>Segments</h3>")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    assert len(rows) == 3 and '<table class="compact">' in table
    assert re.findall(r"<td[^>]*>(.*?)</td>", rows[2]) == ["1", "14.25", "30.00", "r1", "p1", "&lt;e1&gt;"]
    one = render_clip_page(result(segmented=True))
    assert "1 speech segment (VAD" in one


def test_a_clip_without_speech_says_so_and_has_no_transcription():
    page = render_clip_page(result(segments=[], segmented=True, raw="", plain="", emoji=""))
    assert '<p class="empty" id="clip-raw">No speech found in this clip.</p>' in page
    assert "<h3>Transcription</h3>" not in page and "<h3>Segments</h3>" not in page
