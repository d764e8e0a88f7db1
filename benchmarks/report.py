"""Turn the steps' raw results into the rows of results.json, and render them as plain-text tables."""

from __future__ import annotations

from .common import PRECISIONS, rtfx

TARGETS = {
    "speedup_c_int8_vs_a": 2.5,  # at least
    "triton_overhead_pct": 10.0,  # under
    "bi_rollup_p95_s": 0.5,  # under
    "peak_memory_mb": 1536.0,  # under (1.5 GB)
    "svp_vs_seed_loop": 4.0,  # at least (issue 18: whole processes, the seed's funasr loop against svp run)
    "svp_vs_funasr_onnx": 2.0,  # at least (issue 18)
}


def _r(x, nd=2):
    return None if x is None else round(float(x), nd)


def _pct(c_wall: float, b_wall: float) -> float:
    return 100.0 * (c_wall - b_wall) / b_wall


def _clips_and_call(step: dict) -> dict:
    clips, call = step["clips"], step.get("call")
    row = {"clips_audio_s": clips["audio_s"], "clips_wall_s": clips["wall_s"], "clips_rtfx": clips["rtfx"]}
    if call:
        row.update(
            call_audio_s=call["audio_s"],
            call_wall_s=call["wall_s"],
            call_rtfx=call["rtfx"],
            all_rtfx=_r(rtfx(clips["audio_s"] + call["audio_s"], clips["wall_s"] + call["wall_s"])),
            call_measured=True,
        )
    return row


def _call_note(step: dict) -> str:
    call = step.get("call")
    if not call:
        return "clips only (--fp32-call adds the call)"
    return (
        f"call: VAD ({call['vad_s']:.0f} s) + {call['segments']} segments (mean {call['mean_segment_s']} s)"
    )


def _chunked_peer_row(step: dict, row_id: str, label: str, note: str) -> dict:
    """A peer's row: its clips one call each, the long call in plain 30 s pieces (timed on a prefix when the whole
    would take too long, the rest extrapolated at the measured speed)."""
    clips, chunked = step["clips"], step["call_chunked"]
    call_s = chunked["call_s"]
    call_wall_est = call_s / chunked["rtfx"]
    return {
        "id": row_id,
        "label": label,
        "clips_audio_s": clips["audio_s"],
        "clips_wall_s": clips["wall_s"],
        "clips_rtfx": clips["rtfx"],
        "call_audio_s": call_s,
        "call_wall_s": _r(call_wall_est, 1),
        "call_rtfx": chunked["rtfx"],
        "all_rtfx": _r(rtfx(clips["audio_s"] + call_s, clips["wall_s"] + call_wall_est)),
        "call_measured": chunked["measured_share"] >= 0.999,
        "note": note,
    }


