"""unmask: masked language models, with masks as first-class objects."""

__version__ = "0.1.0"


def pipeline(task, model, tokenizer=None, **options):
    """unmask.pipelines.pipeline, imported on first use so `import unmask` stays light."""
    from unmask.pipelines import pipeline as make

    return make(task, model, tokenizer, **options)
