"""The native API's routes (/v1/..., the probes, /metrics): translate, delegate to the
dataplane, answer."""
