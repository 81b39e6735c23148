"""TensorFlow versions of the decoding rules (sampling, beam search), for tf.function.

Each follows its numpy reference in service/inference (sampling.py, beam_search.py)
operation for operation; tests check that they agree."""
