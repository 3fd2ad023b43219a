"""The self-contained HTML report (html.py) and its plotly figures (figures.py)."""
