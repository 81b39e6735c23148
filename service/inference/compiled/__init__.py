"""The compiled computation: a loaded model's graphs as `tf.function`s, and their warm-up."""
