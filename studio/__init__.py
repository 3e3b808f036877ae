"""The app's Streamlit glue that is not a page: the script every visit runs (main.py), the navigation,
the sidebar, shared caches, the visitor's space. pages/ holds the page scripts only."""