def throughput_rows(raw: dict) -> list[dict]:
    rows = []
    a = raw.get("funasr")
    if a:
        chunked = a["call_chunked"]
        rows.append(
            _chunked_peer_row(
                a,
                "a",
                "(a) funasr AutoModel (PyTorch), one file at a time",
                f"call cut into plain 30 s pieces (no VAD model offline); measured on the first "
                f"{chunked['audio_s']:.0f} s of {chunked['call_s']:.0f} s, the rest extrapolated linearly"
                if chunked["measured_share"] < 0.999
                else "call cut into plain 30 s pieces (no VAD model offline)",
            )
        )
        whole = a["call_whole"]
        wall = whole["wall_s"] if whole["measured"] else whole["wall_s_extrapolated"]
        rows.append(
            {
                "id": "a-whole-call",
                "label": "(a) funasr, the whole call in one generate()",
                "call_audio_s": whole["audio_s"],
                "call_wall_s": wall,
                "call_rtfx": _r(rtfx(whole["audio_s"], wall)),
                "all_rtfx": _r(rtfx(a["clips"]["audio_s"] + whole["audio_s"], a["clips"]["wall_s"] + wall)),
                "call_measured": whole["measured"],
                "note": "measured" if whole["measured"] else whole["note"],
            }
        )
    o = raw.get("funasr_onnx")
    if o:
        rows.append(
            _chunked_peer_row(
                o,
                "a2-onnx",
                "(a2) funasr-onnx SenseVoiceSmall int8 (quantize=True), one call per file",
                f"its own funasr export ({o['graph'].get('int8_matmuls')} int8 MatMuls); the call in plain 30 s "
                f"pieces (no VAD in SenseVoiceSmall), measured on the first {o['call_chunked']['audio_s']:.0f} s",
            )
        )
    for precision in PRECISIONS:
        b = raw.get(f"ort_{precision}")
        if b:
            rows.append(
                {
                    "id": f"b-{precision}",
                    "label": f"(b) in-process onnxruntime {precision}, one utterance at a time",
                    **_clips_and_call(b),
                    "note": _call_note(b),
                }
            )
    for precision in PRECISIONS:
        c = raw.get(f"triton_{precision}")
        if c:
            rows.append(
                {
                    "id": f"c-{precision}",
                    "label": f"(c) local Triton {precision}, {c['concurrency']} requests in flight",
                    **_clips_and_call(c),
                    "note": f"mean server batch {c['clips']['server_stats']['sensevoice']['mean_batch']} "
                    f"(clips); {_call_note(c)}",
                }
            )
            if "clips_serial" in c:
                s = c["clips_serial"]
                rows.append(
                    {
                        "id": f"c-{precision}-serial",
                        "label": f"(c) local Triton {precision}, one request at a time",
                        "clips_audio_s": s["audio_s"],
                        "clips_wall_s": s["wall_s"],
                        "clips_rtfx": s["rtfx"],
                        "note": f"first {s['files']} clips ({s['audio_s']:.0f} s), alternating with (b): see 1b",
                    }
                )
    d = raw.get("daily")
    if d:
        rows.append(
            {
                "id": f"d-{d['precision']}",
                "label": f"(d) daily.run_date via Triton {d['precision']} (decode..Parquet)",
                "all_audio_s": d["audio_s"],
                "all_wall_s": d["wall_s"],
                "all_rtfx": d["rtfx"],
                "call_measured": True,
                "note": f"{d['files']} files, {d['result'].get('utterances')} utterances, publish + warehouse included",
            }
        )
    base = next((r for r in rows if r["id"] == "a"), None)
    onnx = next((r for r in rows if r["id"] == "a2-onnx"), None)
    for r in rows:
        if onnx and r.get("all_rtfx") and onnx.get("all_rtfx"):
            r["speedup_all_vs_onnx"] = _r(r["all_rtfx"] / onnx["all_rtfx"])
        if base and r.get("clips_rtfx") and base.get("clips_rtfx"):
            r["speedup_clips_vs_a"] = _r(r["clips_rtfx"] / base["clips_rtfx"])
        if base and r.get("all_rtfx") and base.get("all_rtfx"):
            r["speedup_all_vs_a"] = _r(r["all_rtfx"] / base["all_rtfx"])
    return rows


def overhead_rows(raw: dict) -> list[dict]:
    rows = []
    for precision in PRECISIONS:
        b, c = raw.get(f"ort_{precision}"), raw.get(f"triton_{precision}")
        if not (b and c):
            continue
        pairs = [(b["clips"]["wall_s"], "clips", f"clips, {c['concurrency']} in flight")]
        if "clips_serial" in c:
            n = c["clips_serial"]["files"]
            pairs.append(
                (
                    c["clips_serial"]["paired_ort_s"],
                    "clips_serial",
                    f"first {n} clips, one at a time, paired (alternating)",
                )
            )
        if "call" in b and "call" in c:
            pairs.append((b["call"]["wall_s"], "call", "call (VAD + segments)"))
        for b_wall, c_key, what in pairs:
            rows.append(
                {
                    "precision": precision,
                    "inputs": what,
                    "b_wall_s": _r(b_wall, 3),
                    "c_wall_s": c[c_key]["wall_s"],
                    "overhead_pct": _r(_pct(c[c_key]["wall_s"], b_wall), 1),
                }
            )
    return rows


