"""Bringing a user's model: `python -m service check` and `import`, and the splitter."""
