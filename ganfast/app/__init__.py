"""The application: the CLI, YAML configs and presets, run folders (toy and image runs),
reports, image data sets and networks. It imports the library (ganfast.*); the library never
imports it (`import ganfast` loads none of it: ganfast.train and ganfast.load_preset are
looked up lazily)."""