def memory_rows(raw: dict) -> list[dict]:
    rows = []
    for precision in PRECISIONS:
        b = raw.get(f"ort_{precision}")
        if b:
            part = "call" if "call" in b else None
            peak = b["call"]["peak_rss_mb"] if part else b["peak_rss_mb"]
            rows.append(
                {
                    "what": f"(b) in-process {precision}: "
                    + ("the long call end to end (one process)" if part else "the clips (no call run)"),
                    "client_mb": peak,
                    "server_pss_mb": 0.0,
                    "total_mb": peak,
                    "note": f"{b['rss_after_load_mb']:.0f} MB after loading the model",
                }
            )
    for precision in PRECISIONS:
        c = raw.get(f"triton_{precision}")
        if c:
            part = c.get("call") or c["clips"]
            server = part["server"]
            what = "the long call" if "call" in c else "the clips (no call run)"
            rows.append(
                {
                    "what": f"(c) Triton {precision}: {what}, client + server tree",
                    "client_mb": part["client_peak_rss_mb"],
                    "server_pss_mb": server["peak_pss_sum_mb"],
                    "server_rss_sum_mb": server["peak_rss_sum_mb"],
                    "server_largest_mb": c.get("server_largest_process_maxrss_mb"),
                    "total_mb": _r(part["client_peak_rss_mb"] + server["peak_pss_sum_mb"], 1),
                    "note": f"{server['processes']} server processes",
                }
            )
    d = raw.get("daily")
    if d:
        rows.append(
            {
                "what": f"(d) daily run ({d['precision']}): whole partition, client + server tree",
                "client_mb": d["client_peak_rss_mb"],
                "server_pss_mb": d["server"]["peak_pss_sum_mb"],
                "server_rss_sum_mb": d["server"]["peak_rss_sum_mb"],
                "server_largest_mb": d.get("server_largest_process_maxrss_mb"),
                "total_mb": _r(d["client_peak_rss_mb"] + d["server"]["peak_pss_sum_mb"], 1),
                "note": "",
            }
        )
    a = raw.get("funasr")
    if a:
        whole = a["call_whole"]
        if whole["measured"]:
            rows.append(
                {
                    "what": "(a) funasr: the whole call in one generate()",
                    "client_mb": whole["peak_rss_mb"],
                    "server_pss_mb": 0.0,
                    "total_mb": whole["peak_rss_mb"],
                    "note": "measured",
                }
            )
        else:
            longest = whole["prefixes"][-1]
            rows.append(
                {
                    "what": f"(a) funasr: one generate() on the first {longest['audio_s']:.0f} s",
                    "client_mb": longest["peak_rss_mb"],
                    "server_pss_mb": 0.0,
                    "total_mb": longest["peak_rss_mb"],
                    "note": "measured",
                }
            )
            floor = longest["rss_before_mb"] + whole["attention_maps_gb"] * 1000 / 1.048576
            rows.append(
                {
                    "what": "(a) funasr: the whole call in one generate() (not runnable here)",
                    "client_mb": _r(floor, 0),
                    "server_pss_mb": 0.0,
                    "total_mb": _r(floor, 0),
                    "note": f"at least: model + two attention maps ({whole['attention_maps_gb']} GB); a quadratic "
                    f"fit of the measured growth says {whole['peak_rss_mb_extrapolated'] / 1024:.0f} GB",
                }
            )
    return rows


def limits(raw: dict) -> dict:
    """Where the time goes: in-process stage shares, VAD share of the call, Triton's queue and compute times."""
    out = {}
    for precision in PRECISIONS:
        b = raw.get(f"ort_{precision}")
        if b:
            for part in ("clips", "call"):
                if part not in b:
                    continue
                stages = b[part]["stages_s"]
                wall = b[part]["wall_s"]
                shares = {
                    k: _r(100 * stages.get(k, 0.0) / wall, 1) for k in ("frontend", "encoder", "decode")
                }
                shares["vad"] = _r(100 * b[part].get("vad_s", 0.0) / wall, 1)
                shares["other"] = _r(100 - sum(v for v in shares.values() if v), 1)
                out[f"b_{precision}_{part}_pct"] = shares
        c = raw.get(f"triton_{precision}")
        if c:
            for part in ("clips", "clips_serial", "call"):
                if part not in c:
                    continue
                s = c[part]["server_stats"]
                sv, enc = s.get("sensevoice", {}), s.get("sensevoice_encoder", {})
                out[f"c_{precision}_{part}"] = {
                    "requests": sv.get("requests"),
                    "executions": sv.get("executions"),
                    "mean_batch": sv.get("mean_batch"),
                    "queue_ms_per_request": sv.get("queue_ms_per_request"),
                    "sensevoice_exec_s": sv.get("exec_s"),
                    "encoder_exec_s": enc.get("exec_s"),
                    # the BLS model's own time: frontend, CTC decoding, tensors to and from the encoder
                    "frontend_decode_bls_s": _r(sv.get("exec_s", 0) - enc.get("exec_s", 0), 2),
                    "server_busy_pct": _r(100 * sv.get("exec_s", 0) / c[part]["wall_s"], 1),
                    "wall_s": c[part]["wall_s"],
                }
    return out


