"""Draw & correct (report Fig. 6 and Fig. 8): one digit in, what the model gives back, what it
corrected, and whether its score crosses the anomaly threshold."""
import numpy as np
import pandas as pd
import streamlit as st
import streamlit_drawable_canvas as canvas

from studio import caches, draw_inputs, state
from studio.display import (
    circle_spots,
    describe_spots,
    png_bytes,
    render_difference,
    result_sheet,
    thumbnail_url,
    to_rgb,
    upscale,
)
from studio.retrain import train_one_hint
from vae import benchmark, prepare_array
from vae.correction import CALIBRATION_PERCENTILE, DEFAULT_LEVEL, correct, result_csv, skipped_specks, spots_in, verdict
from vae.data import to_float
from vae.detector import DETECTOR_SCORES, score_uint8, verdict_scores
from vae.flaws import FLAW_DESCRIPTIONS, FLAW_KINDS, add_flaw
from vae.generate import INFORMATIVE_SIGMA, informative_dims, posterior_of, sampled_reconstructions
from vae.model import VARIATIONAL_KINDS
from vae.scores import compared_numbers, percentile_of
from vae.server.uploads import load_uploaded_image
from vae.shift_benchmark import shift_caption
from vae.shifts import shift_digit

INPUTS = ("Draw", "Upload", "Test digit")
CANVAS_SIZE = 280
INDEX_KEY = "draw_test_index"
LEVEL_KEY = "draw_level"
SCORE_KEY = state.VERDICT_SCORE_KEY  # shared with the Error histograms page
SPOT_MODE_KEY = "draw_spot_mode"
SPOT_MODES = ("Calibrated", "Manual level")
CENTRE_KEY, DOWN_KEY, RIGHT_KEY = "draw_centre", "draw_shift_down", "draw_shift_right"
MAX_SHIFT = draw_inputs.MAX_SHIFT
SPOT_MODE_HELP = ("Calibrated: spots where this digit differs from the closest digit the model can draw, above "
                  "a level set on the model's training digits, so a clean digit is seldom circled. Manual: the "
                  "plain input–reconstruction difference, at a level you choose.")


def prepared(image) -> dict[bool, np.ndarray]:
    """A drawing or upload as the models take it, centred (True) and where it was drawn (False)."""
    return {True: prepare_array(image), False: prepare_array(image, centre=False)}


def drawn_digit() -> tuple[dict[bool, np.ndarray], str] | None:
    # A short line above the canvas and the rest below: on hover the canvas's toolbar appears over its top edge,
    # right of this line's end (it hid a long caption there, or the Input choice above).
    st.caption("Draw one digit, large:")
    result = canvas.st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000",
                              width=CANVAS_SIZE, height=CANVAS_SIZE, drawing_mode="freedraw",
                              initial_drawing=draw_inputs.canvas_start(),
                              return_image_data=True, key=draw_inputs.CANVAS_KEY)
    st.caption("With the mouse or a finger. Hover over the canvas for its toolbar: the bin clears it, the arrows "
               "undo and redo.")
    # The canvas's pixels arrive as a PNG from the browser, which a hostile one can make any size:
    # decode it through the upload checks (size limits, reduced before floats), never as it comes.
    drawn = result.image_bytes
    if drawn is not None:  # None until the canvas sends its pixels
        try:
            digit = prepared(load_uploaded_image(drawn))
        except ValueError:  # a cleared canvas (all background), or not a picture we accept
            draw_inputs.forget_drawing()
        else:
            draw_inputs.keep_drawing(result.json_data, digit)
            return digit, "drawing"
    elif draw_inputs.kept_drawing() is not None:  # the canvas is back with the kept drawing
        return draw_inputs.kept_drawing(), "drawing"
    st.info("Draw a digit on the black canvas to see how the model corrects it.")
    return None


