import streamlit as st
st.title("latent")