def paired_rows(raw: dict) -> list[dict]:
    """Measurements taken clip by clip in alternation, so both sides saw the same machine load."""
    rows = []
    a = raw.get("funasr")
    if a and "paired" in a:
        p = a["paired"]
        rows.append(
            {
                "what": f"(a) funasr vs (b) in-process {p['precision']}",
                "clips": p["files"],
                "audio_s": p["audio_s"],
                "first_s": p["funasr_s"],
                "second_s": p["ort_s"],
                "ratio": p["ratio"],
                "reads": "(b) is x times faster than (a)",
            }
        )
    o = raw.get("funasr_onnx")
    if o and "paired" in o:
        p = o["paired"]
        rows.append(
            {
                "what": f"(a2) funasr-onnx int8 vs (b) in-process {p['precision']}",
                "clips": p["files"],
                "audio_s": p["audio_s"],
                "first_s": p["funasr_onnx_s"],
                "second_s": p["ort_s"],
                "ratio": p["ratio"],
                "reads": "(b) is x times faster than (a2)",
            }
        )
    for precision in PRECISIONS:
        c = raw.get(f"triton_{precision}")
        if c and "clips_serial" in c:
            s = c["clips_serial"]
            rows.append(
                {
                    "what": f"(c) Triton {precision}, one request at a time, vs (b) {precision}",
                    "clips": s["files"],
                    "audio_s": s["audio_s"],
                    "first_s": s["wall_s"],
                    "second_s": s["paired_ort_s"],
                    "ratio": _r(s["wall_s"] / s["paired_ort_s"], 3),
                    "reads": "(c) takes x times (b)",
                }
            )
    return rows


def paired_speedup_estimate(raw: dict) -> float | None:
    """(c) int8 with requests in flight against (a), from the paired (a)/(b) ratio and the adjacent (b)/(c) runs."""
    a, b, c = raw.get("funasr"), raw.get("ort_int8"), raw.get("triton_int8")
    if not (a and b and c and "paired" in a and a["paired"]["precision"] == "int8"):
        return None
    return _r(a["paired"]["ratio"] * b["clips"]["wall_s"] / c["clips"]["wall_s"])


PAIR_SIDES = {
    "seed": "funasr AutoModel, one generate() per file (the seed's loop)",
    "funasr-onnx": "funasr-onnx SenseVoiceSmall int8, one call per file",
    "svp": "svp run (the daily job) via a standing local Triton int8",
}


def pair_rows(raw: dict) -> list[dict]:
    """The seed-loop pair: whole processes over the clips, medians; x svp = the median of each round's ratio of
    that side's time to svp run's whole process (> 1: svp run is ahead)."""
    pairs = raw.get("pairs")
    if not pairs:
        return []
    rows = []
    for side, med in pairs["medians"].items():
        ratios = pairs["ratios"]
        without = "run_date only (start-up, imports and plan out)" if side == "svp" else "generate loop only"
        rows.append(
            {
                "side": side,
                "what": PAIR_SIDES[side],
                "whole_s": med["wall_s"],
                "without_load_s": med["excluding_load_s"],
                "load_s": med["load_s"],
                "whole_vs_svp": ratios.get(f"{side}_whole_vs_svp", 1.0 if side == "svp" else None),
                "without_load_vs_svp": ratios.get(f"{side}_without_load_vs_svp"),
                "without_is": without,
            }
        )
    return rows


