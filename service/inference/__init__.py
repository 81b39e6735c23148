"""Model store, manifests and compute. Only `keras_model` imports TensorFlow."""
