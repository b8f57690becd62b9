"""Fine-tuning and evaluation on labelled data: readers, metrics, tasks and the recipe.

    from unmask.tasks import TASKS, Settings, finetune
    task = TASKS["classify"]("path/to/model")
    finetune(task, "train.tsv", "dev.tsv", "out-dir", Settings.finetuning(epochs=2))
"""

from unmask.tasks.classification import ClassifyTask
from unmask.tasks.finetune import finetune
from unmask.tasks.qa import QaTask
from unmask.tasks.readers import DataError
from unmask.tasks.similarity import SimilarityTask
from unmask.tasks.token_classification import NerTask
from unmask.train.settings import Settings

TASKS = {"classify": ClassifyTask, "ner": NerTask, "qa": QaTask, "similarity": SimilarityTask}

__all__ = ["TASKS", "ClassifyTask", "DataError", "NerTask", "QaTask", "Settings",
           "SimilarityTask", "finetune"]