def daily_breakdown(raw: dict) -> dict | None:
    """Where the daily job's time goes on the clips (benchmarks/peers.step_breakdown), with svp run's start-up from
    the pairs and the encoder-alone floor."""
    b = raw.get("breakdown")
    if not b:
        return None
    pairs = raw.get("pairs") or {}
    svp_runs = (pairs.get("runs") or {}).get("svp") or []
    startups = [r["wall_s"] - r["run_date_s"] for r in svp_runs if r.get("run_date_s")]
    floor = b["floor"]
    return {
        "audio_s": b["audio_s"],
        "files": b["files"],
        "utterances": b["utterances"],
        "run_date_wall_s": b["wall_s"],
        "svp_start_up_s": _r(sorted(startups)[len(startups) // 2], 2) if startups else None,
        "server_start_s": b["server_start_s"],
        "client_stages_s": b["client_stages_s"],
        "server": b["server"],
        "floor_s": floor["wall_s"],
        "floor_rtfx": floor["rtfx"],
        "floor_layout": f"{floor.get('sessions', 1)} session(s) x {floor.get('threads_per_session', floor['threads'])} threads",
        "run_date_vs_floor": _r(b["wall_s"] / floor["wall_s"]),
        "svp_process_vs_floor": _r(pairs["medians"]["svp"]["wall_s"] / floor["wall_s"]) if svp_runs else None,
    }


def _pair_targets(raw: dict) -> list[dict]:
    rows = []
    ratios = (raw.get("pairs") or {}).get("ratios") or {}
    goals = (
        (
            "seed_whole_vs_svp",
            "svp run vs the seed's funasr loop, whole processes (model load included)",
            "svp_vs_seed_loop",
        ),
        (
            "seed_without_load_vs_svp",
            "svp run vs the seed's funasr loop, its model load excluded",
            "svp_vs_seed_loop",
        ),
        ("funasr-onnx_whole_vs_svp", "svp run vs funasr-onnx int8, whole processes", "svp_vs_funasr_onnx"),
        (
            "funasr-onnx_without_load_vs_svp",
            "svp run vs funasr-onnx int8, its model load excluded",
            "svp_vs_funasr_onnx",
        ),
    )
    for key, what, target in goals:
        if key in ratios:
            rows.append(
                {
                    "target": f"{what} (paired, medians)",
                    "goal": f">= {TARGETS[target]:g}x",
                    "value": ratios[key],
                    "met": ratios[key] >= TARGETS[target],
                }
            )
    return rows


def targets(
    throughput: list[dict], overhead: list[dict], bi: dict | None, memory: list[dict], raw: dict | None = None
) -> list[dict]:
    rows = _pair_targets(raw or {})
    by_id = {r["id"]: r for r in throughput}
    a, c8 = by_id.get("a"), by_id.get("c-int8")
    if a and c8:
        for key, what in (
            ("speedup_clips_vs_a", "clips, whole runs"),
            ("speedup_all_vs_a", "clips + call, whole runs"),
        ):
            value = c8.get(key)
            rows.append(
                {
                    "target": f"(c) int8 throughput / (a), {what}",
                    "goal": ">= 2.5x",
                    "value": value,
                    "met": value is not None and value >= TARGETS["speedup_c_int8_vs_a"],
                }
            )
    estimate = paired_speedup_estimate(raw or {})
    if estimate is not None:
        rows.append(
            {
                "target": "(c) int8 throughput / (a), clips, from paired runs (load-independent)",
                "goal": ">= 2.5x",
                "value": estimate,
                "met": estimate >= TARGETS["speedup_c_int8_vs_a"],
            }
        )
    for r in overhead:
        if r["precision"] == "int8":
            rows.append(
                {
                    "target": f"Triton overhead int8, {r['inputs']}",
                    "goal": "< 10 %",
                    "value": r["overhead_pct"],
                    "met": r["overhead_pct"] < TARGETS["triton_overhead_pct"],
                }
            )
    if bi:
        p95 = [q["p95_s"] for q in bi["queries"] if q["reads"] not in ("utterances", "page")]
        paints = [max(q["first_s"], q["p95_s"]) for q in bi["queries"] if q["reads"] == "page"]
        if paints:
            rows.append(
                {
                    "target": "plugin page first paint (data + HTML, default range and a year)",
                    "goal": "< 1 s",
                    "value": max(paints),
                    "met": max(paints) < 1.0,
                }
            )
        if p95:
            rows.append(
                {
                    "target": "BI p95 of every canned query (worst query and range)",
                    "goal": "< 0.5 s",
                    "value": max(p95),
                    "met": max(p95) < TARGETS["bi_rollup_p95_s"],
                }
            )
    for m in memory:
        if m["what"].startswith("(c) Triton int8") or m["what"].startswith("(b) in-process int8"):
            rows.append(
                {
                    "target": f"peak memory: {m['what']}",
                    "goal": "< 1536 MB",
                    "value": m["total_mb"],
                    "met": m["total_mb"] < TARGETS["peak_memory_mb"],
                }
            )
    return rows


def build_results(meta: dict, raw: dict) -> dict:
    throughput = throughput_rows(raw)
    overhead = overhead_rows(raw)
    memory = memory_rows(raw)
    bi = raw.get("bi")
    return {
        "meta": meta,
        "models": raw.get("prepare", {}).get("models"),
        "audio": raw.get("prepare", {}).get("audio"),
        "throughput": throughput,
        "triton_overhead": overhead,
        "bi": bi,
        "merging": raw.get("merging"),
        "encoder": raw.get("encoder"),
        "write_path": raw.get("write_path"),
        "word_times": raw.get("word_times"),
        "memory": memory,
        "limits": limits(raw),
        "paired": paired_rows(raw),
        "pairs": pair_rows(raw),
        "daily_breakdown": daily_breakdown(raw),
        "targets": targets(throughput, overhead, bi, memory, raw),
        "steps": {k: v.get("step") for k, v in raw.items()},
        "raw": raw,
    }


# -- rendering -------------------------------------------------------------------------------------------------------


def _fmt(v, nd=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(headers: list[str], rows: list[list], aligns: str | None = None) -> str:
    cells = [[_fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    aligns = aligns or "l" + "r" * (len(headers) - 1)

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, aligns))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def render(results: dict) -> str:
    meta = results["meta"]
    out = []
    audio = results.get("audio") or {}
    models = results.get("models") or {}
    params = (models.get("fp32") or {}).get("parameters")
    weights = "random weights" if meta["sizes"]["model"] == "full" else f"the {meta['sizes']['model']} model"
    out.append(
        f"SenseVoiceSmall benchmark ({meta['mode']}): {params and f'{params / 1e6:.1f} M parameters'}, "
        f"{weights}; {audio.get('clips')} clips of {audio.get('clip_min_s')}-{audio.get('clip_max_s')} s "
        f"= {audio.get('clips_s')} s + one {audio.get('call_s')} s call; {meta['cpus']} CPUs, "
        f"{meta['threads']} threads; git {meta['git']}"
    )
    out.append(
        f"load average (1/5/15 min) before {meta['load_before']}, after {meta.get('load_after')}; "
        f"numpy matmul {meta.get('gflops_before')} GFLOP/s before, {meta.get('gflops_after')} after; "
        f"wall {meta.get('wall_s')} s"
    )
    int8 = (models.get("int8") or {}).get("parity") or {}
    if int8.get("argmax_agreement") is not None and int8["argmax_agreement"] < 0.9:
        out.append(
            f"int8 export: parity gate relaxed for random weights (argmax agreement "
            f"{int8['argmax_agreement']:.0%}, cosine {int8['min_cosine']:.3f}); its cost is what is measured"
        )

    out.append("\n1. Throughput, RTFx = audio seconds per wall second (higher is better)")
    rows = []
    for r in results["throughput"]:
        rows.append(
            [
                r["label"],
                r.get("clips_rtfx"),
                r.get("call_rtfx"),
                r.get("all_rtfx"),
                r.get("speedup_clips_vs_a"),
                r.get("speedup_all_vs_a"),
                r.get("speedup_all_vs_onnx"),
                {True: "yes", False: "extrap.", None: "-"}[r.get("call_measured")],
                r.get("note", ""),
            ]
        )
    out.append(
        _table(
            [
                "",
                "clips",
                "call",
                "clips+call",
                "x(a) clips",
                "x(a) all",
                "x(a2) all",
                "call measured",
                "note",
            ],
            rows,
            "lrrrrrrll",
        )
    )

    if results.get("paired"):
        out.append(
            "\n1b. Paired: the same clips alternately, clip by clip (both sides see the same machine load)"
        )
        out.append(
            _table(
                ["", "clips", "audio s", "first s", "second s", "ratio", "reads"],
                [
                    [
                        p["what"],
                        p["clips"],
                        p["audio_s"],
                        _fmt(p["first_s"], 2),
                        _fmt(p["second_s"], 2),
                        _fmt(p["ratio"], 2),
                        p["reads"],
                    ]
                    for p in results["paired"]
                ],
                "lrrrrrl",
            )
        )

    if results.get("pairs"):
        pairs = results["raw"]["pairs"]
        out.append(
            f"\n1c. The seed-loop pair: whole processes over the {pairs['files']} clips ({pairs['audio_s']} s), "
            f"{pairs['rounds']} rotated rounds, medians; x svp = median of each round's time / svp run's "
            f"whole process (> 1: svp run is ahead); {pairs['threads']} threads everywhere; the Triton server "
            f"(up in {pairs['server_start_s']} s) stands, as in production, and is not counted"
        )
        out.append(
            _table(
                ["", "whole process s", "x svp", "without load s", "x svp", "load s", "without load ="],
                [
                    [
                        p["what"],
                        _fmt(p["whole_s"], 2),
                        _fmt(p["whole_vs_svp"], 2),
                        _fmt(p["without_load_s"], 2),
                        _fmt(p["without_load_vs_svp"], 2),
                        _fmt(p["load_s"], 2),
                        p["without_is"],
                    ]
                    for p in results["pairs"]
                ],
                "lrrrrrl",
            )
        )

    out.append("\n2. Triton overhead: (c) wall time against (b) on the same inputs and precision")
    out.append(
        _table(
            ["precision", "inputs", "(b) s", "(c) s", "overhead %"],
            [
                [
                    r["precision"],
                    r["inputs"],
                    _fmt(r["b_wall_s"], 2),
                    _fmt(r["c_wall_s"], 2),
                    r["overhead_pct"],
                ]
                for r in results["triton_overhead"]
            ],
            "llrrr",
        )
    )

    bi = results.get("bi")
    if bi:
        lake = bi["lake"]
        out.append(
            f"\n3. BI latency: {lake['total_rows']:,} utterances over {lake['spec']['days']} days "
            f"({lake['spec']['rows_per_day']:,}/day, {lake['spec']['templates']} generated days copied "
            f"round-robin; {lake['lake_mb']:.0f} MB of Parquet; generation {lake['per_day_generate_s']} s/day)"
        )
        out.append(
            _table(
                ["query", "reads", "days", "rows out", "first s", "p50 s", "p95 s", "runs"],
                [
                    [
                        q["query"],
                        q["reads"],
                        q["days"],
                        q["result_rows"],
                        _fmt(q["first_s"], 3),
                        _fmt(q["p50_s"], 3),
                        _fmt(q["p95_s"], 3),
                        q["runs"],
                    ]
                    for q in bi["queries"]
                ],
                "llrrrrrr",
            )
        )

    out.append(
        "\n4. Peak memory (MB): client = ru_maxrss of the measuring process; server = the Triton process tree "
        "during that phase, PSS summed (sampled every 0.2-1 s); largest server proc = RUSAGE_CHILDREN "
        "ru_maxrss over the server's life, model loading included"
    )
    out.append(
        _table(
            ["", "client", "server PSS", "server RSS sum", "largest server proc", "total", "note"],
            [
                [
                    m["what"],
                    m["client_mb"],
                    m.get("server_pss_mb"),
                    m.get("server_rss_sum_mb"),
                    m.get("server_largest_mb"),
                    m["total_mb"],
                    m.get("note", ""),
                ]
                for m in results["memory"]
            ],
            "lrrrrrl",
        )
    )

    if results.get("merging"):
        out.append(render_merging(results["merging"]))
    if results.get("encoder"):
        out.append(render_encoder(results["encoder"]))
    if results.get("word_times"):
        from .word_times import render as render_word_times

        out.append("\n4d. " + render_word_times(results["word_times"]))

    lim = results["limits"]
    out.append("\n5. Where the time goes")
    for key, shares in lim.items():
        if key.startswith("b_"):
            out.append(f"  {key}: " + ", ".join(f"{k} {v}%" for k, v in shares.items()))
    for key, s in lim.items():
        if key.startswith("c_"):
            out.append(
                f"  {key}: {s['requests']} requests in {s['executions']} executions (mean batch "
                f"{s['mean_batch']}), queue {s['queue_ms_per_request']} ms/request; server busy "
                f"{s['sensevoice_exec_s']} s of {s['wall_s']} s wall ({s['server_busy_pct']}%): encoder "
                f"{s['encoder_exec_s']} s, frontend+decode+BLS {s['frontend_decode_bls_s']} s"
            )

    d = results.get("daily_breakdown")
    if d:
        out.append(render_breakdown(d))

    out.append("\n6. Targets (not tests; where we stand on this machine)")
    out.append(
        _table(
            ["target", "goal", "value", "met"],
            [[t["target"], t["goal"], t["value"], t["met"]] for t in results["targets"]],
            "llrl",
        )
    )
    if results.get("write_path"):
        from .write_path import render as render_write_path

        out.append(render_write_path(results["write_path"]))
    return "\n".join(out)


def render_breakdown(d: dict) -> str:
    """The daily job's time on the clips, stage by stage. Client stages run in worker threads, several files at
    once: their seconds are summed over threads and overlap each other and the server's work."""
    server = d["server"]
    lines = [
        f"  daily job on the clips ({d['files']} files, {d['audio_s']} s, {d['utterances']} utterances): "
        f"run_date {d['run_date_wall_s']} s wall; svp run start-up (process wall - run_date, pairs' median) "
        f"{_fmt(d['svp_start_up_s'], 2)} s; Triton start {d['server_start_s']} s (standing server, not counted)"
    ]
    lines.append(
        "    client, summed over worker threads (overlapping): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in d["client_stages_s"].items())
    )
    lines.append(
        f"    server: {server['requests']} requests in {server['executions']} executions; queue "
        f"{server['queue_s']} s (summed per request), encoder {server['encoder_s']} s, frontend + CTC decode "
        f"+ BLS {server['frontend_ctc_bls_s']} s (per execution)"
    )
    lines.append(
        f"    encoder-alone floor (int8, features precomputed, one call per whole file, laid out as the local "
        f"Triton's encoder instances: {d['floor_layout']}): "
        f"{d['floor_s']} s ({d['floor_rtfx']}x real time); run_date / floor {d['run_date_vs_floor']}x, "
        f"svp run whole process / floor {_fmt(d['svp_process_vs_floor'], 2)}x"
    )
    return "\n".join(lines)


def render_merging(merging: dict) -> str:
    """Segment merging (benchmarks/merging.py): per model and recording, each merge length against merging off
    (ratios are medians of each round's ratio, so every length sees the same machine load)."""
    out = [
        f"\n4b. Segment merging (SVP_MERGE_SEGMENT_S): {merging['rounds']} rotated rounds, medians; "
        f"{merging['concurrency']} requests in flight, {merging['threads']} threads"
    ]
    for model, recordings in merging["models"].items():
        for name, rows in recordings.items():
            answers = "text_as_clips" in rows[0]
            out.append(f"  {model}, {name}:")
            out.append(
                _table(
                    ["merge s", "requests", "audio s", "encoder s", "encoder x", "wall s", "wall x"]
                    + (["same text", "same tags"] if answers else []),
                    [
                        [
                            r["merge_s"],
                            r["requests"],
                            r["audio_s"],
                            _fmt(r["encoder_compute_s"], 3),
                            _fmt(r["encoder_ratio"], 2),
                            _fmt(r["wall_s"], 3),
                            _fmt(r["wall_ratio"], 2),
                        ]
                        + (
                            [
                                f"{r['text_as_clips']}/{r['segments']}",
                                f"{r['tags_of_first_clip']}/{r['segments']}",
                            ]
                            if answers
                            else []
                        )
                        for r in rows
                    ],
                )
            )
    return "\n".join(out)


def render_encoder(encoder: dict) -> str:
    """The encoder's export variants (benchmarks/encoder.py): x = median of each round's ratio to the int8 export
    before issue 18, so every variant sees the same machine load."""
    out = [
        f"\n4c. The encoder graph, export variants ({encoder['model']} model, {encoder['threads']} threads, "
        f"{encoder['rounds']} rotated rounds, medians; load {encoder['load_before']} -> {encoder['load_after']})"
    ]
    out.append(
        _table(
            ["variant", "batch x frames", "s", "RTFx", "x int8 before"],
            [
                [
                    r["variant"],
                    f"{r['batch']} x {r['frames']}",
                    _fmt(r["median_s"], 3),
                    r["rtfx"],
                    _fmt(r["x_before"], 2),
                ]
                for r in encoder["rows"]
            ],
        )
    )
    for name, shares in encoder.get("profiles", {}).items():
        top = ", ".join(f"{op} {share}%" for op, share in shares.items())
        out.append(f"  where {name}'s time goes ({encoder['profiles_at_frames']} frames): {top}")
    auto = encoder["auto"]
    out.append(
        f"  svp export --precision auto keeps {auto['chosen']} on this CPU "
        f"(fp32 {auto['seconds']['fp32']:.3f} s, int8 {auto['seconds']['int8']:.3f} s per 15 s segment)"
    )
    return "\n".join(out)
