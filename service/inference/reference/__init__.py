"""Numpy twins of the compiled loops (greedy, sampled, beam, teacher-forced), the reference
the graphs are tested against."""
