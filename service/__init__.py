"""REST inference service for Keras LSTM encoder-decoder and stateful step models.

Importing this package never imports TensorFlow: the app factory's lifespan does.
"""

__version__ = "0.1.0"
