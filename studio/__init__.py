"""The app's Streamlit glue that is not a page: the sidebar, shared caches, the visitor's space.

Kept out of pages/ so that folder holds page scripts only (Streamlit treats every file in it as a page).
"""
