"""Fine-tuning and evaluation on labelled data: readers, metrics, tasks and the loop.

    from unmask.tasks import TASKS, TrainArgs, finetune
    task = TASKS["classify"]("path/to/model")
    finetune(task, "train.tsv", "dev.tsv", "out-dir", TrainArgs(epochs=2))
"""

from unmask.tasks.classify import ClassifyTask
from unmask.tasks.finetune import TrainArgs, finetune
from unmask.tasks.ner import NerTask
from unmask.tasks.qa import QaTask
from unmask.tasks.readers import DataError
from unmask.tasks.similarity import SimilarityTask

TASKS = {"classify": ClassifyTask, "ner": NerTask, "qa": QaTask, "similarity": SimilarityTask}

__all__ = ["TASKS", "ClassifyTask", "DataError", "NerTask", "QaTask", "SimilarityTask",
           "TrainArgs", "finetune"]
