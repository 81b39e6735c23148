"""Long loops in slices: a decode or a teacher-forced run is cut into graph calls of a
few steps each, so the batcher can run other work and admit new rows between them.

`clock` sizes a slice from measured step times; `outputs` holds what a job's rows have
produced so far; `decode` slices greedy and sampled decoding (`generate` calls), `run`
slices teacher-forced runs (`run` calls). A slice's numbers equal the whole loop's:
each step is the same graph step from the same states and tokens.
"""
