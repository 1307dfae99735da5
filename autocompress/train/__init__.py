from autocompress.train.fit import TrainSettings, accuracy, fit, kd_loss, predict
from autocompress.train.teacher import Teacher, get_teacher, weak_teacher_warning

__all__ = ["Teacher", "TrainSettings", "accuracy", "fit", "get_teacher", "kd_loss", "predict",
           "weak_teacher_warning"]