def uploaded_digit() -> tuple[dict[bool, np.ndarray], str] | None:
    file = st.file_uploader("A PNG or JPEG of one digit, any colours (it is cropped, scaled and centred "
                            "like MNIST)", type=["png", "jpg", "jpeg"], key=draw_inputs.UPLOAD_KEY,
                            on_change=draw_inputs.upload_changed)
    if file is None:
        kept = draw_inputs.kept_upload()
        if kept is not None:  # Streamlit dropped the file when the page was left; its digit was kept
            st.caption(f"Showing **{kept[0]}**, uploaded earlier. Upload another file to replace it.")
            return kept[1], f"upload {kept[0]}"
        st.info("Upload an image of a single handwritten digit.")
        return None
    try:
        digit = prepared(load_uploaded_image(file.getvalue()))
    except ValueError as exc:
        st.error(f"Cannot use **{file.name}**: {exc}.")
        return None
    draw_inputs.keep_upload(file.name, digit)
    return digit, f"upload {file.name}"


def _pick_random_test_image(count: int) -> None:
    st.session_state[INDEX_KEY] = int(np.random.default_rng().integers(count))


def test_digit() -> tuple[np.ndarray, str] | None:
    try:
        d = caches.data()
    except Exception as exc:  # DataUnavailable: neither MNIST nor the fallback subset
        st.error(f"No test images: {exc}")
        return None
    count = len(d.test_images)
    state.kept(INDEX_KEY, 0)
    st.session_state[INDEX_KEY] = min(st.session_state[INDEX_KEY], count - 1)  # the data set may shrink
    # Two rows, so that every control keeps its label whole from 1024 px wide up.
    pick, random = st.columns([3, 1], vertical_alignment="bottom")
    index = pick.number_input(f"Test image (0 – {count - 1})", 0, count - 1, step=1, key=state.kept(INDEX_KEY))
    random.button("Random", icon=":material/casino:", help="A random test image", on_click=_pick_random_test_image,
                  args=(count,), key="draw_random", width="stretch")
    flaw_column, seed_column = st.columns([3, 1], vertical_alignment="bottom")
    flaw = state.offered(flaw_column.selectbox("Synthetic flaw", FLAW_KINDS, format_func=FLAW_DESCRIPTIONS.get,
                                                key=state.kept("draw_flaw")), FLAW_KINDS)
    seed = seed_column.number_input("Flaw seed", 0, 1_000_000, step=1, key=state.kept("draw_flaw_seed"), disabled=flaw == "none")
    label = int(d.test_labels[index])
    st.caption(f"Test image {index}, a **{label}**, never seen in training. MNIST digits are already in the "
               "model's format, so it goes in as it is" + ("." if flaw == "none" else ", with the flaw added."))
    name = f"test #{index}" + ("" if flaw == "none" else f" + {flaw} (seed {int(seed)})")
    digit = add_flaw(to_float(d.test_images[index:index + 1])[0, 0].numpy(), flaw, int(seed))
    return {True: digit, False: digit}, name  # MNIST's digits are centred already


def chosen_score(entry, model, digit: np.ndarray) -> tuple[str, float, np.ndarray]:
    """The visitor's choice of verdict score (default: the measured best), the digit's score under it, and the
    training digits' scores the threshold and percentile are read from."""
    options = verdict_scores(model)
    lines = benchmark.strength_lines(options)
    name = state.offered(st.selectbox("Verdict score", options, key=state.kept(SCORE_KEY, options[0], options),
                                      format_func=lambda s: f"{s} — {lines[s]}",
                                      help="What the verdict is read from. Measured on the Detection benchmark page: "
                                      "the share of the project's letters, shapes and of MNIST test digits each flags "
                                      "at the 99th training percentile, and its one-class MNIST AUROC."), options)
    detector = caches.detector_for(entry, name)
    return name, score_uint8(detector, digit), detector.reference_scores


