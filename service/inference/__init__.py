"""Models and their computation: model/ (what a model is: manifest, roles, files,
registry), compiled/ (its graphs), reference/ (their numpy twins), serving/ (engine,
batchers, reload). TensorFlow is imported by model/formats/ and compiled/ only, and
only once models load (never by `import service` or `service.app`)."""
