"""studio.state.kept: a widget's value survives runs that do not draw it (another page), in a real script run
by Streamlit's AppTest, and a value no longer offered falls back to the default."""
from streamlit.testing.v1 import AppTest


def two_pages():
    import streamlit as st

    from studio import state

    flaws = st.session_state.get("flaws", ["none", "scratch", "blob"])
    if st.session_state.get("page", "a") == "a":
        st.radio("Flaw", flaws, key=state.kept("flaw", "none", flaws))
        st.number_input("Index", 0, 100, key=state.kept("index"))
    else:
        st.write("another page: the widgets above are not drawn")


def test_a_kept_widget_value_survives_another_page_and_a_forged_one_falls_back():
    at = AppTest.from_function(two_pages).run()
    assert at.radio(key="flaw").value == "none" and at.number_input(key="index").value == 0
    at.radio(key="flaw").set_value("blob")
    at.number_input(key="index").set_value(42)
    at.run()
    at.session_state["page"] = "b"
    at.run()
    at.run()  # a second run without the widgets: Streamlit has dropped their values by now
    assert "flaw" not in at.session_state and "index" not in at.session_state
    at.session_state["page"] = "a"
    at.run()
    assert at.radio(key="flaw").value == "blob" and at.number_input(key="index").value == 42
    at.session_state["flaws"] = ["none", "scratch"]  # the kept choice is no longer offered
    at.run()
    assert at.radio(key="flaw").value == "none" and not at.exception