def show_correction(entry, digit: np.ndarray, name: str) -> None:
    """Fig. 6 for the selected model: images, corrected spots, score and verdict, and their downloads."""
    model, _ = caches.model_for(entry)
    result = correct(model, digit)

    calibrated = state.offered(st.radio("Spots", SPOT_MODES, horizontal=True, key=state.kept(SPOT_MODE_KEY),
                                         help=SPOT_MODE_HELP), SPOT_MODES) == SPOT_MODES[0]
    if calibrated:
        level = caches.spot_level_for(entry)
        diff = caches.fitted_difference_for(entry, digit)
    else:
        state.kept(LEVEL_KEY, DEFAULT_LEVEL)
        level = st.slider("Difference that counts as a correction", 0.05, 0.95, step=0.05, key=state.kept(LEVEL_KEY),
                          help="A pixel is corrected where |reconstruction − input| exceeds this "
                          "(pixels run from 0 to 1); touching corrected pixels form one circled spot.")
        diff = result.diff
    regions = spots_in(diff, level)
    panels = [upscale(to_rgb(result.input)), upscale(to_rgb(result.reconstruction)),
              upscale(render_difference(diff)), circle_spots(result.input, regions)]
    captions = ["What the model sees", f"Reconstruction by {entry.name}",
                "Difference, closest digit" if calibrated else "Difference", "Spots circled"]
    for column, panel, caption in zip(st.columns(4), panels, captions):
        column.image(panel, width="stretch", caption=caption)
    spots = describe_spots(regions, skipped_specks(diff, level))
    compared_to = ("the closest digit the model can draw (its code fitted to this image) − input" if calibrated
                   else "reconstruction − input")
    st.caption(f"Difference = {compared_to}, the same scale for every image: :blue[**blue**] = ink the "
               "model added, :orange[**orange**] = ink it removed, black = unchanged; full brightness is a change "
               f"of the whole pixel range. At level {level:.2f}: {spots}."
               + (f" The level is {entry.name}'s own: {100 - CALIBRATION_PERCENTILE:.0f} % of its training digits "
                  "have a spot above it." if calibrated else ""))

    score_name, score, reference = chosen_score(entry, model, digit)
    limit = state.current_threshold(reference)
    outcome = verdict(score, limit)
    percentile = percentile_of(score, reference)
    score_text, sign, limit_text = compared_numbers(score, limit)  # as many decimals as tell them apart
    score_column, percentile_column, verdict_column = st.columns(3)
    score_column.metric("Anomaly score", score_text, help=f"{score_name}: {DETECTOR_SCORES[score_name]}.")
    percentile_column.metric("Training percentile", f"{percentile / 100:.1%}",
                             help="Share of the training images whose score is at or below this one.")
    verdict_column.metric("Verdict", outcome.upper())
    colour = "red" if outcome == "anomaly" else "green"
    called = "an anomaly" if outcome == "anomaly" else "normal"
    st.markdown(f"Threshold **{limit_text}** ({state.threshold_description()} of '{score_name}', the rule chosen on "
                f"the Error histograms page): score {score_text} {sign} {limit_text}, "
                f"so this digit is :{colour}[**{called}**].")

    row = {"model": entry.name, "input": name, "score": score, "percentile": percentile,
           "threshold": limit, "verdict": outcome, "spots": len(regions), "spot_level": level}
    png_column, csv_column, compare_column = st.columns(3)
    # Plain signs: Pillow's own font has no '≤' or '·'.
    summary = (f"{entry.name} | {name} | {score_name} {score_text} {'>' if sign == '>' else '<='} threshold "
               f"{limit_text} ({state.threshold_description()}) | {outcome.upper()}")
    picture = png_bytes(result_sheet(panels, captions, summary), {key: str(value) for key, value in row.items()}
                        | {"score_name": score_name, "threshold_rule": state.threshold_description(), "summary": summary})
    png_column.download_button("Picture (PNG)", picture, "correction.png",
                               "image/png", icon=":material/download:", key="draw_download_png")
    csv_column.download_button("Scores (CSV)", result_csv([row]), "correction.csv", "text/csv",
                               icon=":material/download:", key="draw_download_csv")
    compare_column.button("Add to comparison", icon=":material/add:", key="draw_compare", on_click=draw_inputs.compare,
                          args=({"input": name, "digit": digit, "model_path": str(entry.path)},),
                          help="Keep this digit and model in the table below, to compare scores side by side.")


