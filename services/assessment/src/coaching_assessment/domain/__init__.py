"""Assessment rules: pure functions and models, no I/O.

- `instruments`: the versioned instrument definition format and the built-in catalogue;
- `scoring`: answers checked and scored, strengths, development areas, derived codes;
- `psychometrics`: norm percentiles, Cronbach's alpha, corrected item-total correlations;
- `profile`: one strengths-and-weaknesses profile across a client's instruments.
"""
