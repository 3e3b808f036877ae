import streamlit as st
st.title("histograms")