def show_generative_side(entry, digit: np.ndarray) -> None:
    """What a VAE's posterior says about this digit: σ per latent dimension, and decodings of z ~ q(z|x)."""
    model, _ = caches.model_for(entry)
    posterior = posterior_of(model, digit)
    st.subheader("The generative side")
    if posterior is None:
        st.caption(f"{entry.name} is a plain autoencoder: one code per image, no posterior to sample from. "
                   "Pick a VAE in the sidebar to see its uncertainty and sampled reconstructions.")
        return
    dims = posterior.std.size
    st.caption(f"The VAE encodes the digit as a Gaussian q(z|x), not a point: mean σ **{posterior.std.mean():.2f}** "
               f"over its {dims} latent dimensions; {informative_dims(posterior.std)} of them have σ under "
               f"{INFORMATIVE_SIGMA} and carry the digit, the others stay near the prior's 1. Decoding codes drawn "
               "from q(z|x) (the same draws every time) shows what the model thinks the digit could be.")
    images = [correct(model, digit).reconstruction, *sampled_reconstructions(model, digit)]
    captions = ["Mean code", *(f"Sample {i}" for i in range(1, len(images)))]
    for column, image, caption in zip(st.columns(len(images)), images, captions):
        column.image(upscale(to_rgb(image)), width="stretch", caption=caption)
    st.bar_chart(pd.DataFrame({"σ": posterior.std}, index=pd.Index(range(dims), name="latent dimension")),
                 height=180, x_label="latent dimension", y_label="σ of q(z|x)")


def show_compared(entries_by_path: dict) -> None:
    """The digits kept with "Add to comparison", each through its model, under the current threshold."""
    rows = draw_inputs.compared()
    st.subheader("Compare inputs")
    if not rows:
        st.caption("Press **Add to comparison** to keep a digit here (up to 5) and compare scores side by side.")
        return
    table = []
    for kept in rows:
        entry = entries_by_path.get(kept["model_path"])
        if entry is None:  # the model was deleted meanwhile
            continue
        model, _ = caches.model_for(entry)
        score_name = state.offered(st.session_state.get(SCORE_KEY), verdict_scores(model))
        detector = caches.detector_for(entry, score_name)
        score, reference = score_uint8(detector, kept["digit"]), detector.reference_scores
        limit = state.current_threshold(reference)
        table.append({"digit": thumbnail_url(kept["digit"]), "input": kept["input"], "model": entry.name,
                      "score name": score_name, "score": round(score, 1),
                      "percentile": f"{percentile_of(score, reference) / 100:.1%}", "verdict": verdict(score, limit)})
    st.dataframe(pd.DataFrame(table), hide_index=True, key="draw_compared_table",
                 column_config={"digit": st.column_config.ImageColumn("digit", width="small")})
    st.button("Clear", icon=":material/delete:", on_click=draw_inputs.clear_compared, key="draw_compare_clear")


def show_comparison(entry, digit: np.ndarray) -> None:
    """Fig. 8: the same input through AE vs VAE, and through a 3-dim vs a 64-dim VAE latent."""
    latent = entry.metadata["latent_dim"]
    st.subheader("The same digit through other models (Fig. 8)")
    st.caption("What to look for: the 64-dim VAE corrects locally and keeps the digit; a 3-dim latent cannot "
               "hold the details, so it over-corrects toward a typical, blurry digit (a large difference "
               "everywhere) and may even turn it into another digit. Scores compare directly: the same input, "
               "the same error.")
    pairs = [(f"AE vs VAE, latent {latent}", [("ae", latent), ("vae", latent)]),
             ("VAE, latent 3 vs latent 64", [("vae", 3), ("vae", 64)])]
    for title, models in pairs:
        st.markdown(f"**{title}**")
        columns = st.columns(4)
        for (kind, dim), (recon_column, diff_column) in zip(models, (columns[:2], columns[2:])):
            other = caches.find_entry(kind, dim)
            if other is None:
                recon_column.caption(f"No {kind.upper()} with latent {dim} on this server. {train_one_hint(kind, dim)}")
                continue
            model, _ = caches.model_for(other)
            result = correct(model, digit)
            recon_column.image(upscale(to_rgb(result.reconstruction)), width="stretch",
                               caption=f"{kind.upper()} z={dim} ({other.name})")
            diff_column.image(upscale(render_difference(result.diff)), width="stretch",
                              caption=f"difference · blurred error {result.score:.1f}")


