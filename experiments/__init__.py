"""The thesis's experiments (Figure 5.2, Tables 5.1–5.8, 6.1, 6.2), defined as data and run with nlseg.

``python -m experiments list`` shows them; ``python -m experiments run NAME --setting reduced|full``
runs one, prints its table next to the thesis's numbers and writes Markdown, PNG and JSON.
"""
