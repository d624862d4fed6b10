"""tweetdomains: the library every service imports (records, codecs, taxonomy, text pipeline and
vocabularies, model, checkpoint format, object store, model registry, settings). It imports no
service and importing it starts nothing; docs/architecture.md names each module's job."""

__version__ = "0.1.0"
