"""Draw & correct (report Fig. 6 and Fig. 8): one digit in, what the model gives back, what it
corrected, and whether its score crosses the anomaly threshold."""
import numpy as np
import streamlit as st
import streamlit_drawable_canvas as canvas

from studio import common
from vae import prepare_array
from vae.correction import DEFAULT_LEVEL, correct, corrected_regions, verdict
from vae.data import to_float
from vae.display import circle_regions, describe_regions, render_difference, to_rgb, upscale
from vae.flaws import FLAW_DESCRIPTIONS, FLAW_KINDS, add_flaw
from vae.scores import percentile_of
from vae.uploads import load_uploaded_image

common.run_through_app()  # first: a fresh server may have run this page without app.py

INPUTS = ("Draw", "Upload", "Test digit")
IMAGE_WIDTH = 200
COMPARE_WIDTH = 150
CANVAS_SIZE = 280
INDEX_KEY = "draw_test_index"


def drawn_digit() -> np.ndarray | None:
    st.caption("Draw one digit, large, with the mouse or a finger. Hover over the canvas for its toolbar: "
               "the bin clears it, the arrows undo and redo.")
    result = canvas.st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000",
                              width=CANVAS_SIZE, height=CANVAS_SIZE, drawing_mode="freedraw",
                              return_image_data=True, key="draw_canvas")
    if result.image_data is not None:  # None until the first stroke
        try:
            return prepare_array(result.image_data)
        except ValueError:  # a cleared canvas: all background
            pass
    st.info("Draw a digit on the black canvas to see how the model corrects it.")
    return None


def uploaded_digit() -> np.ndarray | None:
    file = st.file_uploader("A PNG or JPEG of one digit, any colours (it is cropped, scaled and centred "
                            "like MNIST)", type=["png", "jpg", "jpeg"], key="draw_upload")
    if file is None:
        st.info("Upload an image of a single handwritten digit.")
        return None
    try:
        return prepare_array(load_uploaded_image(file.getvalue()))
    except ValueError as exc:
        st.error(f"Cannot use **{file.name}**: {exc}.")
        return None


def _pick_random_test_image(count: int) -> None:
    st.session_state[INDEX_KEY] = int(np.random.default_rng().integers(count))


def test_digit() -> np.ndarray | None:
    try:
        d = common.data()
    except Exception as exc:  # DataUnavailable: neither MNIST nor the fallback subset
        st.error(f"No test images: {exc}")
        return None
    count = len(d.test_images)
    st.session_state.setdefault(INDEX_KEY, 0)
    st.session_state[INDEX_KEY] = min(st.session_state[INDEX_KEY], count - 1)  # the data set may shrink
    pick, random, flaw_column, seed_column = st.columns([2, 1, 3, 1], vertical_alignment="bottom")
    index = pick.number_input(f"Test image (0 – {count - 1})", 0, count - 1, step=1, key=INDEX_KEY)
    random.button("Random", icon=":material/casino:", on_click=_pick_random_test_image, args=(count,))
    flaw = common.offered(flaw_column.selectbox("Synthetic flaw", FLAW_KINDS, format_func=FLAW_DESCRIPTIONS.get,
                                                key="draw_flaw"), FLAW_KINDS)
    seed = seed_column.number_input("Flaw seed", 0, 1_000_000, 0, step=1, key="draw_flaw_seed",
                                    disabled=flaw == "none")
    label = int(d.test_labels[index])
    st.caption(f"Test image {index}, a **{label}**, never seen in training. MNIST digits are already in the "
               "model's format, so it goes in as it is" + ("." if flaw == "none" else ", with the flaw added."))
    return add_flaw(to_float(d.test_images[index:index + 1])[0, 0].numpy(), flaw, int(seed))


