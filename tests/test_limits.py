"""vae.server.limits: one place for every visitor limit; README's table and Streamlit's config say the same."""
import re
from pathlib import Path

from vae.server.limits import LIMITS, Limits, available_cores

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_limits_table_is_the_one_the_limits_write():
    assert LIMITS.markdown() in (ROOT / "README.md").read_text(), \
        "README's Limits table differs from vae/server/limits.py: paste LIMITS.markdown() there"


def test_streamlit_refuses_uploads_over_the_same_size():
    config = (ROOT / ".streamlit" / "config.toml").read_text()  # (tomllib is Python 3.11+)
    assert re.findall(r"^maxUploadSize\s*=\s*(\d+)", config, flags=re.M) == [str(LIMITS.upload_mb)]


def test_training_slots_follow_the_cores_of_the_machine():
    assert Limits().job_slots == available_cores() >= 1


def test_the_form_offers_only_jobs_the_server_accepts():
    low_epochs, high_epochs = LIMITS.form["epochs"].low, LIMITS.form["epochs"].high
    assert 1 <= low_epochs <= LIMITS.form["epochs"].default <= high_epochs
    assert LIMITS.form["lr"].default in LIMITS.lr_choices
    assert all(r.low <= r.default <= r.high for r in LIMITS.form.values())
