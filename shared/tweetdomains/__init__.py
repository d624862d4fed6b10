"""tweetdomains: the library every service imports (records, codecs, taxonomy, text pipeline,
model, checkpoint format, object store, model registry). Importing it starts nothing."""

__version__ = "0.1.0"
