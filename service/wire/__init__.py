"""Every wire model: the native API, decoding options, the Open Inference Protocol, TF
Serving's REST API, and the types they share. No FastAPI, numpy or TensorFlow: the
client imports these too."""