def show_correction(entry, digit: np.ndarray) -> None:
    """Fig. 6 for the selected model: images, corrected spots, score and verdict."""
    model, _ = common.model_for(entry)
    result = correct(model, digit)
    train_errors, _ = common.errors_for(entry)
    limit = common.current_threshold(train_errors)
    outcome = verdict(result.score, limit)

    level = st.slider("Difference that counts as a correction", 0.05, 0.95, DEFAULT_LEVEL, 0.05,
                      key="draw_level", help="A pixel is corrected where |reconstruction − input| exceeds this "
                      "(pixels run from 0 to 1); touching corrected pixels form one circled spot.")
    regions = corrected_regions(result.diff, level)
    seen, recon, diff, circled = st.columns(4)
    seen.image(upscale(to_rgb(result.input)), width=IMAGE_WIDTH, caption="What the model sees (28×28)")
    recon.image(upscale(to_rgb(result.reconstruction)), width=IMAGE_WIDTH, caption=f"Reconstruction by {entry.name}")
    diff.image(upscale(render_difference(result.diff)), width=IMAGE_WIDTH,
               caption="Difference, reconstruction − input")
    circled.image(circle_regions(result.input, regions), width=IMAGE_WIDTH, caption="Corrected spots, circled")
    st.caption("Difference colours, the same scale for every image: :blue[**blue**] = ink the model added, "
               ":orange[**orange**] = ink it removed, black = unchanged; full brightness is a change of the "
               f"whole pixel range. {describe_regions(regions).capitalize()} at level {level:.2f}.")

    score_column, percentile_column, verdict_column = st.columns(3)
    score_column.metric("Anomaly score", f"{result.score:.1f}",
                        help="Sum over the 784 pixels of (reconstruction − input)²: the number the "
                        "Error histograms page counts.")
    percentile_column.metric("Percentile among training images", f"{percentile_of(result.score, train_errors):.1f} %",
                             help="Share of the training images whose score is at or below this one.")
    verdict_column.metric("Verdict", outcome.upper())
    colour = "red" if outcome == "anomaly" else "green"
    st.markdown(f"Threshold **{limit:.1f}** ({common.threshold_description()}, chosen on the Error histograms "
                f"page): score {result.score:.1f} {'>' if outcome == 'anomaly' else '≤'} {limit:.1f}, "
                f"so this digit is :{colour}[**{outcome}**].")


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
            other = common.find_entry(kind, dim)
            if other is None:
                recon_column.caption(f"No {kind.upper()} with latent {dim} in checkpoints/. Train one: "
                                     f"`python -m vae train --model {kind} --latent {dim}`")
                continue
            model, _ = common.model_for(other)
            result = correct(model, digit)
            recon_column.image(upscale(to_rgb(result.reconstruction)), width=COMPARE_WIDTH,
                               caption=f"{kind.upper()} z={dim} ({other.name})")
            diff_column.image(upscale(render_difference(result.diff)), width=COMPARE_WIDTH,
                              caption=f"difference · score {result.score:.1f}")


@st.fragment
def draw_and_correct(entry) -> None:
    """Input and results together, so drawing reruns only this part of the page."""
    source = common.offered(st.radio("Input", INPUTS, horizontal=True, key="draw_input"), INPUTS)
    digit = {"Draw": drawn_digit, "Upload": uploaded_digit, "Test digit": test_digit}[source]()
    if digit is None:
        st.session_state.pop(common.DRAWN_DIGIT_KEY, None)
        return
    st.session_state[common.DRAWN_DIGIT_KEY] = digit  # the Latent space page marks it in its scatter plot
    show_correction(entry, digit)
    st.divider()
    show_comparison(entry, digit)


st.title("Draw & correct")
st.markdown("The report's Fig. 6: a VAE trained on MNIST gives back the *typical* version of what it sees. "
            "It fills faint or broken strokes and drops stray ink, and the input–output difference shows "
            "where. A digit it reconstructs badly has a high score: above the threshold, it is an anomaly.")
selected = common.selected_entry()
if selected is None:
    st.error("No usable model in checkpoints/. Train one: `python -m vae train`.")
else:
    draw_and_correct(selected)