def position_controls(source: str) -> tuple[bool, int, int]:
    """The report's §1–2 in two controls: centring (its pre-alignment) and a shift: (centre, down, right)."""
    toggle, down_column, right_column = st.columns([2, 3, 3], vertical_alignment="bottom")
    centre = toggle.toggle("Centre the digit", key=state.kept(CENTRE_KEY, True, options=(True, False)),
                           disabled=source == "Test digit",
                           help="On: a drawing or upload is centred like MNIST before any model sees it — the "
                                "pre-alignment (事前のずれ補正) the report says a fully-connected model needs. Off: "
                                "it stays where you drew it. MNIST test digits are centred already.")
    down = down_column.slider("Move down, px", -MAX_SHIFT, MAX_SHIFT, key=state.kept(DOWN_KEY, 0),
                              help="Moves the model's input down (negative: up), zero-filled: ink moved past the "
                                   "edge is lost.")
    right = right_column.slider("Move right, px", -MAX_SHIFT, MAX_SHIFT, key=state.kept(RIGHT_KEY, 0),
                                help="Moves the model's input right (negative: left).")
    down, right = draw_inputs.shift_amount(down), draw_inputs.shift_amount(right)  # whatever the browser sent
    return centre is not False, down, right


def moved_words(down: int, right: int) -> str:
    """', moved 2 px down and 3 px left', or '' when not moved."""
    parts = [f"{abs(down)} px {'down' if down > 0 else 'up'}" if down else "",
             f"{abs(right)} px {'right' if right > 0 else 'left'}" if right else ""]
    parts = [p for p in parts if p]
    return f", moved {' and '.join(parts)}" if parts else ""


def show_conv_vs_fc(entry, digit: np.ndarray, down: int, right: int) -> None:
    """The report's §1–2 argument on this digit: the conv model and the fully-connected one of the same size."""
    variational = entry.metadata["kind"] in VARIATIONAL_KINDS
    kinds = ("vae", "fc-vae") if variational else ("ae", "fc-ae")
    st.subheader("Convolutional vs fully-connected (report §1–2)")
    st.caption(shift_caption(benchmark.read_results("shift"), down, right))
    for kind, column in zip(kinds, st.columns(2, border=True)):
        other = caches.find_entry(kind, 64)
        if other is None:
            column.caption(f"No {kind.upper()} with latent 64 on this server. {train_one_hint(kind, 64)}")
            continue
        model, _ = caches.model_for(other)
        result = correct(model, digit)
        limit = state.current_threshold(caches.scores_for(other)[0])
        outcome = verdict(result.score, limit)
        recon_column, diff_column = column.columns(2)
        what = "convolutional" if kind in ("ae", "vae") else "fully-connected"
        recon_column.image(upscale(to_rgb(result.reconstruction)), width="stretch", caption=f"{other.name} · {what}")
        diff_column.image(upscale(render_difference(result.diff)), width="stretch", caption="difference")
        colour = "red" if outcome == "anomaly" else "green"
        score_text, sign, limit_text = compared_numbers(result.score, limit)
        column.markdown(f"score **{score_text}** {sign} threshold {limit_text} · :{colour}[**{outcome.upper()}**]")


@st.fragment
def draw_and_correct(entry) -> None:
    """Input and results together, so drawing reruns only this part of the page."""
    source = state.offered(st.radio("Input", INPUTS, horizontal=True, key=state.kept(draw_inputs.INPUT_KEY)), INPUTS)
    given = {"Draw": drawn_digit, "Upload": uploaded_digit, "Test digit": test_digit}[source]()
    centre, down, right = position_controls(source)
    if given is None:
        st.session_state.pop(state.DRAWN_DIGIT_KEY, None)
    else:
        versions, name = given
        digit = shift_digit(versions[centre], down, right)  # what every model below is given
        name += ("" if centre or source == "Test digit" else ", not centred") + moved_words(down, right)
        st.session_state[state.DRAWN_DIGIT_KEY] = digit  # the Latent space page marks it in its scatter plot
        show_conv_vs_fc(entry, digit, down, right)
        show_correction(entry, digit, name)
        show_generative_side(entry, digit)
    show_compared({str(e.path): e for e in caches.usable_entries()})
    if given is not None:
        st.divider()
        show_comparison(entry, digit)


st.title("Draw & correct")
st.markdown("The report's Fig. 6: a VAE trained on MNIST gives back the *typical* version of what it sees. "
            "It fills faint or broken strokes and drops stray ink, and the input–output difference shows "
            "where. A digit it reconstructs badly has a high score: above the threshold, it is an anomaly.")
draw_inputs.open_as_linked()
selected = state.selected_entry()
if selected is None:
    st.error(f"No usable model on this server. {train_one_hint()}")
else:
    draw_and_correct(selected)
